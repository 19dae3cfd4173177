"""The figures of ``collapselab demo`` (sections 1, 2, 5 and 7; section 4 is
:mod:`.figures_compare`, section 6 :mod:`.figures_field`).

Each function takes the runs as plain records and returns a page-wide
:class:`~matplotlib.figure.Figure`; the demo adds it to its report with
:func:`collapselab.report.plots.add_report_figure`. The report room may not import
``theory``, ``experiments`` or ``text`` (``[tool.importlinter]``), so the records are typed
by protocols that :class:`collapselab.theory.demos.DemoRun`,
:class:`collapselab.experiments.particles.ParticleRun` and
:class:`collapselab.text.experiment.RunResult` satisfy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from collapselab.report.plots import OKABE_ITO, PAGE_WIDTH, legend_below, new_figure, page_figure

if TYPE_CHECKING:  # the records drawn; type-only, so report imports no room above it
    from matplotlib.figure import Figure

    from collapselab.experiments.particles import ParticleRun
    from collapselab.text.experiment import RunResult
    from collapselab.theory.demos import DemoRun


def run_label(run: DemoRun) -> str:
    """``"infonce-article, Linear(32, 128)"``: the run's loss and encoder."""
    return f"{run.name}, {run.encoder}"


def variance_demo_figure(run: DemoRun) -> Figure:
    """The article's first demo: total variance per step (log); the spectra before / after
    training (centred C) and the uncentred second moment M after training, with the
    round-off line of the numerical rank."""
    fig = page_figure(height=4.6)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.semilogy(run.steps, run.total_variance, color=OKABE_ITO[0], label="total variance")
    ax1.set_xlabel("training step")
    ax1.set_ylabel("total variance trace(C) (log)")
    ax1.set_title(f"Variance per step: {run.total_variance[0]:.3g} -> "
                  f"{run.total_variance[-1]:.2g}")  # fmt: skip
    m0, m1 = run.metrics_init, run.metrics_final
    floor = 1e-22
    for lam, colour, ls, name in (
        (m0.eigenvalues, OKABE_ITO[1], "-", "centred C, before training"),
        (m1.eigenvalues, OKABE_ITO[3], "-", "centred C, after training"),
        (m1.uncentered_eigenvalues, OKABE_ITO[2], "--", "uncentred M, after training"),
    ):
        lam = np.maximum(np.asarray(lam, dtype=float), floor)
        ax2.semilogy(np.arange(1, lam.size + 1), lam, ls, color=colour, marker=".", ms=3,
                     label=name)  # fmt: skip
    tol = m1.rank_rtol * float(m1.uncentered_eigenvalues[0])
    ax2.axhline(tol, color="0.4", ls=":", lw=1, label="round-off line (numerical rank)")
    ax2.axvline(m0.numerical_rank + 0.5, color="0.75", lw=0.8)
    ax2.set_xlabel(f"eigenvalue rank k (of {m0.d})")
    ax2.set_ylabel("eigenvalue (log)")
    ax2.set_title(f"Spectrum: verdict {run.final_verdict} (C ~ 0 after training)")
    for ax in (ax1, ax2):
        ax.grid(True, which="major", alpha=0.3)
    fig.suptitle("The article's first demo: the variance loss collapses the embeddings")
    legend_below(fig, ax2, ncols=2)
    return fig


def demo_traces_figure(runs: Sequence[DemoRun]) -> Figure:
    """One row per run length (the article's 500 steps, the corrected 100), three panels:
    loss; |printed min eig| (dotted) and the k-th eigenvalue (log); effective rank."""
    lengths = sorted({r.total_steps for r in runs}, reverse=True)
    fig = page_figure(height=1.0 + 3.0 * len(lengths))
    axes = fig.subplots(len(lengths), 3, squeeze=False)
    colour = {run_label(r): OKABE_ITO[i % len(OKABE_ITO)] for i, r in enumerate(runs)}
    for row, n in zip(axes, lengths, strict=True):
        ax1, ax2, ax3 = row
        what = f"{n}-step run" + ("s" if sum(r.total_steps == n for r in runs) > 1 else "")
        for run in (r for r in runs if r.total_steps == n):
            c, name = colour[run_label(run)], run_label(run)
            ax1.plot(run.steps, run.loss, color=c, label=name)
            ax2.semilogy(run.steps, [abs(v) + 1e-30 for v in run.printed], color=c, ls=":")
            ax2.semilogy(run.steps, run.kth_eig, color=c)
            ax3.plot(run.steps, run.effective_rank, color=c, label=name)
        ax1.set_title(f"Loss, {what}")
        ax1.set_ylabel("loss")
        ax2.set_title(f"Eigenvalues, {what}")
        ax2.set_ylabel("covariance eigenvalue (log)")
        ax3.set_title(f"Effective rank, {what}")
        ax3.set_ylabel("effective rank")
        for ax in row:
            ax.set_xlabel("training step")
            ax.grid(True, which="major", alpha=0.3)
    # line styles of the middle panels, once, after the runs in the legend
    axes[-1][1].plot([], [], color="0.3", ls=":", label="|printed min eig| (article's code)")
    axes[-1][1].plot([], [], color="0.3", ls="-", label="eigenvalue #k (collapselab)")
    fig.suptitle("The article's second demo (InfoNCE) as written and corrected, per step")
    legend_below(fig, ncols=3)
    return fig


def particles_figure(runs: Sequence[ParticleRun]) -> Figure:
    """Grid of snapshots: one row per objective (named at its left), one column per
    recorded step; the figure spans the report page."""
    cols = max(len(r.steps) for r in runs)
    fig = new_figure(ncols=cols, width=PAGE_WIDTH / cols, height=0.5 + 2.3 * len(runs))
    axes = fig.subplots(len(runs), cols, squeeze=False)
    t = np.linspace(0, 2 * math.pi, 200)
    names = {"attraction": "pure attraction", "infonce": "InfoNCE (NT-Xent)"}
    for r, (run, row) in enumerate(zip(runs, axes, strict=True)):
        for k, ax in enumerate(row):
            ax.plot(np.cos(t), np.sin(t), color="0.8", lw=0.8)
            if k < len(run.steps):
                p = run.positions[k]
                ax.scatter(p[:, 0], p[:, 1], s=14, color=OKABE_ITO[r * 3 % len(OKABE_ITO)])
                ax.set_title(
                    f"step {run.steps[k]}\nuniformity {run.uniformity[k]:.2f}", fontsize=9
                )
            if k == 0:
                ax.set_ylabel(names.get(run.objective, run.objective), fontsize=10)
            ax.set_aspect("equal")
            ax.set_xlim(-1.2, 1.2)
            ax.set_ylim(-1.2, 1.2)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        "Particles on the unit circle: attraction alone collapses them to one point; "
        "InfoNCE's repulsion spreads them out"
    )
    return fig


def finetune_figure(runs: Mapping[str, RunResult]) -> Figure:
    """Random-pair cosine of the probe set and held-out recall@1 over fine-tuning steps,
    one line per run (keyed by its loss)."""
    fig = page_figure(height=4.6)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, run) in enumerate(runs.items()):
        steps = [p.step for p in run.points]
        ax1.plot(steps, [p.mean_cosine for p in run.points], color=OKABE_ITO[i], label=name)
        ax2.plot(steps, [p.recall_at_1 for p in run.points], color=OKABE_ITO[i], label=name)
    ax1.set_xlabel("fine-tuning step")
    ax1.set_ylabel("mean cosine of random probe pairs")
    ax1.set_title("Positives only: every sentence points one way")
    ax2.set_xlabel("fine-tuning step")
    ax2.set_ylabel("held-out recall@1")
    ax2.set_title("Retrieval falls as the space collapses")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    fig.suptitle("all-MiniLM-L6-v2 fine-tuned: positives-only loss vs InfoNCE")
    legend_below(fig, ax1, ncols=4)
    return fig


__all__ = [
    "demo_traces_figure",
    "finetune_figure",
    "particles_figure",
    "run_label",
    "variance_demo_figure",
]
