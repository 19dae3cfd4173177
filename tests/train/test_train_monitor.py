"""CollapseMonitor: evaluation schedule, verdicts equal to `check`'s, hooks, trends, state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from collapselab import CollapseMonitor
from collapselab.diagnose import Thresholds, measure_array
from collapselab.errors import CollapseDetected


def isotropic(b: int = 64, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, d, generator=torch.Generator().manual_seed(seed))


def collapsed(b: int = 64, d: int = 16, seed: int = 0) -> torch.Tensor:
    c = torch.ones(d) * 3.0
    return c + 1e-3 * isotropic(b, d, seed)  # rows within 0.1% of one vector


def rank2(b: int = 64, d: int = 64, seed: int = 0) -> torch.Tensor:
    basis = torch.randn(2, d, generator=torch.Generator().manual_seed(99))  # shared plane
    return torch.randn(b, 2, generator=torch.Generator().manual_seed(seed)) @ basis


def test_evaluates_only_at_multiples_of_every_over_the_window() -> None:
    mon = CollapseMonitor(every=5, window=3, on_collapse="ignore")
    states = {s: mon.update(isotropic(seed=s), s) for s in range(16)}
    assert [s for s, st in states.items() if st is not None] == [0, 5, 10, 15]
    st = states[10]
    assert st is not None and st.metrics["rows"] == 3 * 64  # steps 8, 9, 10
    assert states[0] is not None and states[0].metrics["rows"] == 64
    # the same numbers as `check` on the concatenated window (same function, same data)
    z = torch.cat([isotropic(seed=s) for s in (8, 9, 10)])
    ref = measure_array(z)
    assert st.verdict == ref.verdict == "healthy"
    assert st.metrics["effective_rank"] == pytest.approx(ref.metrics.effective_rank, rel=1e-9)
    assert st.metrics["relative_variance"] == pytest.approx(ref.metrics.relative_variance,
                                                            rel=1e-9)  # fmt: skip
    assert st.spectrum.shape == (16,)


def test_steps_default_to_call_count() -> None:
    mon = CollapseMonitor(every=3, window=1)
    out = [mon.update(isotropic(seed=i)) for i in range(7)]
    assert [i for i, s in enumerate(out) if s is not None] == [0, 3, 6]


@pytest.mark.parametrize(
    ("make", "verdict"), [(isotropic, "healthy"), (collapsed, "complete"), (rank2, "dimensional")]
)
def test_verdicts_on_known_matrices(make: object, verdict: str) -> None:
    mon = CollapseMonitor(every=1, window=2, on_collapse="ignore")
    st = mon.update(make(seed=0), 0)  # type: ignore[operator]
    st = mon.update(make(seed=1), 1)  # type: ignore[operator]
    assert st is not None and st.verdict == verdict
    assert st.collapsed == (verdict != "healthy")


def test_on_collapse_raise_warn_callable_and_patience() -> None:
    mon = CollapseMonitor(every=1, window=1, on_collapse="raise", patience=1)
    mon.update(isotropic(), 0)
    with pytest.raises(CollapseDetected, match="alarm at step 1: complete"):
        mon.update(collapsed(), 1)

    seen: list[int] = []
    mon = CollapseMonitor(every=1, window=1, on_collapse=lambda s: seen.append(s.step), patience=2)
    for step, z in enumerate([collapsed(), isotropic(), collapsed(), collapsed(), collapsed()]):
        mon.update(z, step)
    assert seen == [3]  # needs 2 consecutive collapsed evaluations; fires once per severity
    assert mon.first_collapse_step == 3

    mon = CollapseMonitor(every=1, window=1, on_collapse="warn", patience=1)
    with pytest.warns(RuntimeWarning, match="collapse alarm at step 0"):
        mon.update(collapsed(), 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon.update(collapsed(), 1)  # already reported at this severity: silent


def test_paired_views_give_alignment_and_thresholds_are_used() -> None:
    z = isotropic()
    mon = CollapseMonitor(every=1, window=1)
    st = mon.update(z, 0, paired=z)
    assert st is not None and st.metrics["alignment"] == pytest.approx(0.0, abs=1e-12)
    strict = CollapseMonitor(every=1, window=1, on_collapse="ignore",
                             thresholds=Thresholds(complete_relative_variance=1.5))  # fmt: skip
    st = strict.update(z, 0)
    assert st is not None and st.verdict == "complete"  # every matrix has relvar <= 1


def test_trends_follow_a_shrinking_spread() -> None:
    mon = CollapseMonitor(every=1, window=1, trend_window=4, on_collapse="ignore")
    for step in range(6):
        mon.update(isotropic(seed=step) * 0.5**step + 5.0, step)
    assert mon.last is not None
    trends = mon.last.trends
    assert trends["total_variance"] is not None and trends["total_variance"] < 0
    assert trends["relative_variance"] is not None and trends["relative_variance"] < 0
    assert trends["alignment"] is None  # no paired views given


def test_state_dict_resumes_identically() -> None:
    def run(restore_at: int | None) -> list[tuple[int, str, float]]:
        mon = CollapseMonitor(every=3, window=2, on_collapse="ignore")
        out = []
        for step in range(14):
            if step == restore_at:
                fresh = CollapseMonitor(every=3, window=2, on_collapse="ignore")
                fresh.load_state_dict(mon.state_dict())
                mon = fresh
            z = isotropic(seed=step) if step < 7 else collapsed(seed=step)
            st = mon.update(z, step)
            if st is not None:
                out.append((st.step, st.verdict, st.metrics["effective_rank"] or 0.0,
                            tuple(sorted((k, v) for k, v in st.trends.items() if v))))
        return out  # type: ignore[return-value]

    assert run(None) == run(5) == run(8)


def test_monitor_cost_between_windows_is_zero_work() -> None:
    mon = CollapseMonitor(every=100, window=2)
    bad = np.zeros((3,))  # would fail the (B, d) check if it were read
    assert mon.update(bad, 50) is None
