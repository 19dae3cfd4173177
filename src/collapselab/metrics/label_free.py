"""Label-free metrics that claim to rank checkpoints without labels, and their directions.

RankMe (Garrido et al. 2023), LiDAR (Thilak et al. 2023), alpha-ReQ (Agrawal et al. 2022),
the effective rank (Roy & Vetterli 2007), the std of L2-normalised rows (Chen & He 2021)
and Wang & Isola's (2020) uniformity and alignment. :data:`METRICS` states each one's
claimed direction (``MetricSpec.sign``: +1 higher is better, -1 lower is better);
:func:`label_free_metrics` measures them on a representation. Which of them actually
predicts accuracy is validated by :mod:`collapselab.experiments.selection`.

Pure numpy: every value comes from :func:`collapselab.metrics.compute_metrics` (float64
moments) and, for the view-based metrics, from :func:`lidar` and
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
               "power-law exponent of the centred spectrum, all positive eigenvalues; "
               "a slower decay (smaller alpha) read as better"),
    MetricSpec("alpha_req", "alpha-ReQ -|alpha-1|", 1, False,
               "Agrawal et al. 2022: alpha near 1 is best; score -|alpha - 1|"),
    MetricSpec("lidar", "LiDAR", 1, True,
               "Thilak et al. 2023: entropy rank of the LDA matrix, augmented views of an "
               "image as its class (n=200 images, q=10 views, delta=1e-4 relative, eps=1e-8)"),
    MetricSpec("std_l2", "std of L2-normalised rows", 1, False,
               "Chen & He 2021 Sec. 4.1: 0 collapsed, 1/sqrt(d) isotropic"),
    MetricSpec("uniformity", "uniformity (t=2)", -1, False,
               "Wang & Isola 2020: log E exp(-2 ||u_i - u_j||^2), lower is more uniform"),
    MetricSpec("alignment", "alignment (alpha=2)", -1, True,
               "Wang & Isola 2020: E ||u - u'||^2 of two views, lower is better"),
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
    out = {
        "effective_rank": m.effective_rank,
        "rankme": m.rankme,
        "alpha": m.power_law_alpha,
        "alpha_req": -abs(m.power_law_alpha - 1.0),
        "std_l2": m.std_of_l2_normalized,
        "uniformity": m.uniformity,
    }
    if views is not None:
        out["lidar"] = lidar(views)
        a, b = (views[:, 0], views[:, 1]) if paired is None else (views[:, 0], paired)
        out["alignment"] = alignment(a, b)
    return {k: float(v) for k, v in out.items()}


__all__ = [
    "LIDAR_DELTA",
    "LIDAR_EPS",
    "METRICS",
    "METRIC_NAMES",
    "MetricSpec",
    "label_free_metrics",
    "lidar",
    "metric_spec",
]
