"""Datasets as in-memory tensors with a fixed train/test split.

Every loader returns a :class:`Dataset`: images as ``(N, C, H, W)`` float32 in ``[0, 1]``,
vector data as ``(N, D)`` float32 centred and scaled by one scalar on the training split,
labels as ``(N,)`` int64. The split never depends on the training seed, so evaluations
of different runs are comparable.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from collapselab.errors import ConfigError, InputError

#: where Debian's ``dataset-fashion-mnist`` package installs the IDX files
FASHION_MNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"

#: seed of the digits train/test split (fixed: evaluation must not depend on --seed)
_SPLIT_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """A labelled data set split into train (for self-supervised training) and test.

    Attributes:
        name: registry name (``"digits"``, ...).
        x_train: ``(N, C, H, W)`` images in ``[0, 1]`` or ``(N, D)`` vectors, float32.
        y_train: ``(N,)`` int64 labels (used only by the evaluation, never by training).
        x_test: test inputs, same layout as ``x_train``.
        y_test: ``(M,)`` int64 labels.
        num_classes: number of label classes.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int

    @property
    def is_image(self) -> bool:
        """True for ``(N, C, H, W)`` image data."""
        return self.x_train.ndim == 4

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example: ``(C, H, W)`` or ``(D,)``."""
        return tuple(self.x_train.shape[1:])


def _stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified split (each class split in the same proportion)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(test_fraction * idx.size))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_digits(test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes; no download).

    Pixels (integers 0..16) are scaled to ``[0, 1]``; the stratified split (seed 0)
    keeps 1347 images for training and 450 for testing.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    bunch = _sk_load_digits()
    x = np.asarray(bunch.images, dtype=np.float32)[:, None] / 16.0  # (1797, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = _stratified_split(y, test_fraction, _SPLIT_SEED)
    return Dataset(
        "digits",
        torch.from_numpy(x[tr]),
        torch.from_numpy(y[tr]),
        torch.from_numpy(x[te]),
        torch.from_numpy(y[te]),
        10,
    )


#: IDX type byte -> numpy dtype (data are big-endian)
_IDX_DTYPES: dict[int, str] = {
    0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"
}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (LeCun's MNIST format), gzip-compressed or not.

    The format: two zero bytes, a type byte (0x08 = uint8, ...), a byte giving the number
    of dimensions, one big-endian uint32 per dimension, then the data in C order.

    Args:
        path: the ``.gz`` or uncompressed file.

    Returns:
        The array with its stored shape and dtype (native byte order).

    Raises:
        InputError: the file is missing, truncated or not IDX.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InputError(f"{p}: corrupt gzip data ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise InputError(f"{p}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise InputError(f"{p}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(
            f"{p}: IDX header promises shape {shape} ({expected} bytes) "
            f"but the file holds {len(raw) - header} data bytes"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (root / name).is_file():
            return root / name
    raise InputError(
        f"{root}: no {stem}[.gz]; install Fashion-MNIST with "
        "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or download the four "
        "IDX files from https://github.com/zalandoresearch/fashion-mnist into that "
        "directory, or pass --data-root DIR"
    )


def load_fashion_mnist(root: str | os.PathLike[str] | None = None) -> Dataset:
    """Fashion-MNIST (Xiao et al. 2017): 60000 train / 10000 test 28x28 grey images.

    Args:
        root: directory holding ``train-images-idx3-ubyte[.gz]``,
            ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]`` and
            ``t10k-labels-idx1-ubyte[.gz]``; default ``/usr/share/datasets/fashion-mnist``.

    Raises:
        InputError: a file is missing (the message says how to get them) or malformed.
    """
    base = Path(root if root is not None else FASHION_MNIST_DEFAULT_ROOT)
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_find_idx(base, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_find_idx(base, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise InputError(
                f"{base}: {prefix} images {images.shape} and labels {labels.shape} do not "
                "match (expected (N, 28, 28) and (N,))"
            )
        x = torch.from_numpy(images.astype(np.float32)[:, None] / 255.0)
        parts[split] = (x, torch.from_numpy(labels.astype(np.int64)))
    num_classes = int(max(parts["train"][1].max(), parts["test"][1].max())) + 1
    return Dataset("fashion-mnist", *parts["train"], *parts["test"], num_classes)


def _standardised(name: str, x: np.ndarray, y: np.ndarray, classes: int, seed: int) -> Dataset:
    # centre on the training mean and divide by ONE scalar (the RMS deviation), so the
    # known spectrum (relative eigenvalues, rank) is unchanged
    tr, te = _stratified_split(y, 0.25, seed)
    mu = x[tr].mean(0)
    scale = float(np.sqrt(((x[tr] - mu) ** 2).sum(1).mean() / x.shape[1])) + 1e-12
    x = ((x - mu) / scale).astype(np.float32)
    t = torch.from_numpy
    return Dataset(name, t(x[tr]), t(y[tr]), t(x[te]), t(y[te]), classes)


def gaussian_mixture(
    n: int = 2000, dim: int = 32, classes: int = 10, separation: float = 4.0, seed: int = 0
) -> Dataset:
    """Isotropic Gaussian mixture: class ``c`` is ``N(mu_c, I_dim)``.

    The centres are random directions of norm ``separation``, so
    ``||mu_c - mu_c'|| ~ separation * sqrt(2)`` and the Bayes
    classifier is near-perfect for ``separation >= 4`` and features span all ``dim``
    directions (a healthy encoder should keep an effective rank well above ``classes``).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    centres *= separation / np.linalg.norm(centres, axis=1, keepdims=True)  # ||mu_c|| = sep
    y = rng.integers(0, classes, n)
    x = centres[y] + rng.normal(size=(n, dim))
    return _standardised("gaussian-mixture", x, y.astype(np.int64), classes, seed)


def low_rank(
    n: int = 2000,
    dim: int = 64,
    rank: int = 8,
    classes: int = 10,
    noise: float = 0.05,
    seed: int = 0,
) -> Dataset:
    """Data on a ``rank``-dimensional subspace of ``R^dim`` plus small isotropic noise.

    Latent codes are a ``classes``-component Gaussian mixture in ``R^rank``; an orthonormal
    ``(dim, rank)`` basis maps them up. The true covariance has exactly ``rank`` large
    eigenvalues and ``dim - rank`` at ``noise**2``: a known spectrum to test against.
    """
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(dim, rank)))  # (dim, rank), orthonormal columns
    centres = rng.normal(0.0, 2.0, (classes, rank))
    y = rng.integers(0, classes, n)
    latent = centres[y] + rng.normal(size=(n, rank))  # (n, rank)
    x = latent @ basis.T + noise * rng.normal(size=(n, dim))  # (n, dim)
    return _standardised("low-rank", x, y.astype(np.int64), classes, seed)


#: name -> loader(root) ; root is used only by file-backed data sets
DATASETS: dict[str, Callable[[str | None], Dataset]] = {
    "digits": lambda root: load_digits(),
    "fashion-mnist": load_fashion_mnist,
    "gaussian-mixture": lambda root: gaussian_mixture(),
    "low-rank": lambda root: low_rank(),
}


def load_dataset(name: str, root: str | None = None) -> Dataset:
    """Load a data set by registry name (see :data:`DATASETS`).

    Raises:
        ConfigError: unknown name.
        InputError: a file-backed data set is missing or malformed.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"--data {name!r}: unknown data set; choose one of {', '.join(DATASETS)}"
        ) from None
    return loader(root)
