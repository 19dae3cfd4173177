"""Reading a run's ``metrics.jsonl`` and judging how early the monitor warned.

"Early" follows the issue's definition: the monitor must flag a collapsing run *while the
loss is still falling or before it has fallen by 90%*. With ``L0`` the loss at the start,
``Lf`` at the alarm, ``Le`` at the end (medians over a few logged steps, as single steps
are noisy) and ``floor`` the objective's infimum when known (0 for the article's
objectives and BYOL, -1 for SimSiam) or else the lowest smoothed loss of the run:

- ``fallen_fraction = (L0 - Lf) / (L0 - floor)``: share of the possible fall already done;
- ``still_falling``: ``Le - floor <= 0.5 (Lf - floor)``, the loss's distance to its floor
  at least halved after the alarm;
- ``early``: ``fallen_fraction < 0.9`` or ``still_falling``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


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
        raise ValueError("no step records to judge")
    half = span // 2
    smooth = np.array([np.median(loss[max(0, i - half) : i + half + 1]) for i in range(loss.size)])
    l0, le = float(loss[0]), float(np.median(loss[-span:]))
    fl = float(smooth.min()) if floor is None else float(floor)
    if alarm_step is None:
        return EarlyWarning(None, l0, None, le, fl, None, None, None)
    i = int(np.searchsorted(steps, alarm_step, side="right")) - 1
    lf = float(smooth[max(i, 0)])
    fallen = (l0 - lf) / (l0 - fl) if l0 != fl else 1.0
    still = (le - fl) <= 0.5 * (lf - fl)
    early = bool(fallen < 0.9 or still)
    return EarlyWarning(alarm_step, l0, lf, le, fl, fallen, bool(still), early)
