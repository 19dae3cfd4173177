"""The report's section on the field's dimensional-collapse results (Jing et al. 2022,
Tian et al. 2021), redrawn from collapselab's own runs of :mod:`.jing` and :mod:`.tian`.

The settings are those of ``benchmarks/bench_field.py`` (its results file has the whole
study: the Euclidean loss, the projector study on digits, the full Tian grid); the report
runs the few that carry each paper's claim, about half a minute on one core.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from collapselab.experiments import jing, tian
from collapselab.report.html import Report, Section, Table
from collapselab.report.plots import OKABE_ITO, new_figure

#: Jing et al.: strong augmentation (Theorem 1) and implicit regularisation (Theorem 2)
_WEAK = {"noise": 0.02, "data_decay": 0.1, "steps": 1500}
JING_RUNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("weak aug (sigma 0.2), NT-Xent", {}),
    ("strong aug on 4 dims (sigma 2), NT-Xent", {"strong_dims": 4}),
    ("1 layer, init 0.01, weak aug", {"layers": 1, "init_scale": 0.01, **_WEAK}),
    ("2 layers, init 0.01, weak aug", {"layers": 2, "init_scale": 0.01, **_WEAK}),
)
#: Tian et al.: the predictor aligns with F; weight decay decides collapse; DirectPred
TIAN_RUNS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("SGD predictor, Eq. 1, wd 0.05", {"weight_decay": 0.05, "predictor_lr_ratio": 0.3}),
    ("SGD predictor, Eq. 1, wd 0.3", {"weight_decay": 0.3, "predictor_lr_ratio": 0.3}),
    ("DirectPred, BYOL loss, wd 0.05",
     {"loss": "byol", "predictor": "directpred", "weight_decay": 0.05}),
)  # fmt: skip


def field_section(report: Report, number: int, quick: bool = False) -> Section:
    """Run the Jing and Tian settings above (``quick``: the first two of each) and return
    the report section: two tables, the singular-value spectra and the alignment curves."""
    jing_runs = JING_RUNS[:2] if quick else JING_RUNS
    tian_runs = TIAN_RUNS[:2] if quick else TIAN_RUNS
    spectra = [jing.linear_contrastive(jing.LinearConfig(**kw), name) for name, kw in jing_runs]
    dyn = [(name, tian.run(tian.TianConfig(steps=2000, eval_every=20, **kw)))
           for name, kw in tian_runs]  # fmt: skip
    sec = Section("field", f"{number}. The field's results: Jing et al. 2022, Tian et al. 2021")
    sec.paragraphs.append(
        "Jing et al. (linear model z = W x, 16 dims, plain SGD): augmentation noise stronger "
        "than the data along some directions makes contrastive learning collapse exactly "
        "those directions, and two linear layers from a small initialisation collapse "
        "directions even under weak augmentation. Tian et al. (linear online net, linear "
        "predictor Wp, no negatives): the predictor's eigenspace aligns with the online "
        "correlation F = E[f f^T], weight decay decides whether the run collapses, and "
        "DirectPred (Wp set from F's eigendecomposition) does not. "
        "Collapsed = singular value below 1e-3 of the largest (Jing); tr F below 0.05 of its "
        "start, or effective rank below the threshold of tian.py for BYOL's loss (Tian). "
        "The whole study, with the differences from the papers, is "
        "benchmarks/results/field.md (python benchmarks/bench_field.py)."
    )
    sec.tables.append(Table(
        "jing", ["run", "effective rank", "numerical rank", "collapsed dims"],
        [[s.name, s.effective_rank, s.numerical_rank, s.collapsed_dims] for s in spectra],
    ))  # fmt: skip
    sec.tables.append(Table(
        "tian", ["run", "alignment at init", "alignment at end", "tr F end / start",
                 "effective rank", "collapsed"],
        [[name, r.alignment[0], r.alignment[-1], r.relative_variance, r.effective_rank,
          r.collapsed] for name, r in dyn],
    ))  # fmt: skip
    sec.data = {"jing": [s.to_dict() for s in spectra],
                "tian": [{"name": n, **r.to_dict()} for n, r in dyn]}  # fmt: skip
    report.add_figure(sec, "field_jing_spectra", plot_spectra(spectra),
                      "Sorted singular values of the embeddings, log10 of s_k / s_1 "
                      "(Jing et al. Fig. 2 and 4): the dashed line is the collapse line 1e-3.")
    report.add_figure(sec, "field_tian_alignment", _plot_alignment(dyn),
                      "Eigenspace alignment between Wp and F over training (Tian et al. Fig. 3).")
    return sec


def log_singular_values(s: jing.Spectrum) -> np.ndarray:
    """``log10(sigma_k / sigma_1)`` of a run; exact zeros are drawn at the floor -17."""
    sv = np.asarray(s.singular_values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log10(np.maximum(sv / sv[0], 1e-17)) if sv.size and sv[0] > 0 \
            else np.full(sv.size, -17.0)


def plot_spectra(spectra: list[jing.Spectrum], title: str = ""):  # type: ignore[no-untyped-def]
    """The sorted log singular values of each run (Jing et al.'s figures), with the
    collapse line; shared by the report and ``benchmarks/bench_field.py``."""
    fig = new_figure()
    ax = fig.subplots()
    for i, s in enumerate(spectra):
        ax.plot(np.arange(1, len(s.singular_values) + 1), log_singular_values(s), "o-", ms=3,
                color=OKABE_ITO[i % len(OKABE_ITO)], label=s.name)  # fmt: skip
    ax.axhline(math.log10(jing.COLLAPSE_RTOL), color="0.5", ls="--", lw=0.8)
    ax.set_xlabel("singular value rank k")
    ax.set_ylabel("log10(sigma_k / sigma_1) of the embedding")
    if title:
        ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    return fig


def _plot_alignment(dyn: list[tuple[str, tian.TianRun]]):  # type: ignore[no-untyped-def]
    fig = new_figure()
    ax = fig.subplots()
    for name, r in dyn:
        ax.plot(r.steps, r.alignment, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("alignment of Wp with F")
    ax.set_ylim(-1.05, 1.05)
    ax.legend(fontsize=7)
    return fig
