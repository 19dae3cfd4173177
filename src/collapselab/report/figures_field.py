"""The figures of the field's dimensional-collapse results (the demo's section 6,
``benchmarks/bench_field.py``): Jing et al. 2022's singular-value spectra and Tian et al.
2021's tr F and predictor alignment over training.

The report room may not import ``experiments`` (``[tool.importlinter]``), so the runs are
typed by protocols that :class:`collapselab.experiments.jing.Spectrum` and
:class:`collapselab.experiments.tian.TianRun` satisfy, and the experiments' thresholds
(their collapse lines) are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from collapselab.report.plots import OKABE_ITO, legend_below, page_figure

if TYPE_CHECKING:  # the records drawn; type-only, so report imports no room above it
    from matplotlib.figure import Figure

    from collapselab.experiments.jing import Spectrum
    from collapselab.experiments.tian import TianRun


def log_singular_values(singular_values: Sequence[float]) -> NDArray[np.float64]:
    """``log10(sigma_k / sigma_1)`` of descending singular values; exact zeros (and an
    all-zero spectrum) are drawn at the floor -17."""
    sv = np.asarray(singular_values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (
            np.log10(np.maximum(sv / sv[0], 1e-17))
            if sv.size and sv[0] > 0
            else np.full(sv.size, -17.0)
        )


def spectra_figure(spectra: Sequence[Spectrum], collapse_rtol: float,
                   title: str = "") -> Figure:  # fmt: skip
    """The sorted log singular values of each run (Jing et al.'s figures), with the
    collapse line at ``collapse_rtol`` of the largest, legend below the axes."""
    fig = page_figure(height=4.8)
    ax = fig.subplots()
    for i, s in enumerate(spectra):
        ax.plot(np.arange(1, len(s.singular_values) + 1), log_singular_values(s.singular_values),
                "o-", ms=3, color=OKABE_ITO[i % len(OKABE_ITO)], label=s.name)  # fmt: skip
    ax.axhline(math.log10(collapse_rtol), color="0.5", ls="--", lw=0.8,
               label=f"collapse line {collapse_rtol:g}")  # fmt: skip
    ax.set_xlabel("singular value rank k")
    ax.set_ylabel("log10(sigma_k / sigma_1)")
    ax.set_title(title or "Singular values of the embedding")
    legend_below(fig, ax, ncols=3)
    ax.grid(True, alpha=0.3)
    return fig


def tian_figure(dyn: Sequence[tuple[str, TianRun]], collapsed_below: float) -> Figure:
    """Tian et al.'s runs: tr F relative to its start (log, with the collapse line at
    ``collapsed_below``) and the alignment of Wp with F over steps."""
    fig = page_figure(height=4.6)
    ax1, ax2 = fig.subplots(1, 2)
    styles = ["-", "--", "-.", ":"]
    for i, (name, r) in enumerate(dyn):
        c, ls = OKABE_ITO[i % len(OKABE_ITO)], styles[i % len(styles)]
        n = min(len(r.steps), len(r.trace_f))
        ax1.semilogy(r.steps[:n], [r.trace_f[k] / r.trace_f[0] for k in range(n)], color=c,
                     ls=ls, lw=2, label=name)  # fmt: skip
        ax2.plot(r.steps, r.alignment, color=c, ls=ls, lw=2, label=name)
    ax1.axhline(collapsed_below, color="0.4", ls=":", lw=1)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("tr F / tr F at step 0 (log)")
    drops = [r.trace_f[-1] / r.trace_f[0] for _, r in dyn
             if r.collapsed and r.trace_f and r.trace_f[0] > 0]  # fmt: skip
    ax1.set_title("tr F, the size of the representation")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("alignment of Wp with F")
    ax2.set_ylim(-0.3, 1.1)
    ax2.set_title("Alignment of the predictor Wp with F")
    for ax in (ax1, ax2):
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle(
        "Tian et al. 2021: "
        + (f"collapse takes tr F down {-math.log10(min(drops)):.0f} orders of magnitude; "
           if drops and min(drops) > 0 else "weight decay decides collapse; ")
        + "the alignment cannot show it"
    )  # fmt: skip
    legend_below(fig, ax1, ncols=3)
    return fig


__all__ = ["log_singular_values", "spectra_figure", "tian_figure"]
