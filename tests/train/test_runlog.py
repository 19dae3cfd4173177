"""How early an alarm came: :func:`collapselab.train.runlog.early_warning` on set curves.

"Still falling" must mean a real fall after the alarm: a flat tail (which, with the floor
estimated as the run's own lowest loss, sits on the floor by construction) never counts.
"""

from __future__ import annotations

import numpy as np
import pytest

from collapselab.errors import InputError
from collapselab.train.runlog import early_warning, read_metrics


def records(loss: np.ndarray) -> list[dict]:
    return [{"event": "step", "step": s, "loss": float(v)} for s, v in enumerate(loss)]


def fall_then_flat(fall_steps: int, total: int, end: float, noise: float = 0.0) -> np.ndarray:
    """1 -> ``end`` linearly over ``fall_steps`` steps, then flat at ``end`` (+ noise)."""
    rng = np.random.default_rng(0)
    loss = np.full(total, end)
    loss[:fall_steps] = np.linspace(1.0, end, fall_steps)
    return loss + noise * rng.standard_normal(total)


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_late_alarm_on_flat_loss_is_not_early(noise: float) -> None:
    loss = fall_then_flat(20, 200, end=0.1, noise=noise)
    ew = early_warning(records(loss), alarm_step=150)
    assert ew.fallen_fraction is not None and ew.fallen_fraction > 0.9
    assert ew.still_falling is False and ew.early is False


def test_late_alarm_on_noisy_loss_at_known_floor_is_not_early() -> None:
    # at its infimum, the loss only jitters: no alarm in the tail is early, even where the
    # jitter happens to halve the distance to the floor (the noise rule rejects those)
    rng = np.random.default_rng(1)
    loss = np.concatenate([np.linspace(1.0, 0.0, 20), 1e-3 * rng.random(180)])
    loss[-3:] = [1e-4, 5e-5, 2e-4]  # the jitter happens to end low
    halved_by_chance = 0
    for alarm in range(30, 190):
        ew = early_warning(records(loss), alarm_step=alarm, floor=0.0)
        assert ew.still_falling is False and ew.early is False, (alarm, ew)
        assert ew.loss_at_alarm is not None
        halved_by_chance += ew.loss_end <= 0.5 * ew.loss_at_alarm
    assert halved_by_chance > 0  # the case the noise rule is there for does occur


@pytest.mark.parametrize("floor", [None, 0.0])
def test_alarm_early_in_a_long_steady_fall_is_early(floor: float | None) -> None:
    loss = np.linspace(1.0, 0.0, 200)
    ew = early_warning(records(loss), alarm_step=5, floor=floor)
    assert ew.fallen_fraction == pytest.approx(5 / 199, abs=0.01)
    assert ew.still_falling is True and ew.early is True


@pytest.mark.parametrize("floor", [None, 0.0])
def test_alarm_after_95_percent_of_the_fall_with_flat_tail_is_not_early(
    floor: float | None,
) -> None:
    loss = fall_then_flat(50, 150, end=0.05)  # the alarm at step 60: fall done, tail flat
    ew = early_warning(records(loss), alarm_step=60, floor=floor)
    assert ew.fallen_fraction is not None and ew.fallen_fraction >= 0.95
    assert ew.still_falling is False and ew.early is False


def test_relative_fall_counts_only_against_a_known_floor() -> None:
    # 98% of the loss gone by step 20, then a steady 100x fall towards the infimum 0: the
    # article's alignment / variance objectives (see the module docstring).
    loss = np.concatenate([np.linspace(1.0, 0.02, 21), 0.02 * np.exp(-np.arange(1, 80) / 17)])
    known = early_warning(records(loss), alarm_step=20, floor=0.0)
    assert known.fallen_fraction == pytest.approx(0.98)
    assert known.still_falling is True and known.early is True
    # floor unknown: the run's own lowest loss; a fall of 2% of the total is not enough
    unknown = early_warning(records(loss), alarm_step=20)
    assert unknown.still_falling is False and unknown.early is False


def test_still_falling_needs_a_tenth_of_the_fall_when_floor_unknown() -> None:
    # 1 -> 0.2 by step 50, then 0.2 -> 0.1 (12.5% of the whole fall): falling
    loss = np.concatenate([np.linspace(1.0, 0.2, 50), np.linspace(0.2, 0.1, 100)])
    ew = early_warning(records(loss), alarm_step=49)
    assert ew.fallen_fraction == pytest.approx(0.8 / 0.9, abs=0.01)
    assert ew.still_falling is True and ew.early is True


def test_no_alarm_gives_none() -> None:
    for floor in (None, 0.0):
        ew = early_warning(records(np.linspace(1.0, 0.0, 50)), alarm_step=None, floor=floor)
        assert (ew.alarm_step, ew.fallen_fraction, ew.still_falling, ew.early) == (None,) * 4
        assert ew.loss_start == 1.0 and ew.loss_at_alarm is None
        assert ew.to_dict()["early"] is None


def test_no_step_records_is_an_input_error() -> None:
    with pytest.raises(InputError, match="no step records"):
        early_warning([{"event": "summary"}], alarm_step=3)


def test_read_metrics_skips_a_cut_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"event": "step", "step": 0, "loss": 1.0}\n{"event": "st')
    assert read_metrics(p) == [{"event": "step", "step": 0, "loss": 1.0}]
