"""Data sets: digits split, IDX reader (synthetic files), Fashion-MNIST, synthetic data."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from collapselab.data import (
    FASHION_MNIST_DEFAULT_ROOT,
    gaussian_mixture,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    low_rank,
    read_idx,
)
from collapselab.errors import ConfigError, InputError


def write_idx(path: Path, arr: np.ndarray, compress: bool) -> None:
    """IDX writer from the format description (LeCun et al.): magic 0,0,type,ndim."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    big = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    header = bytes([0, 0, codes[big.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    raw = header + big.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_digits_split_is_fixed_stratified_and_scaled() -> None:
    d = load_digits()
    assert d.x_train.shape == (1347, 1, 8, 8) and d.x_test.shape == (450, 1, 8, 8)
    assert d.x_train.dtype == torch.float32 and d.y_train.dtype == torch.int64
    assert float(d.x_train.min()) == 0.0 and float(d.x_train.max()) == 1.0
    # stratified: every class keeps 25% +- 1 of its images in the test split
    from sklearn.datasets import load_digits as sk

    counts = np.bincount(sk().target)
    test_counts = np.bincount(d.y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.25 * counts) <= 1)
    again = load_digits()
    assert torch.equal(d.x_test, again.x_test) and torch.equal(d.y_train, again.y_train)
    assert d.is_image and d.input_shape == (1, 8, 8) and d.num_classes == 10


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, ">i4", ">f4"])
def test_read_idx_roundtrip(tmp_path: Path, compress: bool, dtype: str) -> None:
    rng = np.random.default_rng(0)
    arr = (rng.random((5, 3, 4)) * 200).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr, compress)
    out = read_idx(path)
    assert out.shape == (5, 3, 4)
    np.testing.assert_array_equal(out, arr.astype(np.dtype(dtype).newbyteorder("=")))
    assert out.dtype.isnative


def test_read_idx_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(InputError, match="bad: not an IDX file"):
        read_idx(bad)
    short = tmp_path / "short"
    write_idx(short, np.zeros((4, 2), np.uint8), compress=False)
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(InputError, match=r"short: IDX header promises shape \(4, 2\)"):
        read_idx(short)
    with pytest.raises(InputError, match="missing: cannot read"):
        read_idx(tmp_path / "missing")


def _fake_fashion(root: Path, n_train: int = 12, n_test: int = 6) -> None:
    rng = np.random.default_rng(1)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28)).astype(np.uint8), True)  # fmt: skip
        write_idx(root / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8),
                  False)  # fmt: skip


def test_fashion_mnist_reader_on_synthetic_files(tmp_path: Path) -> None:
    _fake_fashion(tmp_path)  # images gzip-compressed, labels plain: both accepted
    d = load_fashion_mnist(tmp_path)
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (6, 1, 28, 28)
    assert d.y_test.tolist() == [0, 1, 2, 3, 4, 5] and d.num_classes == 10
    assert 0.0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1.0
    raw = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert torch.allclose(d.x_train[3, 0], torch.from_numpy(raw[3] / 255.0).float())


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist", str(tmp_path))
    _fake_fashion(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(InputError, match="no t10k-labels-idx1-ubyte"):
        load_fashion_mnist(tmp_path)


@pytest.mark.skipif(
    not Path(FASHION_MNIST_DEFAULT_ROOT).is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_files() -> None:
    d = load_fashion_mnist()
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(d.y_test.numpy()).tolist() == [1000] * 10  # the published balance


def test_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match="unknown data set"):
        load_dataset("imagenet")


def test_low_rank_has_the_known_spectrum() -> None:
    d = low_rank(n=4000, dim=64, rank=8, noise=0.05, seed=3)
    x = torch.cat([d.x_train, d.x_test]).double()
    lam = torch.linalg.eigvalsh(torch.cov(x.T)).flip(0)
    # scaling by one scalar keeps ratios: rank 8 signal eigenvalues, then the noise floor
    assert float(lam[7] / lam[8]) > 100.0
    assert float(lam[8:].max() / lam[8:].min()) < 3.0  # isotropic noise (MP spread)


def test_gaussian_mixture_classes_are_separated() -> None:
    d = gaussian_mixture(n=3000, dim=32, classes=5, separation=6.0, seed=0)
    x, y = d.x_train.double(), d.y_train
    means = torch.stack([x[y == c].mean(0) for c in range(5)])
    within = torch.stack([(x[y == c] - means[c]).pow(2).sum(1).mean() for c in range(5)])
    between = torch.cdist(means, means)[~torch.eye(5, dtype=torch.bool)].pow(2)
    # class means are farther apart than the spread of each class
    assert float(between.min()) > float(within.max())
    # each class is isotropic: its covariance has all eigenvalues within 2x of each other
    c0 = torch.linalg.eigvalsh(torch.cov(x[y == 0].T))
    assert float(c0.max() / c0.min()) < 4.0


def test_fashion_mnist_files_train_end_to_end(tmp_path: Path) -> None:
    from collapselab.train.config import TrainConfig
    from collapselab.train.trainer import train

    _fake_fashion(tmp_path, n_train=64, n_test=20)  # 28x28: the CNN's three-pool path
    s = train(TrainConfig(method="simclr", data="fashion-mnist", data_root=str(tmp_path),
                          batch_size=32, epochs=2, threads=1))  # fmt: skip
    assert s.steps == 4 and s.evaluation is not None
    assert 0.0 <= s.evaluation.knn_accuracy <= 1.0
