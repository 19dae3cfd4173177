"""The figures of the check and rank reports (matplotlib, Agg; Okabe-Ito colours).

Each function returns a :class:`~matplotlib.figure.Figure` sized for the report's full
width (10 inches, rendered at :data:`FIGURE_DPI`: 1500 pixels, shown at about 1070), with
a title, labelled axes and the legend below the axes, never over the data. The numbers a
figure draws are returned beside it (or computed by the caller) so the report's JSON
holds them.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from collapselab.metrics.spectral import marchenko_pastur_edges
from collapselab.report.html import FigureRef, Section
from collapselab.report.plots import OKABE_ITO, new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from collapselab.metrics import EmbeddingMetrics

#: resolution every report figure is rendered at (passed to ``save_figure`` explicitly)
FIGURE_DPI = 150
#: width of a full-width figure, inches (the page is ~1070 CSS pixels wide)
WIDTH = 10.0
#: eigenvalues below this share of the largest plotted one fall off the log axis
SPECTRUM_FLOOR = 1e-10

NOW, BASE, REF, GREY = OKABE_ITO[0], OKABE_ITO[3], OKABE_ITO[1], "0.45"


def add_figure(section: Section, name: str, fig: Figure, caption: str,
               dpi: int = FIGURE_DPI) -> None:  # fmt: skip
    """Render ``fig`` to PNG at ``dpi`` (explicitly: not ``save_figure``'s default) and
    append it to ``section``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_figure(fig, Path(tmp) / f"{name}.png", dpi=dpi)
        section.figures.append(FigureRef(name, caption, path.read_bytes()))


def _legend_below(fig: Figure, ax: Axes, ncols: int = 4) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(handles)),
                   frameon=False)  # fmt: skip


def _scaled_spectrum(m: EmbeddingMetrics) -> NDArray[np.float64]:
    """Eigenvalues as a share of the mean squared norm (they sum to the spread)."""
    lam = np.asarray(m.eigenvalues, dtype=np.float64)
    return lam / m.mean_sq_norm if m.mean_sq_norm > 0 else np.zeros_like(lam)


def spectrum_figure(m: EmbeddingMetrics, base: EmbeddingMetrics | None = None) -> Figure:
    """Centred eigenvalues / mean squared norm against their rank (log), the band a
    centred isotropic Gaussian of the same ``(n, d)`` fills (Marchenko-Pastur, around
    ``1/d``), and the baseline's spectrum when given. A dimensional collapse falls below
    the band after a few directions, a complete one everywhere (its spread is tiny)."""
    fig = new_figure(width=WIDTH, height=4.4)
    ax = fig.subplots()
    lam = _scaled_spectrum(m)
    top = float(lam.max()) if lam.size else 0.0
    dots = m.d <= 128  # markers only while they stay apart
    curves = [(lam, NOW, "o-" if dots else "-", "this matrix")]
    if base is not None:
        blam = _scaled_spectrum(base)
        top = max(top, float(blam.max()) if blam.size else 0.0)
        curves.append((blam, BASE, "s--" if dots else "--", "baseline"))
    # the reference: a centred isotropic Gaussian of the same (n, d), whose eigenvalues
    # share its whole mean squared norm (spread 1): 1/d each, spread by the MP law (with
    # n <= d only n - 1 are non-zero: 1/(n - 1) each on average)
    per_dim = 1.0 / m.d
    lo, hi = marchenko_pastur_edges(m.n, m.d, per_dim)
    avail = max(min(m.d, m.n - 1), 1)
    top = max(top, hi)
    floor = top * SPECTRUM_FLOOR
    if top > 0:
        ax.axhspan(max(lo, floor), hi, color=REF, alpha=0.22,
                   label="centred isotropic Gaussian of the same shape (Marchenko-Pastur band)")
        ax.axhline(1.0 / avail, color=REF, lw=1.2, label=f"isotropic: 1/{avail} per direction"
                   + ("" if avail == m.d else f" (n = {m.n} rows: {avail} directions)"))
        clipped = False
        for values, colour, style, label in curves:
            k = np.arange(1, values.size + 1)
            keep = values > floor
            if keep.any():
                ax.semilogy(k[keep], values[keep], style, color=colour, ms=3, lw=1.3,
                            label=label)  # fmt: skip
            if (~keep).any():  # round-off or exactly 0: shown on the floor, not dropped
                ax.semilogy(k[~keep], np.full(int((~keep).sum()), floor), "v", color=colour,
                            ms=4, alpha=0.8)  # fmt: skip
                clipped = True
        if clipped:
            ax.plot([], [], "v", color=GREY, ms=4,
                    label=f"below {SPECTRUM_FLOOR:g} of the largest (drawn at that floor)")
        low = floor if clipped else None
        ax.set_ylim(bottom=low / 2 if low else None, top=top * 2)
    else:
        ax.text(0.5, 0.5, "no variance: every row is the same vector", ha="center",
                transform=ax.transAxes)  # fmt: skip
    ax.set_xlim(0.5, m.d + 0.5)
    ax.set_xlabel("direction k (eigenvalues of the centred covariance, largest first)")
    ax.set_ylabel("eigenvalue / mean squared norm")
    er = m.effective_rank
    ax.set_title((f"Spectrum: effective rank {er:.3g} of {m.d} directions (an isotropic "
                  f"Gaussian's: {m.isotropic_effective_rank:.3g})" if math.isfinite(er)
                  else f"Spectrum of {m.d} directions")
                 + f"; spread {m.relative_variance:.3g}")  # fmt: skip
    ax.grid(True, which="major", alpha=0.3)
    _legend_below(fig, ax, ncols=2)
    return fig


def variance_share_figure(m: EmbeddingMetrics, base: EmbeddingMetrics | None = None,
                          top_k: int = 30) -> tuple[Figure, dict[str, Any]]:  # fmt: skip
    """Left: share of the centred variance on each of the top ``top_k`` directions (bars;
    the baseline's beside them). Right: cumulative share against the number of directions,
    with the 90% and 99% marks. Returns the figure and the numbers drawn."""
    fig = new_figure(ncols=2, width=WIDTH / 2, height=4.2)
    ax1, ax2 = fig.subplots(1, 2)
    series = [("this matrix", m, NOW)] + ([("baseline", base, BASE)] if base is not None else [])
    k_top = min(top_k, m.d)
    width = 0.8 / len(series)
    data: dict[str, Any] = {"top_k": k_top}
    for i, (label, met, colour) in enumerate(series):
        lam = np.asarray(met.eigenvalues, dtype=np.float64)
        total = float(lam.sum())
        share = lam / total if total > 0 else np.zeros_like(lam)
        cum = np.cumsum(share)
        key = "now" if i == 0 else "baseline"
        data[key] = {"share_top": share[:k_top].tolist(), "dims_90": met.dims_90,
                     "dims_99": met.dims_99}  # fmt: skip
        x = np.arange(1, k_top + 1) + (i - (len(series) - 1) / 2) * width
        ax1.bar(x, share[:k_top], width=width, color=colour, label=label)
        if total > 0:
            k = np.arange(1, lam.size + 1)
            if m.d <= 64:  # a linear axis: start the curve at (0, 0)
                k, cum = np.concatenate([[0], k]), np.concatenate([[0.0], cum])
            ax2.plot(k, cum, "-" if i == 0 else "--", color=colour, lw=1.6, label=label)
    ax1.axhline(1.0 / m.d, color=REF, lw=1.2, label=f"isotropic: 1/{m.d} each")
    ax1.set_xlabel(f"direction k (top {k_top})")
    ax1.set_ylabel("share of the centred variance")
    ax1.set_title(f"Share of the variance on each of the top {k_top} directions")
    ax1.set_xlim(0.4, k_top + 0.6)
    ax1.grid(True, axis="y", alpha=0.3)
    for frac in (0.90, 0.99):
        ax2.axhline(frac, color=GREY, lw=0.8, ls=":")
    for _, met, colour in series[:1]:
        for frac, dims in ((0.90, met.dims_90), (0.99, met.dims_99)):
            ax2.plot([dims], [frac], "o", color=colour, ms=5)
            ax2.annotate(f"{frac:.0%} in {dims}", (dims, frac), fontsize=9, color=colour,
                         xytext=(-6, 5), textcoords="offset points", ha="right")  # fmt: skip
    ax2.set_xscale("log" if m.d > 64 else "linear")
    ax2.set_xlim(1 if m.d > 64 else 0, m.d)
    ax2.set_ylim(0, 1.1)  # room for the 99% label above its point
    ax2.set_xlabel("number of directions k" + (" (log scale)" if m.d > 64 else ""))
    ax2.set_ylabel("cumulative share of the variance")
    ax2.set_title("Cumulative share of the variance")
    ax2.grid(True, which="both", alpha=0.3)
    _legend_below(fig, ax1, ncols=3)
    return fig, data


def pair_cosines(rows: NDArray[Any], max_rows: int = 2048) -> NDArray[np.float64]:
    """Cosines of every pair ``i < j`` of (at most ``max_rows``) non-zero rows."""
    r = np.asarray(rows, dtype=np.float64)[:max_rows]
    norms = np.sqrt(np.einsum("ij,ij->i", r, r))
    u = r[norms > 0] / norms[norms > 0, None]
    if u.shape[0] < 2:
        return np.empty(0)
    g = u @ u.T
    iu = np.triu_indices(u.shape[0], 1)
    return np.clip(g[iu], -1.0, 1.0)


def cosine_histogram_figure(
    samples: Sequence[tuple[str, NDArray[Any], float]], d: int, bins: int = 100
) -> tuple[Figure, dict[str, Any]]:
    """Histogram of the cosine of random pairs of rows (from each matrix's row sample),
    the exact mean cosine of each, and an isotropic Gaussian's (about ``N(0, 1/d)``).

    Args:
        samples: ``(label, row sample, exact mean cosine)``, this matrix first.
        d: columns (for the isotropic reference).
    """
    fig = new_figure(width=WIDTH, height=4.0)
    ax = fig.subplots()
    edges = np.linspace(-1.0, 1.0, bins + 1)
    data: dict[str, Any] = {"edges": edges.tolist()}
    colours = [NOW, BASE]
    for i, (label, rows, mean_cos) in enumerate(samples):
        cos = pair_cosines(rows)
        counts, _ = np.histogram(cos, bins=edges)
        density = counts / max(cos.size, 1) / np.diff(edges)
        key = "now" if i == 0 else "baseline"
        data[key] = {"label": label, "pairs": int(cos.size), "counts": counts.tolist(),
                     "mean_cosine": mean_cos}  # fmt: skip
        ax.stairs(density, edges, fill=i == 0, alpha=0.55 if i == 0 else 1.0,
                  color=colours[i % 2], lw=1.8, label=f"{label} ({cos.size} pairs)")  # fmt: skip
        if math.isfinite(mean_cos):
            ax.axvline(mean_cos, color=colours[i % 2], ls="--", lw=1.3,
                       label=f"{label}: mean cosine {mean_cos:.3g} (all pairs)")  # fmt: skip
    x = np.linspace(-1.0, 1.0, 801)
    ref = np.sqrt(d / (2 * np.pi)) * np.exp(-d * x**2 / 2)
    ax.plot(x, ref, color=GREY, lw=1.2, ls=":", label=f"isotropic Gaussian: N(0, 1/{d})")
    ax.set_xlim(-1.02, 1.02)
    ax.set_xlabel("cosine similarity of a random pair of rows")
    ax.set_ylabel("density")
    ax.set_title("Cosine of random pairs of rows (1 when every row points the same way)")
    ax.grid(True, alpha=0.3)
    _legend_below(fig, ax, ncols=2)
    return fig, data


def spearman_figure(metric: str, validation: Mapping[str, Any]) -> Figure:
    """The metric's Spearman correlation with linear-probe accuracy and its 95% interval,
    per data set across methods (bold) and within each method, against the trust lines."""
    rows: list[tuple[str, float | None, float | None, float | None, bool]] = []
    for data, entry in validation.items():
        s = entry.get("spearman") or {}
        rows.append((f"{data}: all methods (n={entry.get('n', '?')})", s.get("value"),
                     s.get("lo"), s.get("hi"), True))  # fmt: skip
        for method, w in sorted((entry.get("within") or {}).items()):
            rows.append((f"{data}: {method} only", w.get("value"), w.get("lo"), w.get("hi"),
                         False))  # fmt: skip
    height = 1.6 + 0.38 * max(len(rows), 1)
    fig = new_figure(width=WIDTH, height=height)
    ax = fig.subplots()
    for y, (_, value, lo, hi, main) in enumerate(reversed(rows)):
        if value is None or lo is None or hi is None:
            continue
        ax.errorbar([value], [y], xerr=[[value - lo], [hi - value]], fmt="o",
                    color=NOW if main else GREY, ms=7 if main else 5, lw=2.4 if main else 1.3,
                    capsize=4)  # fmt: skip
    ax.axvline(0.0, color="0.2", lw=1)
    ax.axvline(0.4, color=REF, lw=1, ls="--", label="trust moderate: lower bound >= 0.4")
    ax.axvline(0.7, color=OKABE_ITO[2], lw=1, ls="--", label="trust high: lower bound >= 0.7")
    ax.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)])
    ax.set_xlim(-1.0, 1.0)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"Spearman rho of {metric} (oriented: higher means better) with "
                  "linear-probe accuracy, 95% interval")  # fmt: skip
    ax.set_ylabel("data set: runs compared")
    ax.set_title(f"How well {metric} predicted accuracy in the validation sweep")
    ax.grid(True, axis="x", alpha=0.3)
    _legend_below(fig, ax, ncols=2)
    return fig
