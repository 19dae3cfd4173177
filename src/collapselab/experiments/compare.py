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


def compare_figures(records: list[RunRecord], report: Report, section: Section) -> None:
    """The four comparison figures, added to ``section``."""
    from collapselab.report.plots import OKABE_ITO, new_figure

    first: dict[str, RunRecord] = {}
    for r in records:  # one line per method: its first seed
        first.setdefault(r.method, r)
    colour = {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(first)}
    styles = ["-", "--", "-.", ":"]

    fig = new_figure(ncols=2)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (m, r) in enumerate(first.items()):
        ls = styles[i // len(OKABE_ITO) % len(styles)]
        s, v = _series(r, "total_variance")
        ax1.semilogy(s, v, ls, color=colour[m], label=m)
        s, v = _series(r, "effective_rank")
        ax2.plot(s, v, ls, color=colour[m], label=m)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("total variance of embeddings (log)")
    ax1.set_title("Variance over training")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("effective rank (directions)")
    ax2.set_title("Effective rank over training")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    report.add_figure(
        section,
        "compare-variance-rank",
        fig,
        "The article's 'Variance Plot' for every method: total variance (left, log) and "
        "effective rank (right) of the representation in the monitor's window, per step. "
        "The effective rank separates healthy from collapsing runs; total variance alone "
        "need not: a run can collapse onto a few directions while its variance grows "
        "along them.",
    )

    fig = new_figure()
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
    ax.set_title("Final eigen-spectrum per method")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    report.add_figure(
        section,
        "compare-spectrum",
        fig,
        "The article's 'Eigenvalue Plot' done right: centred covariance "
        "eigenvalues at the end of training, normalised to shares, on a log "
        "scale against the isotropic reference 1/d.",
    )

    fig = new_figure()
    ax = fig.subplots()
    for m, r in first.items():
        pts = [(h.get("uniformity"), h.get("alignment")) for h in r.history]
        pts = [(u, a) for u, a in pts if u is not None and a is not None]
        if pts:
            u, a = zip(*pts, strict=True)
            ax.plot(u, a, "-", color=colour[m], alpha=0.7, label=m)
            ax.plot(u[-1], a[-1], "o", color=colour[m])
    ax.set_xlabel("uniformity (log E exp(-2||u-v||^2); lower is more uniform)")
    ax.set_ylabel("alignment (E ||u - u'||^2 of views; lower is better)")
    ax.set_title("Alignment-uniformity plane (dot = end)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    report.add_figure(
        section,
        "compare-align-uniform",
        fig,
        "Trajectories in Wang & Isola's alignment-uniformity plane (lower is better on both "
        "axes). Complete collapse sits at uniformity 0 with a perfect alignment of 0.",
    )

    fig = new_figure()
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
            ax.plot(er, lv, ".-", color=colour[m], ms=3, label=m)
    ax.set_xlabel("effective rank of the embeddings")
    ax.set_ylabel("training loss")
    ax.set_title("Loss vs effective rank")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    report.add_figure(
        section,
        "compare-loss-rank",
        fig,
        "Where the loss keeps falling while the space collapses: each line "
        "is a run, read in time from its start.",
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
