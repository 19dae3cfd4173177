"""The report's section on the field's dimensional-collapse results (Jing et al. 2022,
Tian et al. 2021), redrawn from collapselab's own runs of :mod:`.jing` and :mod:`.tian`.

The settings are those of ``benchmarks/bench_field.py`` (its results file has the whole
study over 5 seeds with their spread: the Euclidean loss, the authors' own toy settings,
the projector study on digits, the full Tian grid, both of Tian's losses); the report runs
the few that carry each paper's claim, once each (seed 0), about half a minute on one
core. The figures are drawn by :mod:`collapselab.report.figures_field`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from collapselab.experiments import jing, tian
from collapselab.report import figures_field
from collapselab.report.html import Report, Section, Table
from collapselab.report.plots import add_report_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


def field_section(
    report: Report, number: int, quick: bool = False, on_run: Callable[[str], None] | None = None
) -> Section:
    """Run the Jing and Tian settings above (``quick``: the first two of each) and return
    the report section: two tables, the singular-value spectra and the tr F / alignment
    curves. ``on_run`` is called with a label before each run."""
    jing_runs = JING_RUNS[:2] if quick else JING_RUNS
    tian_runs = TIAN_RUNS[:2] if quick else TIAN_RUNS
    say = on_run or (lambda _label: None)
    spectra = []
    for name, kw in jing_runs:
        say(f"field: Jing et al., {name}")
        spectra.append(jing.linear_contrastive(jing.LinearConfig(**kw), name))
    dyn = []
    for name, kw in tian_runs:
        say(f"field: Tian et al., {name}")
        dyn.append((name, tian.run(tian.TianConfig(steps=2000, eval_every=20, **kw))))
    sec = Section("field", f"{number}. The field's results: Jing et al. 2022, Tian et al. 2021")
    sec.paragraphs.append(
        "Jing et al. (linear model z = W x, 16 dims, plain SGD): augmentation noise stronger "
        "than the data along some directions makes contrastive learning collapse exactly "
        "those directions, and two linear layers from a small initialisation collapse "
        "directions even under weak augmentation. Tian et al. (linear online net, linear "
        "predictor Wp, no negatives): the predictor's eigenspace aligns with the online "
        "correlation F = E[f f^T], weight decay decides whether a run of their Eq. 1 "
        "(the unnormalised loss) collapses, and DirectPred (Wp set from F's "
        f"eigendecomposition, eps {tian.TianConfig().directpred_eps:g}) trained with BYOL's "
        "normalised loss does not (under Eq. 1 it collapses, as does a fixed identity "
        "predictor). One seed each (seed 0); the loss of every run is named in its row. "
        "Collapsed = singular value below 1e-3 of the largest (Jing); tr F below 0.05 of its "
        "start, or effective rank below the threshold of tian.py for BYOL's loss (Tian). "
        "The whole study over 5 seeds with each number's spread, and the differences from "
        "the papers, is benchmarks/results/field.md (python benchmarks/bench_field.py)."
    )
    sec.tables.append(Table(
        "jing", ["run", "loss", "effective rank", "numerical rank", "collapsed dims"],
        [[s.name, s.extra["loss_name"], s.effective_rank, s.numerical_rank, s.collapsed_dims]
         for s in spectra],
    ))  # fmt: skip
    sec.tables.append(Table(
        "tian", ["run", "loss", "alignment at init", "alignment at end", "tr F end / start",
                 "effective rank", "collapsed"],
        [[name, r.loss_name, r.alignment[0], r.alignment[-1], r.relative_variance,
          r.effective_rank, r.collapsed] for name, r in dyn],
    ))  # fmt: skip
    sec.data = {"jing": [s.to_dict() for s in spectra],
                "tian": [{"name": n, **r.to_dict()} for n, r in dyn]}  # fmt: skip
    collapsed = [x for x in spectra if x.collapsed_dims]
    add_report_figure(
        report, sec, "field_jing_spectra", plot_spectra(
            spectra, f"Jing et al. 2022: singular values; {len(collapsed)} of {len(spectra)} "
            "runs collapse directions"),
        "Sorted singular values of the embeddings, log10 of s_k / s_1 (Jing et al. Fig. 2 "
        f"and 4); the dashed line is the collapse line {jing.COLLAPSE_RTOL:g}. "
        + "; ".join(f"'{x.name}': {x.collapsed_dims} of {len(x.singular_values)} below it"
                    for x in spectra) + ".")  # fmt: skip
    tian_fig = figures_field.tian_figure(dyn, tian.COLLAPSED_BELOW)
    add_report_figure(report, sec, "field_tian_alignment", tian_fig, _tian_caption(dyn))
    return sec


def log_singular_values(s: jing.Spectrum) -> np.ndarray:
    """``log10(sigma_k / sigma_1)`` of a run; exact zeros are drawn at the floor -17
    (:func:`collapselab.report.figures_field.log_singular_values`)."""
    return figures_field.log_singular_values(s.singular_values)


def plot_spectra(spectra: list[jing.Spectrum], title: str = "") -> Figure:
    """The sorted log singular values of each run (Jing et al.'s figures), with the
    collapse line :data:`jing.COLLAPSE_RTOL`, legend below the axes; shared by the report
    and ``benchmarks/bench_field.py``."""
    return figures_field.spectra_figure(spectra, jing.COLLAPSE_RTOL, title)


def _tian_caption(dyn: list[tuple[str, tian.TianRun]]) -> str:
    parts = []
    for name, r in dyn:
        tr = r.trace_f
        parts.append(f"{name}: tr F {tr[0]:.3g} -> {tr[-1]:.3g} (x{tr[-1] / tr[0]:.2g}), "
                     f"alignment {r.alignment[0]:.2f} -> {r.alignment[-1]:.2f}")  # fmt: skip
    byol = [name for name, r in dyn if r.config.loss == "byol"]
    note = (
        f" {', '.join(byol)} trains BYOL's normalised loss, blind to scale: weight decay "
        "shrinks its tr F to a plateau harmlessly; it would collapse onto a line (effective "
        f"rank < {tian.COLLAPSED_ERANK:g}), which it does not (table)."
        if byol
        else ""
    )
    return (
        "Left: tr F = E||f||^2, the size of the online representation, over training, "
        "relative to its start (log scale; dotted: Eq. 1's collapse line, "
        f"{tian.COLLAPSED_BELOW:g} x the start). Right: eigenspace alignment between the "
        "predictor Wp and F (Tian et al. Fig. 3). The predictor aligns with F within a few "
        "dozen steps in every run, collapsed or not, so the alignment alone cannot show "
        "the collapse; tr F does. " + "; ".join(parts) + "." + note
    )
