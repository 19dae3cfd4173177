"""Every metric of an embedding matrix, read off one :class:`~.moments.Moments`."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from collapselab._pool import LazyPool
from collapselab.errors import DegenerateInputError
from collapselab.metrics import spectral
from collapselab.metrics.geometry import combine_pair_tiles, pair_tiles, unit_sample
from collapselab.metrics.moments import SAMPLE_SIZE, Moments, single_threaded_blas


@dataclass(frozen=True)
class EmbeddingMetrics:
    """The numbers behind a collapse verdict for an ``(n, d)`` embedding matrix.

    Spectra are of the centred covariance ``C = (1/n) sum (z_i - mu)(z_i - mu)^T``
    (``eigenvalues``) and of the uncentred second moment ``M = (1/n) Z^T Z``
    (``uncentered_eigenvalues``): the article's "rank(Z) = 1" speaks of ``M``, its
    "C = 0" of ``C``. Both descending; negative round-off is clipped to 0 and reported in
    ``clipped_eigenvalues`` / ``most_negative_eigenvalue``.
    """

    n: int
    d: int
    eigenvalues: NDArray[np.float64]
    uncentered_eigenvalues: NDArray[np.float64]
    clipped_eigenvalues: int
    most_negative_eigenvalue: float
    effective_rank: float  #: canonical (spectral.effective_rank); nan if numerical_rank is 0
    rankme: float  #: Garrido et al. 2023, singular values of uncentred Z, eps 1e-7
    effective_rank_normalized: float  #: MONAI: centred singular values, / min(n - 1, d)
    isotropic_effective_rank: float  #: reference: an isotropic Gaussian of the same (n, d)
    numerical_rank: int  #: centred eigenvalues above rank_rtol * largest uncentred one
    numerical_rank_uncentered: int
    rank_rtol: float
    participation_ratio: float
    dims_90: int
    dims_99: int
    power_law_alpha: float
    power_law_r2: float
    total_variance: float  #: trace(C)
    mean_sq_norm: float  #: E ||z_i||^2 = trace(M)
    relative_variance: float  #: trace(C) / trace(M): 0 = all rows equal, ~1 = centred data
    per_dim_std: NDArray[np.float64]
    mean_norm: float
    std_norm: float
    min_norm: float
    max_norm: float
    zero_rows: int
    std_of_l2_normalized: float  #: 0 collapsed, ~1/sqrt(d) isotropic, exactly so for eye(d)
    mean_cosine: float  #: exact mean of cos(z_i, z_j) over all pairs i != j
    max_cosine: float  #: over pairs of the row sample
    uniformity: float  #: Wang & Isola, t = 2, over the row sample
    sample_size: int
    alignment: float | None  #: Wang & Isola, alpha = 2, when paired views were given
    nonfinite_rows: int
    first_nonfinite: int
    #: 0, unless finite entries beyond 2**100 (or only entries below 2**-100) were fed:
    #: then the scale-dependent values (eigenvalues, uncentered_eigenvalues,
    #: most_negative_eigenvalue, total_variance, mean_sq_norm, per_dim_std and the norms)
    #: are of ``z * 2**-scale_exp`` (multiply by ``2**scale_exp``, squared for the
    #: second-order ones); in the input's units they can exceed float64 (1e200 rows have
    #: eigenvalues near 1e400). Every other metric, and so the verdict, is scale-free.
    scale_exp: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays become lists, nan/inf become None."""

        def clean(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return [clean(x) for x in v.tolist()]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        return {k: clean(v) for k, v in asdict(self).items()}


def eigenvalues_desc(a: NDArray[np.float64]) -> tuple[NDArray[np.float64], int, float]:
    """Eigenvalues of the symmetric ``a``, descending, negatives clipped to 0; with the
    number clipped and the most negative one (0.0 if none).

    LAPACK runs single-threaded: a d x d eigensolve gains ~30% from a second thread, but
    OpenBLAS's idle threads then spin for a while and slow the next streaming update down
    by more than that."""
    with single_threaded_blas():
        return _eigenvalues_desc(a)


def _eigenvalues_desc(a: NDArray[np.float64]) -> tuple[NDArray[np.float64], int, float]:
    """:func:`eigenvalues_desc` under the caller's BLAS thread limit."""
    sym = np.add(a, a.T)
    sym *= 0.5  # (a + a.T) * 0.5, without a second d x d temporary
    lam = np.linalg.eigvalsh(sym)[::-1].copy()
    neg = lam < 0
    most_negative = float(lam.min()) if neg.any() else 0.0
    lam[neg] = 0.0
    return lam, int(neg.sum()), most_negative


def eigh_desc(a: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Eigenvalues (descending) and eigenvectors (columns, same order) of the symmetric
    ``a``; single-threaded LAPACK as in :func:`eigenvalues_desc`."""
    with single_threaded_blas():
        lam, vec = np.linalg.eigh((a + a.T) * 0.5)
    return lam[::-1].copy(), vec[:, ::-1].copy()


#: the pairwise statistics of the row sample run in this many parts, side by side
_PAIR_PARTS = 2
#: helper threads for :func:`summarize`: the pair parts and one eigensolve (its own pool:
#: never one that may be waiting on it)
_POOL = LazyPool(_PAIR_PARTS + 1, "summarize")


def summarize(m: Moments) -> EmbeddingMetrics:
    """Compute every metric from accumulated moments (cost: two ``d x d`` eigensolves and
    the pairwise statistics of the row sample, side by side on helper threads).

    Raises:
        DegenerateInputError: fewer than 2 finite rows.
    """
    n, d = m.n, m.d
    if n < 2:
        raise DegenerateInputError(
            f"{n} finite row{'s' if n != 1 else ''}; need at least 2 to measure spread"
        )
    # The costly parts (two d x d eigensolves, the pairwise statistics of the row sample
    # in parts) are independent: they run side by side, each with single-threaded BLAS
    # (the same arithmetic whatever the threads, so the same numbers).
    with single_threaded_blas():
        pool = _POOL.get()
        uncentred = pool.submit(_eigenvalues_desc, m.second_moment())  # first: the longest
        u = unit_sample(m.sample_rows)  # meanwhile, on this thread
        parts = [] if u is None else [pool.submit(pair_tiles, u, k, _PAIR_PARTS)
                                      for k in range(_PAIR_PARTS)]  # fmt: skip
        lam, clipped, most_neg = _eigenvalues_desc(m.covariance())
        mu2 = uncentred.result()[0]
        unif, max_cos = (float("nan"), float("nan")) if u is None else combine_pair_tiles(
            [p.result() for p in parts], u.shape[0])  # fmt: skip
    rtol = spectral.default_rank_rtol(d, m.input_eps)
    total_var = float(lam.sum())
    mean_sq = m.sq_norm_sum / n
    mean_norm = m.norm_sum / n
    nz = n - m.zero_rows
    if nz >= 2:
        # unbiased (n - 1) per-dimension variance, the convention of SimSiam / lightly
        u_var = (m.unit_sq_sum - m.unit_sum**2 / nz) / (nz - 1)
        std_l2 = float(np.sqrt(np.maximum(u_var, 0.0)).mean())
    else:
        std_l2 = float("nan")
    mean_cos = (float(m.unit_sum @ m.unit_sum) - nz) / (nz * (nz - 1)) if nz >= 2 else float("nan")
    fit = spectral.power_law_alpha(lam)
    per_dim_var = np.clip(np.diag(m.scatter) / n, 0.0, None)
    num_rank = spectral.numerical_rank(lam, rtol, reference=float(mu2[0]))
    # when every direction of variance is below rounding, there is nothing to count
    erank = spectral.effective_rank(lam) if num_rank else float("nan")
    metrics = EmbeddingMetrics(
        n=n,
        d=d,
        eigenvalues=lam,
        uncentered_eigenvalues=mu2,
        clipped_eigenvalues=clipped,
        most_negative_eigenvalue=most_neg,
        effective_rank=erank,
        rankme=spectral.rankme(mu2, n),
        effective_rank_normalized=spectral.effective_rank_normalized(lam, n),
        isotropic_effective_rank=spectral.isotropic_effective_rank(n, d),
        numerical_rank=num_rank,
        numerical_rank_uncentered=spectral.numerical_rank(mu2, rtol),
        rank_rtol=rtol,
        participation_ratio=spectral.participation_ratio(lam),
        dims_90=spectral.dims_for_variance(lam, 0.90),
        dims_99=spectral.dims_for_variance(lam, 0.99),
        power_law_alpha=fit.alpha,
        power_law_r2=fit.r2,
        total_variance=total_var,
        mean_sq_norm=mean_sq,
        relative_variance=(total_var / mean_sq) if mean_sq > 0 else 0.0,
        per_dim_std=np.sqrt(per_dim_var),
        mean_norm=mean_norm,
        std_norm=math.sqrt(max(mean_sq - mean_norm**2, 0.0)),
        min_norm=m.norm_min,
        max_norm=m.norm_max,
        zero_rows=m.zero_rows,
        std_of_l2_normalized=std_l2,
        mean_cosine=mean_cos,
        max_cosine=max_cos,
        uniformity=unif,
        sample_size=int(m.sample_keys.size),
        alignment=(m.align_sum / m.align_n) if m.align_n else None,
        nonfinite_rows=m.nonfinite_rows,
        first_nonfinite=m.first_nonfinite,
    )
    return replace(metrics, scale_exp=m.scale_exp) if m.scale_exp else metrics


def compute_metrics(z: Any, z2: Any = None, sample_size: int | None = None) -> EmbeddingMetrics:
    """One-shot metrics of ``z`` (shape ``(N, d)``, numpy or torch) and optional paired view
    (``sample_size``: default :data:`~collapselab.metrics.SAMPLE_SIZE`)."""
    size = SAMPLE_SIZE if sample_size is None else sample_size
    return summarize(Moments.of(z, paired=z2, sample_size=size))
