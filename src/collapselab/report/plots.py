"""Figures (matplotlib, Agg backend), each saved atomically.

Colours come from the Okabe-Ito palette (colour-blind safe).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from collapselab._atomic import atomic_open
from collapselab.metrics import EmbeddingMetrics
from collapselab.metrics.spectral import marchenko_pastur_edges

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Okabe & Ito (2008) colour-blind-safe palette
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> Figure:
    """A figure not attached to any GUI backend (safe in threads and headless)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    with atomic_open(path, "wb", fsync=False) as fh:
        fig.savefig(fh, format=path.suffix.lstrip(".").lower() or "png", dpi=dpi)
    return path


def plot_spectrum(metrics: EmbeddingMetrics, path: str | Path, title: str | None = None) -> Path:
    """Eigen-spectrum (log scale, with the isotropic reference) and cumulative variance.

    Left: the centred covariance eigenvalues against their rank, beside the band an
    isotropic Gaussian of the same ``(n, d)`` and total variance would fill (the
    Marchenko-Pastur edges). Right: cumulative explained variance with the 90% / 99%
    marks.
    """
    lam = np.asarray(metrics.eigenvalues, dtype=np.float64)
    k = np.arange(1, lam.size + 1)
    fig = new_figure(ncols=2)
    ax1, ax2 = fig.subplots(1, 2)
    total = float(lam.sum())
    positive = lam > 0
    if positive.any():
        ax1.semilogy(
            k[positive], lam[positive], ".-", color=OKABE_ITO[0], ms=3, label="centred covariance"
        )
        per_dim = total / lam.size
        lo, hi = marchenko_pastur_edges(metrics.n, metrics.d, per_dim)
        ax1.axhspan(
            max(lo, per_dim * 1e-3),
            hi,
            color=OKABE_ITO[1],
            alpha=0.25,
            label="isotropic reference (MP band)",
        )
        ax1.axhline(per_dim, color=OKABE_ITO[1], lw=1)
    ax1.set_xlabel("eigenvalue rank k")
    ax1.set_ylabel("eigenvalue (variance along direction k)")
    ax1.set_title(title or f"Spectrum: effective rank {metrics.effective_rank:.3g} of {metrics.d}")
    ax1.legend(fontsize=8)
    ax1.grid(True, which="both", alpha=0.3)
    if total > 0:
        cum = np.cumsum(lam) / total
        ax2.plot(k, cum, color=OKABE_ITO[2])
        for frac, dims in ((0.90, metrics.dims_90), (0.99, metrics.dims_99)):
            ax2.axhline(frac, color="0.6", lw=0.8, ls="--")
            ax2.annotate(
                f"{frac:.0%}: {dims} dims",
                (dims, frac),
                fontsize=8,
                xytext=(4, -12),
                textcoords="offset points",
            )
    ax2.set_xlabel("number of directions k")
    ax2.set_ylabel("cumulative share of variance")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("Cumulative explained variance")
    ax2.grid(True, alpha=0.3)
    return save_figure(fig, path)
