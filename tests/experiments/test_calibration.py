"""The verdict on the labelled calibration corpus: every case of the fast subset right.

The fast subset is rebuilt from scratch here (synthetic matrices, a short digits run,
the frozen and a briefly fine-tuned all-MiniLM-L6-v2); the full corpus is
``python benchmarks/calibration/run.py`` (its table: docs/verdict.md).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from collapselab.diagnose import measure_array
from collapselab.experiments.calibration import Case
from collapselab.experiments.calibration.evaluate import corpus, is_right, judge_case, margins


def _check(group: str, tmp: object = None) -> list[str]:
    wrong = []
    outcomes = []
    for case in corpus(fast=True, groups=[group]):
        o = judge_case(case)
        outcomes.append(o)
        if not o.right:
            ms = o.measurement
            wrong.append(f"{case.name}: label {case.label}, verdict {ms.verdict}, "
                         f"warning {ms.warning!r}")  # fmt: skip
    assert outcomes, f"no fast cases in {group}"
    return wrong


def test_synthetic_cases_all_right() -> None:
    assert _check("synthetic") == []


def test_ssl_fast_cases_all_right() -> None:
    assert _check("ssl") == []


@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None,
                    reason="needs collapselab[text]")  # fmt: skip
def test_text_fast_cases_all_right() -> None:
    assert _check("text") == []


def test_is_right_reads_each_label_strictly() -> None:
    rng = np.random.default_rng(0)
    healthy = measure_array(rng.standard_normal((2000, 32)))
    onset = measure_array((1.0 + 0.3 * rng.standard_normal((2000, 32))) / np.sqrt(32))
    assert healthy.verdict == "healthy" and healthy.warning is None
    assert onset.verdict == "healthy" and onset.warning is not None
    assert is_right("healthy", healthy) and not is_right("healthy", onset)
    assert is_right("warning", onset) and not is_right("warning", healthy)
    assert not is_right("complete", onset) and not is_right("dimensional", healthy)


def test_margins_name_the_nearest_cases() -> None:
    rng = np.random.default_rng(1)
    cases = [
        Case("t/healthy", "t", "healthy", "iso", rng.standard_normal((500, 16)).astype("f4")),
        Case("t/complete", "t", "complete", "one vector",
             (1 + 1e-3 * rng.standard_normal((500, 16))).astype("f4")),
    ]
    mg = {m["threshold"]: m for m in margins([judge_case(c) for c in cases])}
    rv = mg["complete_relative_variance"]
    assert rv["nearest_healthy"]["case"] == "t/healthy" and rv["healthy_margin"] > 15
    assert rv["nearest_flagged"]["case"] == "t/complete"
