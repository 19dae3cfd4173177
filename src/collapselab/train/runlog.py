"""Reading a run's ``metrics.jsonl`` and judging how early the monitor warned.

"Early" follows the issue's definition: the monitor must flag a collapsing run *while the
loss is still falling or before it has fallen by 90%*. With ``L0`` the first logged loss,
``Lf`` the loss at the alarm and ``Le`` at the end (medians over ``span`` logged steps, as
single steps are noisy) and ``floor`` the objective's infimum when known (0 for the
article's objectives and BYOL, -1 for SimSiam) or else the lowest smoothed loss of the run:

- ``fallen_fraction = (L0 - Lf) / (L0 - floor)``: share of the possible fall already done;
- ``still_falling``: the loss really falls after the alarm. All of:

  1. it at least halves its distance to the floor: ``Le - floor <= 0.5 (Lf - floor)``;
  2. the fall is above the loss's noise: ``Lf - Le > 4 sigma``, with ``sigma`` the robust
     (MAD) spread of the step-to-step changes, the larger of the whole run's and of the
     steps from the alarm on (at least the last 10; 0 for a smooth curve), so a loss
     jittering on its floor does not count (4 sigma: more than the whole range of a
     uniform jitter; the collapse ablations on digits fall 11-14 sigma after their alarm,
     SimSiam without stop-gradient 5);
  3. when the floor is *not* known: ``Lf - Le >= 0.1 (L0 - floor)``. The floor is then the
     run's own lowest loss, which a flat tail sits on by construction, so rule 1 alone is
     always met there; the fall must instead be a tenth of the whole fall. With a known
     floor, rule 1 is a real test (a flat tail above the floor fails it) and a loss still
     shrinking tenfold towards its infimum counts as falling even when little of the
     absolute fall is left (the article's objectives lose ~98% of their value before any
     collapse of shape exists, then keep falling 10-200x);
- ``early``: ``fallen_fraction < 0.9`` or ``still_falling``.

No alarm gives ``fallen_fraction``, ``still_falling`` and ``early`` of None.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collapselab.errors import InputError


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``metrics.jsonl`` file (a line cut by an interruption is skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


@dataclass(frozen=True)
class EarlyWarning:
    """How early a run's first collapse alarm came (see the module docstring)."""

    alarm_step: int | None
    loss_start: float
    loss_at_alarm: float | None
    loss_end: float
    floor: float
    fallen_fraction: float | None
    still_falling: bool | None
    early: bool | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def early_warning(
    records: list[dict[str, Any]], alarm_step: int | None, floor: float | None = None,
    span: int = 3,
) -> EarlyWarning:  # fmt: skip
    """Judge an alarm against the loss curve of ``records`` (``event == "step"`` lines).

    Args:
        records: from :func:`read_metrics`.
        alarm_step: the monitor's first alarm (``summary["first_collapse_step"]``), or None.
        floor: the objective's infimum if known; else the run's lowest smoothed loss.
        span: logged steps per median (centred on the alarm; the last ``span`` for the end).
    """
    steps = np.array([r["step"] for r in records if r.get("event") == "step"])
    loss = np.array([r["loss"] for r in records if r.get("event") == "step"], dtype=np.float64)
    if loss.size == 0:
        raise InputError("no step records to judge")
    half = span // 2
    smooth = np.array([np.median(loss[max(0, i - half) : i + half + 1]) for i in range(loss.size)])
    l0, le = float(loss[0]), float(np.median(loss[-span:]))
    fl = float(smooth.min()) if floor is None else float(floor)
    if alarm_step is None:
        return EarlyWarning(None, l0, None, le, fl, None, None, None)
    i = int(np.searchsorted(steps, alarm_step, side="right")) - 1
    lf = float(smooth[max(i, 0)])
    fallen = (l0 - lf) / (l0 - fl) if l0 != fl else 1.0
    drop = lf - le  # the fall after the alarm
    halved = (le - fl) <= 0.5 * (lf - fl)
    sigma = max(_noise(loss), _noise(loss[max(min(i, loss.size - 10), 0) :]))
    above_noise = drop > 4.0 * sigma
    meaningful = floor is not None or drop >= 0.1 * (l0 - fl)
    still = bool(drop > 0 and halved and above_noise and meaningful)
    early = bool(fallen < 0.9 or still)
    return EarlyWarning(alarm_step, l0, lf, le, fl, fallen, still, early)


def _noise(loss: np.ndarray) -> float:
    """Robust spread (sigma) of one logged loss around its trend: the MAD of the
    step-to-step changes, / sqrt(2) (a change is the difference of two noisy values).
    0 for fewer than 3 values or a smooth curve (changes all alike)."""
    if loss.size < 3:
        return 0.0
    d = np.diff(loss)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2.0))
