"""Figures (matplotlib, Agg backend), each saved atomically.

Colours come from the Okabe-Ito palette (colour-blind safe). Report figures are saved at
:data:`DPI` and made :data:`PAGE_WIDTH` inches wide (a PNG of 1500 px: the report page shows
it ~1070 px wide, so 10-pt text reads at the size of the report's own text);
:func:`figure_meta` records a figure's titles and axis labels for ``report.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from collapselab._atomic import atomic_open
from collapselab.metrics import EmbeddingMetrics
from collapselab.metrics.spectral import marchenko_pastur_edges

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from collapselab.report.html import Report, Section

#: Okabe & Ito (2008) colour-blind-safe palette
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
#: resolution of every saved figure (dots per inch)
DPI = 150
#: width in inches of a figure that spans the report page (PAGE_WIDTH * DPI = 1500 px)
PAGE_WIDTH = 10.0


def new_figure(ncols: int = 1, width: float = 5.0, height: float = 3.6) -> Figure:
    """A figure not attached to any GUI backend (safe in threads and headless)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    return fig


def page_figure(height: float = 4.4, width: float = PAGE_WIDTH) -> Figure:
    """A figure that spans the report page: :data:`PAGE_WIDTH` inches wide (1500 px at
    :data:`DPI`), constrained layout (so ``fig.legend(loc="outside ...")`` keeps legends
    off the axes)."""
    return new_figure(width=width, height=height)


def legend_below(fig: Figure, ax: Any = None, ncols: int = 2, **kw: Any) -> None:
    """One legend for the whole figure, under the axes (never over the data); its entries
    are those of ``ax`` (default: every axes, each label once)."""
    handles, labels, seen = [], [], set()
    for a in [ax] if ax is not None else fig.axes:
        for h, lab in zip(*a.get_legend_handles_labels(), strict=True):
            if lab not in seen and not lab.startswith("_"):
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)),
                   frameon=False, **kw)  # fmt: skip


def figure_meta(fig: Figure) -> dict[str, Any]:
    """What a reader sees of a figure, for ``report.json`` and the tests: its title (the
    suptitle, else the axes titles joined), each axes' title and labels, its size in
    inches and pixels at :data:`DPI`. An axes without ticks (a snapshot panel) needs no
    axis labels: ``labelled`` is True for it. ``yscale`` / ``ylim`` say what range the
    reader sees."""
    sup = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    axes: list[dict[str, Any]] = []
    titles: list[str] = []
    for ax in fig.axes:
        ticks = bool(len(ax.get_xticks()) or len(ax.get_yticks())) and ax.axison
        xl, yl = ax.get_xlabel(), ax.get_ylabel()
        titles += [ax.get_title()] if ax.get_title() else []
        axes.append({"title": ax.get_title(), "xlabel": xl, "ylabel": yl,
                     "labelled": bool(xl and yl) or not ticks, "yscale": ax.get_yscale(),
                     "ylim": [float(v) for v in ax.get_ylim()]})  # fmt: skip
    w, h = fig.get_size_inches()
    return {
        "title": sup or " | ".join(titles),
        "axes": axes,
        "size_in": [float(w), float(h)],
        "size_px": [round(w * DPI), round(h * DPI)],
        "dpi": DPI,
    }


def add_report_figure(
    report: Report, section: Section, name: str, fig: Figure, caption: str
) -> None:
    """``report.add_figure`` that also records :func:`figure_meta` of ``fig`` under
    ``section.data["figures"][name]`` (so ``report.json`` says what each figure shows)."""
    section.data.setdefault("figures", {})[name] = figure_meta(fig)
    report.add_figure(section, name, fig, caption)


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
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
    if ax1.get_legend_handles_labels()[0]:  # nothing labelled when no eigenvalue is > 0
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
