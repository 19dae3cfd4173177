"""Label-free metrics that claim to rank checkpoints without labels, and their directions.

RankMe (Garrido et al. 2023), LiDAR (Thilak et al. 2023), alpha-ReQ (Agrawal et al. 2022),
the effective rank (Roy & Vetterli 2007), the std of L2-normalised rows (Chen & He 2021),
Wang & Isola's (2020) uniformity and alignment, and the intrinsic dimension (TwoNN, Facco
et al. 2017) as the baseline of the intrinsic-dimension family (IdEst, Mordacq et al.).
:data:`METRICS` states each one's claimed direction (``MetricSpec.sign``: +1 higher is
better, -1 lower is better); :func:`label_free_metrics` measures them on a representation.
Which of them actually predicts accuracy is validated by
:mod:`collapselab.experiments.selection`.

Pure numpy: the spectral values come from :func:`collapselab.metrics.compute_metrics`
(float64 moments; alpha refitted by :func:`alpha_req_fit` as the authors' library does),
the intrinsic dimension from :func:`twonn`, the view-based metrics from :func:`lidar` and
:func:`collapselab.metrics.alignment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from collapselab.errors import ConfigError, InputError
from collapselab.metrics.geometry import alignment
from collapselab.metrics.spectral import entropy_rank
from collapselab.metrics.summary import compute_metrics

LIDAR_DELTA = 1e-4  # ridge on the within-class scatter, relative to its mean eigenvalue
LIDAR_EPS = 1e-8  # added to each p_k, as RankMe's epsilon (Thilak et al. 2023, Eq. 5)
#: alpha-ReQ's fit window, 1-based eigenvalue ranks (reptrix ``get_alpha``:
#: ``fit_range=np.arange(5, 100)``, shifted by one inside ``get_powerlaw``)
ALPHA_RANKS = (6, 100)
TWONN_POINTS = 2000  # rows (a fixed random subset) the TwoNN estimate uses
TWONN_DISCARD = 0.1  # fraction of the largest ratios r2/r1 left out (Facco et al. 2017)


@dataclass(frozen=True)
class MetricSpec:
    """One label-free metric and the direction its paper claims.

    Attributes:
        name: key in :func:`label_free_metrics`'s result (and in
            :attr:`collapselab.experiments.selection.RunResult.metrics`).
        label: for tables.
        sign: +1 if the paper says higher is better, -1 if lower is better.
        needs_views: needs augmented views of the inputs (LiDAR, alignment): unavailable
            for a bare embedding file.
        source: paper and definition.
    """

    name: str
    label: str
    sign: int
    needs_views: bool
    source: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("effective_rank", "effective rank", 1, False,
               "Roy & Vetterli 2007: exp entropy of the centred covariance eigenvalues"),
    MetricSpec("rankme", "RankMe", 1, False,
               "Garrido et al. 2023 Eq. 1: singular values of the uncentred Z, eps 1e-7"),
    MetricSpec("alpha", "alpha (power-law decay)", -1, False,
               "power-law exponent of the centred spectrum, fitted as alpha-ReQ's library "
               "(reptrix) does: log-log least squares over ranks 6-100 weighted 1/k; a "
               "slower decay (smaller alpha) read as better"),
    MetricSpec("alpha_req", "alpha-ReQ -|alpha-1|", 1, False,
               "Agrawal et al. 2022: alpha (ranks 6-100, weights 1/k) near 1 is best; "
               "score -|alpha - 1|"),
    MetricSpec("lidar", "LiDAR", 1, True,
               "Thilak et al. 2023: entropy rank of the LDA matrix, augmented views of an "
               "image as its class (n=1000 images > d=256, q=10 views, delta=1e-4 "
               "relative, eps=1e-8)"),
    MetricSpec("std_l2", "std of L2-normalised rows", 1, False,
               "Chen & He 2021 Sec. 4.1: 0 collapsed, 1/sqrt(d) isotropic"),
    MetricSpec("uniformity", "uniformity (t=2)", -1, False,
               "Wang & Isola 2020: log E exp(-2 ||u_i - u_j||^2), lower is more uniform"),
    MetricSpec("alignment", "alignment (alpha=2)", -1, True,
               "Wang & Isola 2020: E ||u - u'||^2 of two views, lower is better"),
    MetricSpec("twonn", "intrinsic dim. (TwoNN)", -1, False,
               "Facco et al. 2017 TwoNN on 2000 rows (10% largest ratios discarded), the "
               "IdEst baseline: a lower intrinsic dimension read as better (IdEst, Mordacq "
               "et al.; Ansuini et al. 2019)"),
)  # fmt: skip
METRIC_NAMES = tuple(m.name for m in METRICS)


def metric_spec(name: str) -> MetricSpec:
    """The :class:`MetricSpec` called ``name``.

    Raises:
        ConfigError: unknown metric.
    """
    for m in METRICS:
        if m.name == name:
            return m
    raise ConfigError(f"unknown metric {name!r}; choose one of {', '.join(METRIC_NAMES)}")


def lidar(
    views: NDArray[np.floating[Any]], delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS
) -> float:
    """LiDAR (Thilak et al. 2023, "LiDAR: Sensing Linear Probing Performance in Joint
    Embedding SSL Architectures", Eqs. 2-5): the effective rank of the linear
    discriminant matrix when the ``q`` augmented views of one input form one class.

    With class means ``mu_i``, grand mean ``mu``::

        S_b = 1/(n-1) sum_i (mu_i - mu)(mu_i - mu)^T                      (d, d)
        S_w = 1/(n(q-1)) sum_ij (e_ij - mu_i)(e_ij - mu_i)^T + delta' I    (d, d)
        L   = S_w^{-1/2} S_b S_w^{-1/2}
        LiDAR = exp(-sum_k p_k log p_k),  p_k = lam_k(L) / sum(lam) + eps

    Departure from the paper: ``delta' = delta * trace(S_w) / d`` (ridge relative to
    the mean within-class variance) instead of an absolute ``delta``, so LiDAR does not
    depend on the scale of the embeddings.

    Args:
        views: ``(n, q, d)`` embeddings: ``q >= 2`` views of each of ``n >= 2`` inputs.
        delta: relative ridge.
        eps: added to each ``p_k``.

    Returns:
        A value in ``[1, d]`` (up to ``eps``); nan when the class means coincide.

    Raises:
        InputError: ``views`` is not ``(n >= 2, q >= 2, d)``.
    """
    e = np.asarray(views, dtype=np.float64)
    if e.ndim != 3 or e.shape[0] < 2 or e.shape[1] < 2:
        raise InputError(f"lidar: views of shape {e.shape}; expected (n >= 2, q >= 2, d)")
    n, q, d = e.shape
    mu_i = e.mean(axis=1)  # (n, d)
    between = mu_i - mu_i.mean(axis=0)  # (n, d)
    s_b = between.T @ between / (n - 1)  # (d, d)
    within = (e - mu_i[:, None, :]).reshape(n * q, d)  # (n q, d)
    s_w = within.T @ within / (n * (q - 1))  # (d, d)
    s_w += delta * max(float(np.trace(s_w)) / d, np.finfo(np.float64).tiny) * np.eye(d)
    w, v = np.linalg.eigh(s_w)
    inv_sqrt = (v / np.sqrt(w)) @ v.T  # S_w^{-1/2}, (d, d)
    lam = np.linalg.eigvalsh(inv_sqrt @ s_b @ inv_sqrt)
    return entropy_rank(np.clip(lam, 0.0, None), eps=eps)


def alpha_req_fit(
    eigenvalues: NDArray[np.floating[Any]], ranks: tuple[int, int] = ALPHA_RANKS
) -> float:
    """alpha-ReQ's decay exponent (Agrawal et al. 2022), fitted as the authors' library
    does (reptrix ``get_powerlaw``, after Stringer et al. 2019).

    ``log lam_k = b - alpha log k`` by weighted least squares over the 1-based ranks
    ``k = lo..hi`` of the descending spectrum, weight ``1/k`` on each rank (the log-spaced
    ranks count alike). Ranks past the last positive eigenvalue are left out.

    Returns:
        alpha; nan when fewer than 3 positive eigenvalues lie in the window.
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())[::-1]
    lo, hi = ranks
    hi = min(hi, int(np.count_nonzero(lam > 0)))
    k = np.arange(lo, hi + 1, dtype=np.float64)
    if k.size < 3:
        return float("nan")
    x = np.stack([-np.log(k), np.ones_like(k)], axis=1)  # (K, 2)
    y = np.log(lam[lo - 1 : hi])
    w = 1.0 / k
    b = np.linalg.solve(x.T @ (x * w[:, None]), (x * w[:, None]).T @ y)
    return float(b[0])


def twonn(
    x: NDArray[np.floating[Any]],
    discard: float = TWONN_DISCARD,
    max_points: int = TWONN_POINTS,
    seed: int = 0,
) -> float:
    """Intrinsic dimension by TwoNN (Facco, d'Errico, Rodriguez & Laio 2017, Sci. Rep.).

    For each point the ratio ``mu = r2 / r1`` of its second to first nearest-neighbour
    distance is Pareto distributed, ``F(mu) = 1 - mu^(-d)``. With the ratios sorted and
    ``F_i = i / N``, ``d`` is the slope through the origin of ``-log(1 - F_i)`` against
    ``log mu_i`` over the smallest ``(1 - discard) N`` ratios (the paper's fit; the largest
    ratios are the noisiest). Points at distance 0 from another (duplicates) are dropped.

    Args:
        x: ``(N, D)`` points; a fixed random subset of ``max_points`` rows (``seed``) is
            used when ``N`` is larger (the pairwise distances cost ``N^2 D``).
        discard: fraction of the largest ratios left out of the fit.

    Returns:
        The dimension estimate; nan with fewer than 3 usable points.
    """
    a = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if a.shape[0] > max_points:
        a = a[np.sort(np.random.default_rng(seed).permutation(a.shape[0])[:max_points])]
    sq = (a * a).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (a @ a.T), 0.0)  # (N, N)
    np.fill_diagonal(d2, np.inf)
    two = np.sqrt(np.partition(d2, 1, axis=1)[:, :2])  # (N, 2): r1 <= r2
    ok = two[:, 0] > 1e-12 * max(float(np.sqrt(sq.max(initial=0.0))), 1e-300)
    mu = np.sort(two[ok, 1] / two[ok, 0])
    n = mu.size
    keep = int(np.floor(n * (1.0 - discard)))
    if keep < 3:
        return float("nan")
    xs = np.log(mu[:keep])
    ys = -np.log(1.0 - np.arange(1, keep + 1) / n)
    denom = float(xs @ xs)
    return float(xs @ ys / denom) if denom > 0 else float("nan")


def label_free_metrics(
    rep: NDArray[np.floating[Any]],
    paired: NDArray[np.floating[Any]] | None = None,
    views: NDArray[np.floating[Any]] | None = None,
) -> dict[str, float]:
    """Every metric of :data:`METRICS` that the inputs allow, keyed by name.

    Args:
        rep: ``(N, d)`` representations.
        paired: ``(n, d)`` a second augmented view of each of the ``n`` inputs of
            ``views``, used with ``views[:, 0]`` for alignment instead of ``views[:, 1]``
            (optional; needs ``views``).
        views: ``(n, q, d)`` augmented views for LiDAR and alignment (optional).

    Raises:
        InputError: ``paired`` without ``views``.
    """
    if paired is not None and views is None:
        raise InputError("label_free_metrics: paired views come with views")
    m = compute_metrics(rep)
    alpha = alpha_req_fit(m.eigenvalues)
    out = {
        "effective_rank": m.effective_rank,
        "rankme": m.rankme,
        "alpha": alpha,
        "alpha_req": -abs(alpha - 1.0),
        "std_l2": m.std_of_l2_normalized,
        "uniformity": m.uniformity,
        "twonn": twonn(rep),
    }
    if views is not None:
        out["lidar"] = lidar(views)
        a, b = (views[:, 0], views[:, 1]) if paired is None else (views[:, 0], paired)
        out["alignment"] = alignment(a, b)
    return {k: float(v) for k, v in out.items()}


__all__ = [
    "ALPHA_RANKS",
    "LIDAR_DELTA",
    "LIDAR_EPS",
    "METRICS",
    "METRIC_NAMES",
    "MetricSpec",
    "TWONN_DISCARD",
    "TWONN_POINTS",
    "alpha_req_fit",
    "label_free_metrics",
    "lidar",
    "metric_spec",
    "twonn",
]
