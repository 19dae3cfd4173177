"""Post-hoc isotropy transforms for embeddings: whitening, all-but-the-top, centring.

Every transform is affine, ``y = (x - mean) @ W`` with ``x`` of shape ``(N, d)`` and
``W`` of shape ``(d, m)``; it is fitted from the float64 streaming moments of a corpus
(:class:`~collapselab.metrics.Moments`: mean ``mu`` and centred covariance
``C = U diag(lambda) U^T``), so a corpus larger than memory is fitted in one pass: the
pass of :func:`collapselab.check.accumulate_sources` (:func:`fit_sources`), the same
float64 accumulator ``collapselab check`` reads, sharded and all-reduced under torchrun.

- ``whiten`` -- Su et al. 2021, "Whitening Sentence Representations for Better
  Semantics and Faster Retrieval", Eqs. 4-6 (BERT-whitening): ``W = U diag(lambda)^-1/2``,
  optionally only the first ``dims`` columns (their dimension reduction). Directions
  whose eigenvalue is below ``1e-10 * lambda_max`` carry no variance and are dropped
  rather than divided by ~0 (their rounding noise would be amplified ~1e5-fold).
- ``remove-top`` -- Mu & Viswanath 2018, "All-but-the-Top", Algorithm 1: centre, then
  project out the top ``D`` principal directions, ``W = I - U_D U_D^T``; the paper's
  rule of thumb ``D = d / 100`` is the default.
- ``center`` -- subtract the mean only, ``W = I``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from collapselab._atomic import atomic_open
from collapselab.check import accumulate_sources
from collapselab.errors import ConfigError, DegenerateInputError, InputError
from collapselab.io import EmbeddingSource
from collapselab.metrics import Moments
from collapselab.metrics.summary import eigh_desc

Method = Literal["whiten", "remove-top", "center"]
METHODS: tuple[str, ...] = ("whiten", "remove-top", "center")
#: eigenvalues below this fraction of the largest are treated as zero by ``whiten``
NULL_RTOL = 1e-10
#: largest finite float32: transformed rows are written as float32
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class WhiteningTransform:
    """A fitted affine transform ``y = (x - mean) @ matrix``.

    Attributes:
        method: ``"whiten"``, ``"remove-top"`` or ``"center"``.
        mean: ``(d,)`` mean of the fit data.
        matrix: ``(d, m)``; ``m = d`` except for ``whiten`` with fewer ``dims``.
        eigenvalues: ``(d,)`` eigenvalues of the fit data's centred covariance, descending.
        n_fit: rows the transform was fitted on.
        removed: top directions projected out (``remove-top``), else 0.
    """

    method: str
    mean: NDArray[np.float64] = field(repr=False)
    matrix: NDArray[np.float64] = field(repr=False)
    eigenvalues: NDArray[np.float64] = field(repr=False)
    n_fit: int
    removed: int = 0

    @property
    def d_in(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def d_out(self) -> int:
        return int(self.matrix.shape[1])

    def apply(self, x: Any, name: str | None = None) -> NDArray[np.float32]:
        """Transform rows ``x`` of shape ``(N, d_in)`` into ``(N, d_out)`` float32.

        Args:
            x: the rows (numpy or anything ``np.asarray`` reads).
            name: how an error names the rows (e.g. the file they come from).

        Raises:
            InputError: ``x`` is not ``(N, d_in)``, or a finite row transforms to values
                beyond the float32 range (``center`` / ``remove-top`` keep the input's
                scale: entries like 1e200 stay 1e200, which float32 cannot hold).
        """
        a = np.asarray(x)
        where = f"{name}: " if name else ""
        if a.ndim != 2 or a.shape[1] != self.d_in:
            raise InputError(
                f"{where}transform expects (N, {self.d_in}) rows, got shape {a.shape}"
            )
        y = (a.astype(np.float64) - self.mean) @ self.matrix  # (N, d) @ (d, m) -> (N, m)
        big = np.isfinite(y) & (np.abs(y) > _FLOAT32_MAX)  # NaN / Inf rows stay as they are
        if big.any():
            row = int(np.flatnonzero(big.any(axis=1))[0])
            raise InputError(
                f"{where}the {self.method!r} transform gives values beyond the float32 range "
                f"(|y| up to {float(np.abs(y[big]).max()):.3g} > {_FLOAT32_MAX:.3g}, first: "
                f"row {row}); rescale the embeddings, or use --method whiten"
            )
        return y.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Summary (no arrays): method, dimensions, rows fitted, removed directions."""
        return {"method": self.method, "d_in": self.d_in, "d_out": self.d_out,
                "n_fit": self.n_fit, "removed": self.removed}  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz`` (no pickles) atomically: temp file in the same folder, rename."""
        with atomic_open(path, "wb") as f:
            np.savez(
                f,
                method=np.array(self.method),
                mean=self.mean,
                matrix=self.matrix,
                eigenvalues=self.eigenvalues,
                n_fit=np.array(self.n_fit, dtype=np.int64),
                removed=np.array(self.removed, dtype=np.int64),
            )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> WhiteningTransform:
        """Read a transform written by :meth:`save` (``allow_pickle=False``).

        Raises:
            InputError: missing file, not an npz, missing keys, bad shapes or values.
        """
        name = os.fspath(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise InputError(f"{name}: no such file") from None
        except (OSError, ValueError) as e:
            raise InputError(f"{name}: not a transform .npz ({e})") from None
        need = ("method", "mean", "matrix", "eigenvalues", "n_fit", "removed")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise InputError(f"{name}: not a collapselab transform (missing {missing})")
        method = str(arrays["method"])
        mean, matrix = arrays["mean"], arrays["matrix"]
        if method not in METHODS:
            raise InputError(f"{name}: unknown method {method!r}; expected one of {METHODS}")
        if mean.ndim != 1 or matrix.ndim != 2 or matrix.shape[0] != mean.shape[0]:
            raise InputError(f"{name}: mean {mean.shape} and matrix {matrix.shape} disagree")
        if not (np.isfinite(mean).all() and np.isfinite(matrix).all()):
            raise InputError(f"{name}: mean or matrix holds NaN or Inf")
        return cls(method, mean.astype(np.float64), matrix.astype(np.float64),
                   arrays["eigenvalues"].astype(np.float64), int(arrays["n_fit"]),
                   int(arrays["removed"]))  # fmt: skip


def default_removed(d: int) -> int:
    """Mu & Viswanath's rule of thumb: remove ``D = d / 100`` directions (at least 1)."""
    return max(1, round(d / 100))


def fit_transform(
    moments: Moments,
    method: str = "whiten",
    dims: int | None = None,
    remove: int | None = None,
) -> WhiteningTransform:
    """Fit a transform from accumulated moments (cost: one ``d x d`` eigendecomposition).

    Args:
        moments: float64 moments of the fit data (mean and scatter).
        method: ``"whiten"``, ``"remove-top"`` or ``"center"`` (see module docstring).
        dims: ``whiten`` only: keep the top ``dims`` whitened directions (default: all
            with non-zero variance).
        remove: ``remove-top`` only: directions projected out (default ``d / 100``).

    Raises:
        ConfigError: unknown method, or ``dims`` / ``remove`` out of range.
        DegenerateInputError: fewer than 2 rows, or no variance at all.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown transform {method!r}; expected one of {METHODS}")
    if dims is not None and method != "whiten":
        raise ConfigError(f"dims applies to 'whiten' only, not {method!r}")
    if remove is not None and method != "remove-top":
        raise ConfigError(f"remove applies to 'remove-top' only, not {method!r}")
    if moments.n < 2:
        raise DegenerateInputError(f"{moments.n} rows; need at least 2 to fit a transform")
    d = moments.d
    lam, u = eigh_desc(moments.covariance())  # (d,), (d, d) descending
    lam = np.clip(lam, 0.0, None)
    removed = 0
    if method == "center":
        w = np.eye(d)
    elif method == "remove-top":
        removed = default_removed(d) if remove is None else remove
        if not 0 <= removed < d:
            raise ConfigError(f"remove must be in [0, {d - 1}] for d = {d}, got {removed}")
        top = u[:, :removed]  # (d, D)
        w = np.eye(d) - top @ top.T  # (d, d) projector onto the complement
    else:
        keep = int((lam > NULL_RTOL * lam[0]).sum()) if lam[0] > 0 else 0
        if keep == 0:
            raise DegenerateInputError("all rows are equal: there is no variance to whiten")
        if dims is not None:
            if not 1 <= dims <= d:
                raise ConfigError(f"dims must be in [1, {d}], got {dims}")
            keep = min(keep, dims)
        w = u[:, :keep] / np.sqrt(lam[:keep])  # (d, k): U_k diag(lambda_k)^-1/2
    mean = moments.mean.copy()
    if moments.scale_exp:  # moments of z * 2**-e (entries beyond 2**100): back to z's units
        e = moments.scale_exp
        with np.errstate(over="ignore"):  # eigenvalues beyond float64 (1e200**2) read inf
            mean, lam = np.ldexp(mean, e), np.ldexp(lam, 2 * e)
        w = np.ldexp(w, -e) if method == "whiten" else w
    return WhiteningTransform(method, mean, w, lam, moments.n, removed)


def fit_sources(
    sources: list[EmbeddingSource],
    method: str = "whiten",
    dims: int | None = None,
    remove: int | None = None,
) -> WhiteningTransform:
    """Fit a transform over several files streamed as one matrix (same ``d``)."""
    return fit_transform(accumulate_sources(sources), method, dims, remove)


def fit_array(
    z: Any, method: str = "whiten", dims: int | None = None, remove: int | None = None
) -> WhiteningTransform:
    """Fit a transform on an in-memory ``(N, d)`` matrix (numpy or torch)."""
    a = np.asarray(z.detach().cpu() if hasattr(z, "detach") else z)
    if a.ndim != 2:
        raise InputError(f"expected an (N, d) matrix, got shape {a.shape}")
    m = Moments(a.shape[1]).update(a)  # in memory: one update, no stream, no collective
    if m.nonfinite_rows:
        raise InputError(f"embeddings: {m.nonfinite_rows} rows contain NaN or Inf "
                         f"(first: row {m.first_nonfinite})")  # fmt: skip
    return fit_transform(m, method, dims, remove)
