"""Every method side by side: train each (several seeds), collect the monitor's history,
and build the comparison table; the figures are drawn by
:func:`collapselab.report.figures_compare.compare_figures`.

Each finished run is cached as ``OUT/runs/<method>-s<seed>.json`` (written atomically:
:meth:`RunRecord.to_dict`), so an interrupted ``compare`` resumes: finished runs with the
same settings are reused. The cached layout is the one earlier versions wrote (``method``,
``seed``, a flat ``summary``, ``history``, ``losses``, ``spectrum``, ``settings``), so their
caches load; a file that does not parse as a record is trained again.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from collapselab._atomic import write_text
from collapselab.errors import ConfigError
from collapselab.report.figures_compare import align_uniform_caption, compare_figures
from collapselab.report.html import Report, Section, Table
from collapselab.train.config import TrainConfig
from collapselab.train.trainer import train

#: the methods of the short comparison in ``collapselab demo``: healthy and collapsing ones
DEMO_METHODS = ("simclr", "vicreg", "simsiam-no-stopgrad", "variance")


@dataclass(frozen=True)
class MonitorPoint:
    """One evaluation of the :class:`~collapselab.monitor.CollapseMonitor` during a run:
    the scalars of :data:`collapselab.monitor.TRACKED` (finite floats or None)."""

    step: int
    verdict: str | None = None
    effective_rank: float | None = None
    std_of_l2_normalized: float | None = None
    total_variance: float | None = None
    relative_variance: float | None = None
    mean_cosine: float | None = None
    uniformity: float | None = None
    alignment: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorPoint:
        """From :meth:`to_dict` or :meth:`collapselab.monitor.MonitorState.to_dict` (whose
        other keys, warning, trends and the untracked scalars, are dropped)."""
        return cls(int(d["step"]), **{f.name: d.get(f.name) for f in _POINT_VALUES})


_POINT_VALUES = dataclasses.fields(MonitorPoint)[1:]
#: the numbers of the run's ``TrainSummary.to_dict()`` that :class:`RunRecord` types
_SUMMARY_FIELDS = ("verdict", "steps", "first_collapse_step", "knn_accuracy",
                   "linear_accuracy", "knn_accuracy_5_per_class", "effective_rank",
                   "seconds")  # fmt: skip


@dataclass(frozen=True)
class RunRecord:
    """One training run of the comparison: what the table, the figures and the report read.

    Attributes:
        method, seed: the run.
        verdict: the verdict on the held-out representation (None without one).
        steps: optimizer steps taken.
        first_collapse_step: the monitor's first alarm (None: never).
        knn_accuracy, linear_accuracy, knn_accuracy_5_per_class: held-out accuracies (kNN,
            linear probe, kNN from 5 labels per class).
        effective_rank: of the held-out representation.
        seconds: training and evaluation time.
        history: the monitor's evaluations, in step order.
        losses: ``(step, loss)`` of every training step.
        spectrum: the centred covariance eigenvalues of the monitor's last window.
        settings: what the run was trained with (the cache is reused only when equal).
        extra: the other entries of the run's ``TrainSummary.to_dict()`` (without
            ``config``): carried into the cache and ``report.json``, never read here.
    """

    method: str
    seed: int
    verdict: str | None = None
    steps: int | None = None
    first_collapse_step: int | None = None
    knn_accuracy: float | None = None
    linear_accuracy: float | None = None
    knn_accuracy_5_per_class: float | None = None
    effective_rank: float | None = None
    seconds: float | None = None
    history: list[MonitorPoint] = field(default_factory=list)
    losses: list[tuple[int, float]] = field(default_factory=list)
    spectrum: list[float] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The run's flat summary: :attr:`extra` and the typed numbers."""
        return {**self.extra, **{k: getattr(self, k) for k in _SUMMARY_FIELDS}}

    def to_dict(self) -> dict[str, Any]:
        """The cached record (``OUT/runs/<method>-s<seed>.json``)."""
        return {
            "method": self.method,
            "seed": self.seed,
            "summary": self.summary(),
            "history": [h.to_dict() for h in self.history],
            "losses": [list(x) for x in self.losses],
            "spectrum": self.spectrum,
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunRecord:
        """From :meth:`to_dict` (this version's or an earlier one's: the same layout).

        Raises:
            KeyError, TypeError, ValueError: not a record.
        """
        extra = dict(d["summary"])
        typed = {k: extra.pop(k, None) for k in _SUMMARY_FIELDS}
        return cls(
            str(d["method"]), int(d["seed"]), **typed,
            history=[MonitorPoint.from_dict(h) for h in d["history"]],
            losses=[(int(s), float(v)) for s, v in d["losses"]],
            spectrum=[float(x) for x in d["spectrum"]],
            settings=dict(d.get("settings") or {}), extra=extra,
        )  # fmt: skip


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
                return RunRecord.from_dict(rec)
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # unreadable cache: train again
    history: list[MonitorPoint] = []
    losses: list[tuple[int, float]] = []
    spectrum: list[np.ndarray] = []

    def monitor(state: Any) -> None:
        history.append(MonitorPoint.from_dict(state.to_dict()))
        spectrum[:] = [np.asarray(state.spectrum)]

    def progress(p: Any) -> None:
        losses.append((p.step, p.loss))
        if on_progress is not None:
            on_progress(p)

    # the alarm is recorded (first_collapse_step), never printed: the report shows it
    cfg = TrainConfig(method=method, data=data, seed=seed, epochs=epochs,
                      **{"on_collapse": "ignore", **(overrides or {})})  # fmt: skip
    summary = train(cfg, progress=progress, on_monitor=monitor).to_dict()
    summary.pop("config", None)
    typed = {k: summary.pop(k, None) for k in _SUMMARY_FIELDS}
    record = RunRecord(
        method, seed, **typed, history=history, losses=losses,
        spectrum=[float(x) for x in (spectrum[0] if spectrum else [])],
        settings=settings, extra=summary,
    )  # fmt: skip
    if path is not None:
        write_text(path, json.dumps(record.to_dict(), default=float), fsync=False)
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
    if unknown or not methods:
        raise ConfigError(f"--methods: unknown method {unknown[0]!r}; choose from "
                          f"{', '.join(sorted(METHODS))}" if unknown else "--methods: no method "
                          "given")  # fmt: skip
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


def _mean_std(values: Sequence[float | None]) -> tuple[float, float]:
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
            mean, std = _mean_std([getattr(r, key) for r in rs])
            row += [mean] if seeds == 1 else [mean, std]
        verdicts = sorted({str(r.verdict) for r in rs})
        row.append("/".join(verdicts))
        firsts = [r.first_collapse_step for r in rs]
        row.append(min((f for f in firsts if f is not None), default=None))
        rows.append(row)
    return Table(
        table_id, header, rows, f"Mean over {seeds} seed(s); accuracies on the held-out split."
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
            **{k: v for k, v in r.summary().items() if not isinstance(v, dict | list)},
        }
        for r in records
    ]
    compare_figures(records, report, sec)
    return sec


__all__ = [
    "DEMO_METHODS",
    "MonitorPoint",
    "RunRecord",
    "align_uniform_caption",
    "compare_section",
    "run_compare",
    "run_one",
    "summary_table",
]


def compare_report(
    methods: Sequence[str],
    data: str = "digits",
    seeds: int = 1,
    epochs: int | None = None,
    out: str | Path = "collapselab-compare",
    on_run: Callable[[str, int, int, int], None] | None = None,
    on_progress: Callable[[Any], None] | None = None,
) -> tuple[Path, Table]:
    """``collapselab compare``: train (or reuse from ``out/runs``) every method for every
    seed and write ``out/report.html``, ``report.json`` and the figures.

    Returns:
        The path of ``report.html`` and the comparison table (mean +- std over seeds).
    """
    from collapselab.report.html import write_report

    records = run_compare(methods, data, seeds, epochs, out, on_run=on_run,
                          on_progress=on_progress)  # fmt: skip
    report = Report(f"collapselab compare: {', '.join(methods)} on {data}")
    sec = compare_section(records, report, data)
    report.sections.append(sec)
    return write_report(report, out), sec.tables[0]

