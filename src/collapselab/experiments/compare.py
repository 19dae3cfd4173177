"""Every method side by side: train each (several seeds), collect the monitor's history,
and build the comparison tables and figures.

Each finished run is cached as ``OUT/runs/<method>-s<seed>.json`` (written atomically), so
an interrupted ``compare`` resumes: finished runs with the same settings are reused.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from collapselab._atomic import atomic_open
from collapselab.errors import ConfigError
from collapselab.report.html import Report, Section, Table
from collapselab.train.config import TrainConfig
from collapselab.train.trainer import train

#: the methods of the short comparison in ``collapselab demo``: healthy and collapsing ones
DEMO_METHODS = ("simclr", "vicreg", "simsiam-no-stopgrad", "variance")


@dataclass
class RunRecord:
    """One training run: its summary and the monitor's history (one dict per evaluation)."""

    method: str
    seed: int
    summary: dict[str, Any]
    history: list[dict[str, Any]]
    losses: list[tuple[int, float]]
    spectrum: list[float]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "seed": self.seed,
            "summary": self.summary,
            "history": self.history,
            "losses": self.losses,
            "spectrum": self.spectrum,
            "settings": self.settings,
        }


def _atomic_json(path: Path, obj: Any) -> None:
    with atomic_open(path, "w", fsync=False) as fh:
        json.dump(obj, fh, default=float)


def run_one(
    method: str,
    data: str,
    seed: int,
    epochs: int | None,
    cache: Path | None,
    overrides: dict[str, Any] | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> RunRecord:
    """Train one method (or reuse its cached record when the settings match)."""
    settings = {"method": method, "data": data, "seed": seed, "epochs": epochs, **(overrides or {})}
    path = None if cache is None else cache / f"{method}-s{seed}.json"
    if path is not None and path.exists():
        try:
            rec = json.loads(path.read_text())
            if rec.get("settings") == json.loads(json.dumps(settings)):
                return RunRecord(**rec)
        except (ValueError, TypeError):
            pass  # unreadable cache: train again
    history: list[dict[str, Any]] = []
    losses: list[tuple[int, float]] = []
    spectrum: list[np.ndarray] = []

    def monitor(state: Any) -> None:
        history.append(state.to_dict())
        spectrum[:] = [np.asarray(state.spectrum)]

    def progress(p: Any) -> None:
        losses.append((p.step, p.loss))
        if on_progress is not None:
            on_progress(p)

    cfg = TrainConfig(method=method, data=data, seed=seed, epochs=epochs, **(overrides or {}))
    summary = train(cfg, progress=progress, on_monitor=monitor).to_dict()
    summary.pop("config", None)
    record = RunRecord(
        method,
        seed,
        summary,
        history,
        losses,
        [float(x) for x in (spectrum[0] if spectrum else [])],
        settings,
    )
    if path is not None:
        _atomic_json(path, record.to_dict())
    return record


def run_compare(
    methods: Sequence[str],
    data: str = "digits",
    seeds: int = 1,
    epochs: int | None = None,
    out: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    on_run: Callable[[str, int, int, int], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> list[RunRecord]:
    """Train every method for ``seeds`` seeds (0..seeds-1); cached under ``out/runs``.

    Args:
        on_run: called as ``on_run(method, seed, index, total)`` before each run.
    """
    from collapselab.methods import METHODS

    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {seeds}")
    cache = None if out is None else Path(out) / "runs"
    records, total = [], len(methods) * seeds
    for i, (m, s) in enumerate((m, s) for m in methods for s in range(seeds)):
        if on_run is not None:
            on_run(m, s, i, total)
        records.append(run_one(m, data, s, epochs, cache, overrides, on_progress))
    return records


# ----------------------------------------------------------------------------- tables
_METRICS = (
    ("knn_accuracy", "kNN acc"),
    ("linear_accuracy", "linear acc"),
    ("knn_accuracy_5_per_class", "5-label acc"),
    ("effective_rank", "eff. rank"),
    ("seconds", "time s"),
)


def _mean_std(values: list[float]) -> tuple[float, float]:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return float("nan"), float("nan")
    return float(np.mean(v)), float(np.std(v)) if len(v) > 1 else 0.0


def summary_table(records: list[RunRecord], table_id: str = "compare") -> Table:
    """Mean (and std over seeds) per method, with the verdicts of its runs."""
    methods = list(dict.fromkeys(r.method for r in records))
    seeds = max(sum(r.method == m for r in records) for m in methods)
    header = ["method"]
    for _, label in _METRICS:
        header += [label] if seeds == 1 else [label, "±"]
    header += ["verdict", "first collapse step"]
    rows: list[list[Any]] = []
    for m in methods:
        rs = [r for r in records if r.method == m]
        row: list[Any] = [m]
        for key, _ in _METRICS:
            mean, std = _mean_std([r.summary.get(key) for r in rs])  # type: ignore[misc]
            row += [mean] if seeds == 1 else [mean, std]
        verdicts = sorted({str(r.summary.get("verdict")) for r in rs})
        row.append("/".join(verdicts))
        firsts = [r.summary.get("first_collapse_step") for r in rs]
        row.append(min((f for f in firsts if f is not None), default=None))
        rows.append(row)
    return Table(
        table_id, header, rows, f"Mean over {seeds} seed(s); accuracies on the held-out split."
    )


# ----------------------------------------------------------------------------- figures
def _series(rec: RunRecord, key: str) -> tuple[list[int], list[float]]:
    pts = [
        (int(h["step"]), float(h[key]))
        for h in rec.history
        if h.get(key) is not None and math.isfinite(h[key])
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _last(rec: RunRecord, key: str) -> float | None:
    """The last finite value of ``key`` in the monitor's history (None if none)."""
    _, v = _series(rec, key)
    return v[-1] if v else None


def align_uniform_caption(records: list[RunRecord]) -> str:
    """How to read the alignment-uniformity plane, with this run's numbers: why a
    collapsing run can sit at a *lower* (more uniform-looking) uniformity than a healthy one."""
    first: dict[str, RunRecord] = {}
    for r in records:
        first.setdefault(r.method, r)
    text = (
        "Trajectories in Wang & Isola's alignment-uniformity plane (lower is better on both "
        "axes; dot = end of training), for the representation the monitor watches (encoder "
        "output, not the projector output the loss acts on). Complete collapse sits at "
        "uniformity 0 with alignment 0."
    )
    healthy = [r for r in first.values() if r.summary.get("verdict") == "healthy"]
    ref = healthy[0] if healthy else None
    u_ref = None if ref is None else _last(ref, "uniformity")
    if ref is None or u_ref is None:
        return text
    odd = [r for r in first.values() if r.summary.get("verdict") in ("dimensional", "complete")
           and (u := _last(r, "uniformity")) is not None and u < u_ref]  # fmt: skip
    if not odd:
        return text

    def desc(r: RunRecord) -> str:
        return (f"{r.method}: uniformity {_last(r, 'uniformity'):.3g}, mean cosine "
                f"{_last(r, 'mean_cosine'):.3g}, spread trace(C)/E||z||^2 "
                f"{_last(r, 'relative_variance'):.3g}, effective rank "
                f"{_last(r, 'effective_rank'):.3g}")  # fmt: skip

    names = " and ".join(r.method for r in odd)
    verb = "looks" if len(odd) == 1 else "look"
    text += (
        f" Why {names} ({'/'.join(sorted({str(r.summary.get('verdict')) for r in odd}))} "
        f"collapse) {verb} MORE uniform than {ref.method} here: uniformity, "
        "log E exp(-2||u - v||^2), is computed on the L2-normalised, uncentred rows, so it "
        "sees only the angles between rows, not in how many directions they spread. A "
        "representation whose spread around its mean grows along one or two directions "
        "puts its rows further apart in angle (a lower mean cosine) while its effective "
        "rank collapses. In the monitor's last window: "
        + "; ".join(desc(r) for r in [*odd, ref])
        + ". Read the plane together with the effective rank, never alone."
    )
    return text


def _variance_caption(first: dict[str, RunRecord]) -> str:
    text = (
        "The article's 'Variance Plot' for every method: total variance (left, log) and "
        "effective rank (right) of the representation in the monitor's window, per step. "
        "The effective rank separates healthy from collapsing runs; total variance alone "
        "need not: a run can collapse onto a few directions while its variance grows "
        "along them."
    )
    end = {m: (r.summary.get("verdict"), _last(r, "total_variance"), _last(r, "effective_rank"))
           for m, r in first.items()}  # fmt: skip
    healthy = [(m, tv) for m, (v, tv, _) in end.items() if v == "healthy" and tv is not None]
    if not healthy:
        return text
    ref, tv_ref = max(healthy, key=lambda x: x[1])
    louder = [(m, tv, er) for m, (v, tv, er) in end.items()
              if v in ("dimensional", "complete") and tv is not None and tv > tv_ref]  # fmt: skip
    if louder:
        text += " Here " + "; ".join(
            f"{m} ends with total variance {tv:.3g} but effective rank {er:.3g}"
            for m, tv, er in louder
        ) + (f", while {ref} (healthy) ends with total variance {tv_ref:.3g} and effective "
             f"rank {end[ref][2]:.3g}.")
    return text


def compare_figures(records: list[RunRecord], report: Report, section: Section) -> None:
    """The four comparison figures, added to ``section`` (titles and axis labels recorded
    in ``section.data["figures"]``)."""
    from collapselab.report.plots import OKABE_ITO, add_report_figure, legend_below, page_figure

    first: dict[str, RunRecord] = {}
    for r in records:  # one line per method: its first seed
        first.setdefault(r.method, r)
    colour = {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(first)}
    styles = ["-", "--", "-.", ":"]
    seeds = "" if len(records) == len(first) else " (first seed of each)"

    fig = page_figure(height=4.6)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (m, r) in enumerate(first.items()):
        ls = styles[i // len(OKABE_ITO) % len(styles)]
        s, v = _series(r, "total_variance")
        ax1.semilogy(s, v, ls, color=colour[m], label=m)
        s, v = _series(r, "effective_rank")
        ax2.plot(s, v, ls, color=colour[m], label=m)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("total variance trace(C) (log)")
    ax1.set_title("Total variance (the article's 'Variance Plot')")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("effective rank (directions)")
    ax2.set_title("Effective rank: separates healthy from collapsing")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"Variance and effective rank of the representation over training{seeds}")
    legend_below(fig, ax1, ncols=4)
    add_report_figure(report, section, "compare-variance-rank", fig,
                      _variance_caption(first))  # fmt: skip

    fig = page_figure(height=4.6)
    ax = fig.subplots()
    for i, (m, r) in enumerate(first.items()):
        lam = np.asarray(r.spectrum)
        lam = lam[lam > 0]
        if lam.size:
            ax.semilogy(
                np.arange(1, lam.size + 1),
                lam / lam.sum(),
                color=colour[m],
                ls=styles[i // len(OKABE_ITO) % len(styles)],
                label=m,
            )
    d = max((len(r.spectrum) for r in first.values()), default=1)
    ax.axhline(1 / max(d, 1), color="0.3", lw=1, ls="--", label="isotropic (1/d)")
    ax.set_xlabel("eigenvalue rank k")
    ax.set_ylabel("share of variance in direction k (log)")
    ax.set_title(f"Final eigen-spectrum of the representation per method{seeds}")
    ax.grid(True, which="both", alpha=0.3)
    legend_below(fig, ax, ncols=5)
    add_report_figure(
        report,
        section,
        "compare-spectrum",
        fig,
        "The article's 'Eigenvalue Plot' done right: centred covariance "
        "eigenvalues at the end of training, normalised to shares, on a log "
        "scale against the isotropic reference 1/d.",
    )

    fig = page_figure(height=5.0)
    ax = fig.subplots()
    for m, r in first.items():
        pts = [(h.get("uniformity"), h.get("alignment")) for h in r.history]
        pts = [(u, a) for u, a in pts if u is not None and a is not None]
        if pts:
            u, a = zip(*pts, strict=True)
            er = r.summary.get("effective_rank")  # the table's (held-out representation)
            name = f"{m}: {r.summary.get('verdict')}" + (
                f", effective rank {er:.3g}" if isinstance(er, float) else "")
            ax.plot(u, a, "-", color=colour[m], alpha=0.7, label=name)
            ax.plot(u[-1], a[-1], "o", color=colour[m], ms=8)
    ax.set_xlabel("uniformity  log E exp(-2||u - v||^2)  (lower: rows further apart in angle)")
    ax.set_ylabel("alignment  E||u - u'||^2\n(lower: the two views agree)")
    ax.set_title(f"Alignment-uniformity plane of the representation (dot = end){seeds}")
    ax.grid(True, alpha=0.3)
    legend_below(fig, ax, ncols=2)
    add_report_figure(report, section, "compare-align-uniform", fig,
                      align_uniform_caption(records))  # fmt: skip

    fig = page_figure(height=4.6)
    ax = fig.subplots()
    for m, r in first.items():
        loss = dict(r.losses)
        pts = [
            (loss[h["step"] + 1], h.get("effective_rank"))
            for h in r.history
            if h["step"] + 1 in loss and h.get("effective_rank") is not None
        ]
        if pts:
            lv, er = zip(*pts, strict=True)
            ax.plot(er, lv, ".-", color=colour[m], ms=5, label=m)
            ax.plot(er[-1], lv[-1], "o", color=colour[m])
    ax.set_xlabel("effective rank of the representation")
    ax.set_ylabel("training loss")
    ax.set_title(f"Loss vs effective rank (dot = end){seeds}")
    ax.grid(True, alpha=0.3)
    legend_below(fig, ax, ncols=5)
    add_report_figure(
        report,
        section,
        "compare-loss-rank",
        fig,
        "Where the loss keeps falling while the space collapses: each line "
        "is a run, read in time from its start (dot = end of training). Losses of "
        "different methods are on different scales; compare the direction of each line.",
    )


def compare_section(records: list[RunRecord], report: Report, data: str) -> Section:
    """A report section with the table and the figures of a comparison."""
    sec = Section("compare", f"Methods side by side on {data}")
    sec.paragraphs.append(
        "Each method trained with its default settings; the CollapseMonitor watched the "
        "embeddings during training (same verdict function as 'collapselab check'). "
        "'first collapse step' is the step at which the monitor first flagged collapse."
    )
    sec.tables.append(summary_table(records))
    sec.data["runs"] = [
        {
            "method": r.method,
            "seed": r.seed,
            **{k: v for k, v in r.summary.items() if not isinstance(v, dict | list)},
        }
        for r in records
    ]
    compare_figures(records, report, sec)
    return sec
