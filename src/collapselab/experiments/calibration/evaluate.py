"""Run the verdict over the labelled corpus and judge it against the labels.

A case is right when the verdict says what its label asks (see
:data:`collapselab.experiments.calibration.Label`):

- ``healthy``: verdict ``healthy`` and no warning;
- ``warning``: a warning, or a ``dimensional`` / ``complete`` verdict (collapse under way
  or crossed: anything but a clean bill of health);
- ``dimensional`` / ``complete``: exactly that verdict.

The margin of each threshold is the distance, in the evidence's own units, from the line
to the nearest case of the other label (``margins``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from collapselab.diagnose import Measurement, Thresholds, measure_array
from collapselab.experiments.calibration import Case

#: the corpus modules, in table order
GROUPS = ("synthetic", "ssl", "text")


@dataclass(frozen=True)
class Outcome:
    """A case, the Measurement of it, and whether the verdict is right."""

    case: Case
    measurement: Measurement

    @property
    def right(self) -> bool:
        """The verdict says what the label asks (a known blind spot counts as right)."""
        return self.case.blind_spot is not None or is_right(self.case.label, self.measurement)

    @property
    def missed(self) -> bool:
        """A known blind spot that the verdict indeed misses."""
        return self.case.blind_spot is not None and not is_right(self.case.label,
                                                                 self.measurement)

    def row(self) -> dict[str, Any]:
        """The table row: case, label, verdict and the key numbers."""
        ms, m = self.measurement, self.measurement.metrics
        b = ms.baseline
        return {
            "case": self.case.name,
            "kind": self.case.kind,
            "label": self.case.label,
            "verdict": ms.verdict,
            "warning": ms.warning is not None,
            "severity": round(ms.severity, 3),
            "right": self.right,
            "blind_spot": self.case.blind_spot,
            "n": m.n,
            "d": m.d,
            "effective_rank": _r(m.effective_rank),
            "erank_fraction": _r(ms.effective_rank_fraction),
            "dims_99": m.dims_99,
            "rankme": _r(m.rankme),
            "relative_variance": _r(m.relative_variance),
            "mean_cosine": _r(m.mean_cosine),
            "spread_vs_baseline": None if b is None else _r(b.ratios["relative_variance"]),
            "erank_vs_baseline": None if b is None else _r(b.ratios["effective_rank"]),
            "quality": {k: _r(v) for k, v in self.case.quality.items()},
            "why": self.case.why,
        }


def _r(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, 4) if math.isfinite(v) else None


def is_right(label: str, ms: Measurement) -> bool:
    """Does the Measurement say what the label asks?"""
    if label == "healthy":
        return ms.verdict == "healthy" and ms.warning is None
    if label == "warning":
        return ms.verdict != "healthy" or ms.warning is not None
    return ms.verdict == label


def corpus(fast: bool = False, groups: Iterable[str] = GROUPS) -> Iterator[Case]:
    """Every case of the named groups (``fast``: the subset the test suite rebuilds)."""
    for g in groups:
        mod = import_module(f"collapselab.experiments.calibration.{g}")
        for case in mod.cases(fast=fast):
            if not fast or case.fast:
                yield case


def judge_case(case: Case, thresholds: Thresholds | None = None) -> Outcome:
    """Measure one case (against its baseline, with its classes)."""
    ms = measure_array(case.z, case.baseline, thresholds=thresholds, classes=case.classes)
    return Outcome(case, ms)


def margins(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """For each verdict line: the nearest case on each side and the margin (ratio)."""
    th = outcomes[0].measurement.thresholds if outcomes else Thresholds()
    out = []

    def line(name: str, value_of: Any, threshold: float, bad: set[str], note: str) -> None:
        good_vals = [(value_of(o), o.case.name) for o in outcomes
                     if o.case.label == "healthy" and o.case.blind_spot is None
                     and value_of(o) is not None]  # fmt: skip
        bad_vals = [(value_of(o), o.case.name) for o in outcomes
                    if o.case.label in bad and value_of(o) is not None]  # fmt: skip
        g = min(good_vals, default=None)
        b = max((v for v in bad_vals if v[0] < threshold), default=None)
        out.append({
            "threshold": name, "value": threshold, "note": note,
            "nearest_healthy": None if g is None else {"case": g[1], "value": _r(g[0])},
            "nearest_flagged": None if b is None else {"case": b[1], "value": _r(b[0])},
            "healthy_margin": None if g is None else _r(g[0] / threshold),
        })  # fmt: skip

    line("complete_relative_variance", lambda o: o.measurement.metrics.relative_variance,
         th.complete_relative_variance, {"complete"}, "spread / norm")
    line("warn_relative_variance", lambda o: o.measurement.metrics.relative_variance,
         th.warn_relative_variance, {"complete", "warning"}, "spread / norm")
    line("few_dims_fraction",
         lambda o: o.measurement.metrics.dims_99 / max(min(o.measurement.metrics.d,
                                                           o.measurement.metrics.n - 1), 1),
         th.few_dims_fraction, {"dimensional"}, "dims_99 / min(d, n - 1)")
    line("dimensional_rank_fraction", lambda o: o.measurement.effective_rank_fraction,
         th.dimensional_rank_fraction, {"dimensional"}, "effective rank / isotropic (gate)")
    line("baseline_warn_ratio",
         lambda o: None if o.measurement.baseline is None
         else o.measurement.baseline.ratios["relative_variance"],
         th.baseline_warn_ratio, {"warning", "complete"}, "spread now / baseline")
    return out
