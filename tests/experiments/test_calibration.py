"""The verdict on the labelled calibration corpus, and the scoring that judges it.

The fast subset is rebuilt from scratch here (synthetic matrices, a short digits run,
the frozen and a briefly fine-tuned all-MiniLM-L6-v2); the full corpus is
``python benchmarks/calibration/run.py`` (its scores: docs/verdict.md).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from collapselab.diagnose import Thresholds, measure_array
from collapselab.experiments.calibration import Case
from collapselab.experiments.calibration.evaluate import (
    corpus,
    is_right,
    judge_case,
    margins,
    out_of_family,
    prepare,
    ranges,
    score,
)


def _wrong(group: str) -> list[str]:
    outcomes = [judge_case(case) for case in corpus(fast=True, groups=[group])]
    assert outcomes, f"no fast cases in {group}"
    sc = score(outcomes)
    assert sc.scored >= 3
    # a miss is a miss (the full table counts them all); the ones tolerated here are the
    # documented blind spots and projector outputs, which the verdict judges by geometry
    # alone (docs/verdict.md: a healthy method's projector is often steep or narrow)
    by_name = {o.case.name: o.case for o in outcomes}
    return [n for n in sc.false_alarms + sc.misses
            if by_name[n].blind_spot is None and by_name[n].kind != "projector"]


def test_synthetic_cases_all_right() -> None:
    assert _wrong("synthetic") == []


def test_ssl_fast_representations_right_but_the_documented_blind_spots() -> None:
    assert _wrong("ssl") == []


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None,
                    reason="needs collapselab[text]")  # fmt: skip
def test_text_fast_cases_all_right() -> None:
    assert _wrong("text") == []


def test_is_right_reads_the_outcome_as_a_fail_on_warning_gate() -> None:
    rng = np.random.default_rng(0)
    healthy = measure_array(rng.standard_normal((2000, 32)))
    onset = measure_array((1.0 + 0.3 * rng.standard_normal((2000, 32))) / np.sqrt(32))
    line = measure_array(rng.standard_normal((2000, 1)) * rng.standard_normal((1, 32)))
    assert healthy.verdict == "healthy" and healthy.warning is None
    assert onset.verdict == "healthy" and onset.warning is not None
    assert line.verdict != "healthy"
    assert is_right("healthy", healthy) and not is_right("healthy", onset)
    assert is_right("hurt", onset) and is_right("hurt", line) and not is_right("hurt", healthy)
    assert is_right("ambiguous", onset) is None and is_right("ambiguous", healthy) is None


def _common(s: float, seed: int, name: str, label: str, group: str) -> Case:
    """A common unit vector plus noise of RMS s: relative variance s^2 / (1 + s^2)."""
    rng = np.random.default_rng(seed)
    c = np.ones(32) / np.sqrt(32)
    z = (c + s * rng.standard_normal((4000, 32)) / np.sqrt(32)).astype(np.float32)
    return Case(f"{group}/{name}", group, label, name, z)  # type: ignore[arg-type]


def test_a_blind_spot_counts_as_a_miss() -> None:
    case = _common(0.4, 1, "spot", "hurt", "a")  # spread 0.14: no warning
    spotted = Case(case.name, case.group, "hurt", "x", case.z, blind_spot="documented")
    sc = score([judge_case(spotted)])
    assert sc.errors == 1 and sc.misses == ["a/spot"]


def test_out_of_family_refits_on_the_others_and_scores_the_one_left_out() -> None:
    """Family a needs the warning line above its hurt case (spread ~0.12); re-fitted there,
    the line moves to the next grid value, 0.141, past family b's healthy case (spread
    ~0.13), which the shipped line (0.1) gets right: one error out of family that the
    in-sample score does not show."""
    a_hurt = _common(0.37, 2, "hurt-0.12", "hurt", "a")
    a_ok = Case("a/iso", "a", "healthy", "iso",
                np.random.default_rng(3).standard_normal((4000, 32)).astype(np.float32))
    b_ok = _common(0.387, 4, "healthy-0.13", "healthy", "b")
    rv = [judge_case(c).measurement.metrics.relative_variance for c in (a_hurt, b_ok)]
    assert 0.1 < rv[0] < 0.125 < rv[1] < 0.14
    prepared = [prepare(c) for c in (a_hurt, a_ok, b_ok)]
    oof = out_of_family(prepared)
    fam_b, fam_a = oof["families"]["b"], oof["families"]["a"]
    assert fam_b["errors"] == 1 and fam_b["wrong"] == ["b/healthy-0.13"]
    assert fam_b["errors_shipped"] == 0
    assert fam_b["refit"]["warn_relative_variance"] == pytest.approx(0.1 * 2**0.5, rel=1e-3)
    assert fam_a["errors"] == 1  # re-fitted on b alone, the line stays where a misses
    assert oof["errors"] == 2 and oof["scored"] == 3


def test_ranges_say_which_lines_the_corpus_does_not_constrain() -> None:
    cases = [_common(0.37, 2, "hurt-0.12", "hurt", "a"),
             Case("a/iso", "a", "healthy", "iso",
                  np.random.default_rng(3).standard_normal((4000, 32)).astype(np.float32))]
    rg = {r["threshold"]: r for r in ranges([prepare(c) for c in cases])}
    warn = rg["warn_relative_variance"]
    assert warn["errors"] == 1  # the shipped line misses the hurt case
    assert warn["fewer_errors_at"] and min(warn["fewer_errors_at"]) > 0.12
    # nothing here has a baseline: the baseline lines are not constrained at all
    base = rg["baseline_warn_ratio"]
    assert not base["constrained"] and (base["low_pct"], base["high_pct"]) == (-88, 700)
    assert Thresholds().warn_relative_variance == warn["value"]


def test_margins_name_the_nearest_cases() -> None:
    rng = np.random.default_rng(1)
    cases = [
        Case("t/healthy", "t", "healthy", "iso", rng.standard_normal((500, 16)).astype("f4")),
        Case("t/complete", "t", "hurt", "one vector",
             (1 + 1e-3 * rng.standard_normal((500, 16))).astype("f4"), structure="complete"),
    ]
    mg = {m["threshold"]: m for m in margins([judge_case(c) for c in cases])}
    rv = mg["complete_relative_variance"]
    assert rv["nearest_healthy"]["case"] == "t/healthy" and rv["healthy_margin"] > 15
    assert rv["nearest_flagged"]["case"] == "t/complete"


def test_a_prepared_case_is_judged_as_measure_array_judges_it() -> None:
    """The re-fit re-runs only the rule on metrics computed once: under any thresholds it
    must say exactly what a fresh measure_array says."""
    rng = np.random.default_rng(0)
    z = (rng.standard_normal((3000, 16)) * np.linspace(0.02, 2, 16)).astype("f4")
    b = rng.standard_normal((2000, 16)).astype("f4")
    p = prepare(Case("a/x", "a", "hurt", "x", z, b))
    for th in (Thresholds(), Thresholds(baseline_rank_ratio=0.9, few_dims_fraction=0.5),
               Thresholds(warn_relative_variance=2.0, complete_relative_variance=1.5)):
        assert p.judge(th).to_dict() == measure_array(z, b, thresholds=th).to_dict()
