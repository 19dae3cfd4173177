"""Run the verdict over the labelled corpus, score it, and score it out of family.

The score reads the verdict as a user's gate does (``--fail-on warning``): a case is
*flagged* when the verdict is not ``healthy`` or carries a warning. A case labelled
``healthy`` is right when it is not flagged, one labelled ``hurt`` when it is; an
``ambiguous`` case is reported, not scored. A miss counts as a miss, whether or not it
is a documented blind spot. The structural kind (``Case.structure``) is a second axis:
for the hurt cases whose kind is known, does the verdict name it?

The thresholds were tuned on this corpus, so the in-sample score flatters them.
:func:`out_of_family` re-fits every threshold of :data:`REFIT` on all families but one
(greedy moves on a grid, ties broken towards the shipped values) and scores the
family left out with the re-fitted lines: the error a new kind of data would meet.
:func:`ranges` gives, for each threshold alone, the values over which the in-sample
errors stay at the shipped value's count, and says when the corpus does not constrain
a line at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from collapselab.diagnose import Measurement, Thresholds, fails, judge, measure
from collapselab.experiments.calibration import Case
from collapselab.metrics import Moments

#: the corpus modules, in table order
GROUPS = ("synthetic", "ssl", "text", "text_mpnet")

#: the thresholds re-fitted out of family, and each one's grid: the shipped value times
#: 2^(k/4) for k = -12..12 (a factor 8 either way, steps of 19%)
REFIT = ("complete_relative_variance", "warn_relative_variance", "few_dims_fraction",
         "min_effective_rank", "baseline_complete_ratio", "baseline_warn_ratio",
         "baseline_rank_ratio")  # fmt: skip
GRID_STEPS = tuple(2.0 ** (k / 4) for k in range(-12, 13))


def flagged(ms: Measurement) -> bool:
    """What a ``--fail-on warning`` gate does: a warning or any collapse verdict."""
    return fails(ms, "warning")


def is_right(label: str, ms: Measurement) -> bool | None:
    """Does the Measurement read the outcome right? None for an ambiguous case."""
    if label == "ambiguous":
        return None
    return flagged(ms) == (label == "hurt")


@dataclass(frozen=True)
class Outcome:
    """A case, the Measurement of it, and whether the verdict is right."""

    case: Case
    measurement: Measurement

    @property
    def right(self) -> bool | None:
        """The verdict reads the outcome right (None: ambiguous, not scored)."""
        return is_right(self.case.label, self.measurement)

    @property
    def kind_agrees(self) -> bool | None:
        """For a hurt case of known structure: does the verdict name that kind?"""
        if self.case.label != "hurt" or self.case.structure not in ("complete", "dimensional"):
            return None
        return self.measurement.verdict == self.case.structure

    def row(self) -> dict[str, Any]:
        """The table row: case, label, verdict and the key numbers."""
        ms, m = self.measurement, self.measurement.metrics
        b = ms.baseline
        return {
            "case": self.case.name,
            "group": self.case.group,
            "kind": self.case.kind,
            "label": self.case.label,
            "structure": self.case.structure,
            "verdict": ms.verdict,
            "warning": ms.warning is not None,
            "flagged": flagged(ms),
            "severity": round(ms.severity, 3),
            "right": self.right,
            "kind_agrees": self.kind_agrees,
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


def corpus(fast: bool = False, groups: Iterable[str] = GROUPS) -> Iterator[Case]:
    """Every case of the named groups (``fast``: the subset the test suite rebuilds)."""
    for g in groups:
        mod = import_module(f"collapselab.experiments.calibration.{g}")
        for case in mod.cases(fast=fast):
            if not fast or case.fast:
                yield case


@dataclass(frozen=True)
class Prepared:
    """A case with its metrics computed once, to be judged under many thresholds."""

    case: Case
    moments: Moments
    reference: Measurement
    baseline: Measurement | None

    def judge(self, thresholds: Thresholds | None = None) -> Measurement:
        """The verdict under ``thresholds``: the same as ``measure`` on the case, without
        recomputing the metrics (only the rule runs)."""
        r = self.reference
        return judge(r.metrics, thresholds, baseline=None if self.baseline is None else
                     self.baseline.metrics, subspace=(r.baseline.subspace_overlap,
                                                      r.baseline.k)
                     if r.baseline is not None else (math.nan, 0),
                     classes=self.case.classes, moments=self.moments)  # fmt: skip


def prepare(case: Case) -> Prepared:
    """Accumulate a case's rows (and its baseline's) and measure them once."""
    base = None if case.baseline is None else measure(Moments.of(case.baseline))
    moments = Moments.of(case.z)
    return Prepared(case, moments, measure(moments, baseline=base, classes=case.classes), base)


def judge_case(case: Case, thresholds: Thresholds | None = None) -> Outcome:
    """Measure one case (against its baseline, with its classes)."""
    return Outcome(case, prepare(case).judge(thresholds))


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """Errors among the scored (healthy / hurt) cases."""

    errors: int
    scored: int
    false_alarms: list[str]
    misses: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def score(outcomes: Sequence[Outcome]) -> Score:
    """In-sample score: misses count as misses."""
    fa = [o.case.name for o in outcomes if o.right is False and o.case.label == "healthy"]
    miss = [o.case.name for o in outcomes if o.right is False and o.case.label == "hurt"]
    scored = sum(o.right is not None for o in outcomes)
    return Score(len(fa) + len(miss), scored, fa, miss)


class _Table:
    """The verdict of every prepared case under one threshold moved at a time, cached."""

    def __init__(self, prepared: Sequence[Prepared]) -> None:
        self.prepared = [p for p in prepared if p.case.label != "ambiguous"]
        self._cache: dict[tuple[tuple[str, float], ...], list[bool]] = {}

    def rights(self, th: Thresholds) -> list[bool]:
        key = tuple((n, getattr(th, n)) for n in REFIT)
        if key not in self._cache:
            self._cache[key] = [bool(is_right(p.case.label, p.judge(th))) for p in self.prepared]
        return self._cache[key]

    def errors(self, th: Thresholds, keep: Sequence[bool] | None = None) -> int:
        r = self.rights(th)
        return sum(not ok for ok, k in zip(r, keep or [True] * len(r), strict=True) if k)


def _grid(name: str) -> list[float]:
    return [getattr(Thresholds(), name) * f for f in GRID_STEPS]


def _distance(th: Thresholds) -> float:
    """How far ``th`` moved from the shipped lines (sum of |log ratio|)."""
    return sum(abs(math.log(getattr(th, n) / getattr(Thresholds(), n))) for n in REFIT)


def _refit(table: _Table, keep: Sequence[bool]) -> Thresholds:
    """Greedy descent on the cases ``keep`` marks: from the shipped lines, make the single
    move (one threshold to one grid value) that removes the most errors, ties broken by
    the smallest total move, until no move removes an error."""
    th = Thresholds()
    errors = table.errors(th, keep)
    while errors:
        moves = [dataclasses.replace(th, **{n: v}) for n in REFIT for v in _grid(n)]
        best = min(moves, key=lambda t: (table.errors(t, keep), _distance(t)))
        if table.errors(best, keep) >= errors:
            break
        th, errors = best, table.errors(best, keep)
    return th


def out_of_family(prepared: Sequence[Prepared]) -> dict[str, Any]:
    """Leave one family out: re-fit :data:`REFIT` on the others, score the one left out.

    Returns:
        ``families``: for each family its scored cases, errors with the re-fitted and
        with the shipped thresholds, the names of the cases wrong, and the re-fitted
        values that moved; ``errors`` / ``scored``: the totals.
    """
    table = _Table(prepared)
    groups = [p.case.group for p in table.prepared]
    families, total_err, total = {}, 0, 0
    for fam in dict.fromkeys(groups):
        train = [g != fam for g in groups]
        held = [g == fam for g in groups]
        th = _refit(table, train)
        rights = table.rights(th)
        wrong = [p.case.name for p, ok, h in zip(table.prepared, rights, held, strict=True)
                 if h and not ok]  # fmt: skip
        moved = {n: round(getattr(th, n), 4) for n in REFIT
                 if not math.isclose(getattr(th, n), getattr(Thresholds(), n))}  # fmt: skip
        families[fam] = {"scored": sum(held), "errors": len(wrong),
                         "errors_shipped": table.errors(Thresholds(), held), "wrong": wrong,
                         "refit": moved}  # fmt: skip
        total_err += len(wrong)
        total += sum(held)
    return {"families": families, "errors": total_err, "scored": total}


def ranges(prepared: Sequence[Prepared]) -> list[dict[str, Any]]:
    """For each threshold of :data:`REFIT` alone: the grid values whose in-sample errors
    equal the shipped value's, as the interval around it (``constrained``: False when the
    interval reaches both ends of the grid, a factor 8 either way)."""
    table = _Table(prepared)
    base = table.errors(Thresholds())
    out = []
    for name in REFIT:
        grid = _grid(name)
        ok = [table.errors(dataclasses.replace(Thresholds(), **{name: v})) <= base for v in grid]
        mid = len(grid) // 2
        lo = hi = mid
        while lo > 0 and ok[lo - 1]:
            lo -= 1
        while hi < len(grid) - 1 and ok[hi + 1]:
            hi += 1
        shipped = getattr(Thresholds(), name)
        out.append({"threshold": name, "value": shipped, "errors": base,
                    "low": _r(grid[lo]), "high": _r(grid[hi]),
                    "low_pct": round(100 * (grid[lo] / shipped - 1)),
                    "high_pct": round(100 * (grid[hi] / shipped - 1)),
                    "constrained": not (lo == 0 and hi == len(grid) - 1),
                    "fewer_errors_at": [_r(v) for v, e in zip(grid, (
                        table.errors(dataclasses.replace(Thresholds(), **{name: v}))
                        for v in grid), strict=True) if e < base]})  # fmt: skip
    return out


def margins(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """For each verdict line: the nearest healthy case and the nearest flagged-by-outcome
    case below it, and the healthy margin (ratio)."""
    th = outcomes[0].measurement.thresholds if outcomes else Thresholds()
    out = []

    def line(name: str, value_of: Any, threshold: float, structures: set[str | None],
             note: str) -> None:  # fmt: skip
        good_vals = [(value_of(o), o.case.name) for o in outcomes
                     if o.case.label == "healthy" and value_of(o) is not None]  # fmt: skip
        bad_vals = [(value_of(o), o.case.name) for o in outcomes
                    if o.case.label == "hurt" and o.case.structure in structures
                    and value_of(o) is not None]  # fmt: skip
        g = min(good_vals, default=None)
        b = max((v for v in bad_vals if v[0] < threshold), default=None)
        out.append({
            "threshold": name, "value": threshold, "note": note,
            "nearest_healthy": None if g is None else {"case": g[1], "value": _r(g[0])},
            "nearest_flagged": None if b is None else {"case": b[1], "value": _r(b[0])},
            "healthy_margin": None if g is None else _r(g[0] / threshold),
        })  # fmt: skip

    anything = {None, "complete", "dimensional", "outliers"}
    line("complete_relative_variance", lambda o: o.measurement.metrics.relative_variance,
         th.complete_relative_variance, {"complete"}, "spread / norm")
    line("warn_relative_variance", lambda o: o.measurement.metrics.relative_variance,
         th.warn_relative_variance, anything, "spread / norm")
    line("few_dims_fraction",
         lambda o: o.measurement.metrics.dims_99 / max(min(o.measurement.metrics.d,
                                                           o.measurement.metrics.n - 1), 1),
         th.few_dims_fraction, {"dimensional"}, "dims_99 / min(d, n - 1)")
    line("baseline_warn_ratio",
         lambda o: None if o.measurement.baseline is None
         else o.measurement.baseline.ratios["relative_variance"],
         th.baseline_warn_ratio, anything, "spread now / baseline")
    return out


__all__ = ["GROUPS", "Outcome", "Prepared", "Score", "corpus", "flagged", "is_right",
           "judge_case", "margins", "out_of_family", "prepare", "ranges", "score"]  # fmt: skip
