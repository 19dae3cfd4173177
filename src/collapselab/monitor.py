"""CollapseMonitor: watch embeddings as they form and say early when a run collapses.

Two lines in any training loop::

    monitor = CollapseMonitor(every=10)
    state = monitor.update(z, step)          # None between evaluations

The detached embeddings of the ``window`` consecutive steps ending at every ``every``-th
step are folded into :class:`~collapselab.metrics.Moments` accumulators, merged (one
noisy batch never decides; consecutive steps, so a drifting mean is not mistaken for
spread), and :func:`collapselab.diagnose.measure` of the merge gives the
:class:`~collapselab.diagnose.Measurement`, the record ``collapselab check`` prints, so
the live verdict and the offline one cannot disagree. The first evaluation is the run's
baseline: every later one is also judged against it (``check --baseline`` does the
same), which catches collapse that shows first as a shrinking spread. Under
torch.distributed the merged accumulator is all-reduced first (every rank must call
``update`` at the same steps), so the verdict describes the global batch.

One :class:`AlarmPolicy` decides when a state raises the alarm, for this monitor, the
text :class:`~collapselab.text.monitor.ProbeMonitor` and every training callback.

Cost: nothing outside the windows; per window step one ``(B, d)`` device-to-host copy
and a float64 ``d x d`` scatter update; per evaluation a merge of ``window`` ``d x d``
matrices, two ``d x d`` eigensolves (three more against the baseline) and pairwise
statistics over a small row sample.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from collapselab import dist
from collapselab.diagnose import LEVEL, Measurement, Thresholds, measure
from collapselab.errors import CollapseDetected, ConfigError
from collapselab.metrics import Moments
from collapselab.metrics.moments import single_threaded_blas

logger = logging.getLogger("collapselab.monitor")

#: scalars of a Measurement whose trends are tracked
TRACKED = (
    "effective_rank",
    "std_of_l2_normalized",
    "total_variance",
    "relative_variance",
    "mean_cosine",
    "uniformity",
    "alignment",
)


@dataclass(frozen=True)
class MonitorState:
    """One evaluation of the monitor.

    Attributes:
        step: training step of the evaluation.
        measurement: the :class:`~collapselab.diagnose.Measurement` of the window
            (metrics, verdict, severity, warning, evidence, comparison with the run's
            first evaluation).
        trends: for each tracked metric, its change per 100 steps, fitted by least squares
            over the last ``trend_window`` evaluations (None until two exist).
        changed: True when the verdict differs from the previous evaluation's.
    """

    step: int
    measurement: Measurement = field(repr=False)
    trends: dict[str, float | None] = field(default_factory=dict)
    changed: bool = False

    @property
    def verdict(self) -> str:
        return self.measurement.verdict

    @property
    def warning(self) -> str | None:
        return self.measurement.warning

    @property
    def severity(self) -> float:
        return self.measurement.severity

    @property
    def collapsed(self) -> bool:
        """True for a ``dimensional`` or ``complete`` verdict."""
        return self.measurement.collapsed

    @property
    def level(self) -> int:
        """``Measurement.level``: 0 healthy, 1 warning, 2 dimensional, 3 complete."""
        return self.measurement.level

    @property
    def metrics(self) -> dict[str, float | None]:
        """The tracked scalars (``Measurement.scalars``)."""
        return self.measurement.scalars()

    @property
    def spectrum(self) -> NDArray[np.float64]:
        """``(d,)`` eigenvalues of the window's centred covariance, descending."""
        return self.measurement.metrics.eigenvalues

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (without the spectrum)."""
        return {"step": self.step, "verdict": self.verdict, "warning": self.warning,
                **self.metrics, "trends": self.trends}  # fmt: skip


#: the levels an AlarmPolicy may start at (``LEVEL`` without "healthy")
_ALARM_LEVELS = ("warning", "dimensional", "complete")

#: what an alarm may do, besides calling a function (``AlarmPolicy.on_collapse``)
ACTIONS = ("warn", "raise", "stop", "ignore")

OnCollapse = Literal["warn", "raise", "stop", "ignore"] | Callable[[MonitorState], Any]
#: whether an alarm issues warnings / log records: a flag, or a function asked at each alarm
Emit = bool | Callable[[], bool]


@dataclass(frozen=True)
class AlarmPolicy:
    """When a monitor's states raise the alarm, and what the alarm does.

    The alarm fires when the state's level (``Measurement.level``, the one ladder of
    :data:`collapselab.diagnose.LEVEL`: 0 healthy, 1 warning, 2 dimensional, 3 complete)
    has been at least ``level`` for ``patience`` evaluations in a row, once per level
    reached.

    Settings only: each monitor counts its own evaluations, so one policy may be handed
    to several monitors and callbacks. The keyword options of the monitors and callbacks
    (``on_collapse=``, ``patience=``, ``level=``) become a policy in :meth:`build`.

    Args:
        on_collapse: ``"warn"`` (``warnings.warn`` + the ``collapselab.monitor``
            logger), ``"raise"`` (:class:`~collapselab.errors.CollapseDetected`),
            ``"stop"`` (the monitor's ``should_stop`` turns True and a log record is
            issued; training callbacks end the run), ``"ignore"``, or a callable receiving
            the :class:`MonitorState`.
        patience: evaluations in a row at or above ``level`` before firing.
        level: the lowest level that counts: ``"warning"`` (collapse under way, the
            default: early), ``"dimensional"`` or ``"complete"``.
        emit: issue warnings / log records (False on all ranks but one); a callable is
            asked at each alarm (see :meth:`gated`).
    """

    on_collapse: OnCollapse = "warn"
    patience: int = 2
    level: str = "warning"
    emit: Emit = True

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ConfigError(f"patience must be >= 1, got {self.patience}")
        if self.level not in _ALARM_LEVELS:
            raise ConfigError(f"alarm level must be one of {list(_ALARM_LEVELS)}, "
                              f"got {self.level!r}")  # fmt: skip
        if isinstance(self.on_collapse, str) and self.on_collapse not in ACTIONS:
            raise ConfigError("on_collapse must be 'warn', 'raise', 'stop', 'ignore' or a "
                              f"callable, got {self.on_collapse!r}")  # fmt: skip

    @classmethod
    def build(
        cls,
        alarm: AlarmPolicy | None = None,
        *,
        on_collapse: OnCollapse | None = None,
        patience: int | None = None,
        level: str | None = None,
        emit: Emit | None = None,
    ) -> AlarmPolicy:
        """``alarm`` (default: ``AlarmPolicy()``) with each option that is not None in
        place of its field: how every monitor and callback turns its keywords into the
        policy.

        Raises:
            ConfigError: an option out of range.
        """
        base = cls() if alarm is None else alarm
        options = {"on_collapse": on_collapse, "patience": patience, "level": level,
                   "emit": emit}  # fmt: skip
        given: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        return dataclasses.replace(base, **given) if given else base

    def gated(self, gate: Callable[[], bool]) -> AlarmPolicy:
        """A copy that issues warnings / log records only while ``gate()`` is true too.

        The training callbacks pass "this process is global rank 0", known only once
        training starts, so every rank judges and stops alike but one rank speaks.
        """
        return dataclasses.replace(self, emit=_Gate(gate, self.emit))

    def emits(self) -> bool:
        """Whether an alarm fired now issues warnings / log records."""
        return bool(self.emit()) if callable(self.emit) else bool(self.emit)


@dataclass(frozen=True)
class _Gate:
    """``emit`` of :meth:`AlarmPolicy.gated` (a class, not a closure: it pickles)."""

    gate: Callable[[], bool]
    inner: Emit

    def __call__(self) -> bool:
        return bool(self.gate()) and (bool(self.inner()) if callable(self.inner)
                                      else bool(self.inner))  # fmt: skip


class _Alarm:
    """One monitor's count of its states under its :class:`AlarmPolicy`."""

    def __init__(self, policy: AlarmPolicy) -> None:
        self.policy = policy
        self.streak = 0
        self.fired_level = 0
        self.first_step: int | None = None
        self.should_stop = False

    def observe(self, state: MonitorState) -> bool:
        """Count ``state`` and fire the alarm when due; True when it fired."""
        policy = self.policy
        if state.level < LEVEL[policy.level]:
            self.streak = 0
            return False
        self.streak += 1
        if self.streak < policy.patience or state.level <= self.fired_level:
            return False
        self.fired_level = state.level
        if self.first_step is None:
            self.first_step = state.step
        self._fire(state)
        return True

    def _fire(self, state: MonitorState) -> None:
        action = self.policy.on_collapse
        ms = state.measurement
        m = ms.metrics
        msg = (
            f"collapse alarm at step {state.step}: {ms.headline} (effective rank "
            f"{_fmt(m.effective_rank)}, relative variance {_fmt(m.relative_variance)}, "
            f"severity {state.severity:.2f}); {ms.advice}"
        )
        if action == "raise":
            raise CollapseDetected(msg)
        if action == "stop":
            self.should_stop = True
            if self.policy.emits():
                logger.warning(msg)
        elif callable(action):
            action(state)
        elif action == "warn" and self.policy.emits():
            logger.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=4)

    def state_dict(self) -> dict[str, int]:
        return {"streak": self.streak, "fired_level": self.fired_level,
                "first_step": -1 if self.first_step is None else self.first_step,
                "should_stop": int(self.should_stop)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.streak = int(state["streak"])
        self.fired_level = int(state["fired_level"])
        first = int(state["first_step"])
        self.first_step = None if first < 0 else first
        self.should_stop = bool(int(state.get("should_stop", 0)))


class CollapseMonitor:
    """Live collapse verdicts over a window of recent batches.

    Args:
        every: evaluate at steps divisible by ``every`` (steps count calls when not
            passed); ``update`` returns None in between.
        window: consecutive batches (ending at the evaluation step) merged per evaluation.
        thresholds: verdict thresholds (default: the same as ``collapselab check``).
        on_collapse, patience, level, emit: alarm options (see :class:`AlarmPolicy`);
            None: the ``alarm``'s value, or the :class:`AlarmPolicy` default.
        alarm: the :class:`AlarmPolicy` (default: ``AlarmPolicy()``); the options given
            above replace its fields (:meth:`AlarmPolicy.build`). Kept in :attr:`alarm`.
        baseline: ``"first"`` (the first evaluation is the run's baseline), None (absolute
            verdicts only), or the moments / Measurement of a reference.
        on_state: a callable (or several) receiving each :class:`MonitorState`, before the
            alarm policy sees it (so a tracker records the state that raises): e.g. the
            sinks of :mod:`collapselab.integrations.trackers`. Kept in :attr:`on_state`.
        sample_size: rows kept per batch for the pairwise statistics (uniformity).
        trend_window: evaluations used for the trend fits.
        distributed: all-reduce accumulators over torch.distributed ranks; None: when a
            process group is initialised.
    """

    def __init__(
        self,
        every: int = 10,
        window: int = 4,
        thresholds: Thresholds | None = None,
        on_collapse: OnCollapse | None = None,
        patience: int | None = None,
        sample_size: int = 64,
        trend_window: int = 5,
        distributed: bool | None = None,
        emit: Emit | None = None,
        alarm: AlarmPolicy | None = None,
        baseline: Literal["first"] | Moments | Measurement | None = "first",
        on_state: Callable[[MonitorState], Any] | Sequence[Callable[[MonitorState], Any]]
        | None = None,
        level: str | None = None,
    ) -> None:
        if every < 1 or window < 1 or trend_window < 2 or sample_size < 2:
            raise ConfigError(
                "CollapseMonitor: every, window >= 1; trend_window, sample_size >= 2"
            )
        self.every = every
        self.window = window
        self.thresholds = thresholds or Thresholds()
        self.alarm = AlarmPolicy.build(alarm, on_collapse=on_collapse, patience=patience,
                                       level=level, emit=emit)  # fmt: skip
        self._alarm = _Alarm(self.alarm)
        self._fired = False
        self.sample_size = sample_size
        self.trend_window = trend_window
        self.distributed = distributed
        self._calls = 0
        self._batches: deque[tuple[int, Moments]] = deque(maxlen=window)
        self._history: deque[tuple[int, dict[str, float | None]]] = deque(maxlen=trend_window)
        self._last_verdict = "healthy"
        self._first_baseline = baseline == "first"
        self._baseline: Moments | Measurement | None = (
            None if isinstance(baseline, str) else baseline
        )
        self.last: MonitorState | None = None
        self.on_state: list[Callable[[MonitorState], Any]] = (
            [] if on_state is None else [on_state] if callable(on_state) else list(on_state)
        )

    @property
    def first_collapse_step(self) -> int | None:
        """Step at which the alarm first fired (None if never)."""
        return self._alarm.first_step

    @property
    def should_stop(self) -> bool:
        """True once an alarm with ``on_collapse="stop"`` fired."""
        return self._alarm.should_stop

    @property
    def fired(self) -> bool:
        """True when the latest :meth:`update` fired the alarm (whatever its action)."""
        return self._fired

    # ---------------------------------------------------------------------------- update
    def update(self, z: Any, step: int | None = None, paired: Any = None) -> MonitorState | None:
        """Feed one batch of embeddings; evaluate every ``every`` steps.

        The batches of the ``window`` steps ending at an evaluation step (a multiple of
        ``every``) are accumulated; other batches are ignored at no cost.

        Args:
            z: ``(B, d)`` embeddings (torch, any device / dtype, or numpy); detached here.
            step: the training step; None counts calls.
            paired: optional ``(B, d)`` second-view embeddings (adds alignment).

        Returns:
            A :class:`MonitorState` at evaluation steps, else None.

        Raises:
            CollapseDetected: the alarm policy says ``"raise"`` and it fired.
        """
        if step is None:
            step = self._calls
        self._calls += 1
        self._fired = False
        if (step + self.window - 1) % self.every >= self.window:
            return None  # not in the window before an evaluation step
        with single_threaded_blas():
            moments = Moments(_dim(z), sample_size=self.sample_size, seed=step)
            moments.update(_host(z), paired=None if paired is None else _host(paired))
            self._batches.append((step, moments))
            if step % self.every != 0:
                return None
            return self._evaluate(step)

    def _use_distributed(self) -> bool:
        if self.distributed is not None:
            return self.distributed
        return dist.world_size() > 1

    def _evaluate(self, step: int) -> MonitorState:
        recent = [m for s, m in self._batches if s > step - self.window]
        merged = Moments(recent[0].d, sample_size=self.window * self.sample_size)
        for m in recent:
            merged.merge(m)
        if self._use_distributed():
            merged.all_reduce()  # one collective per evaluation: the global batch's moments
        if self._baseline is None and self._first_baseline:
            self._baseline = merged
        base = None if self._baseline is merged else self._baseline
        ms = measure(merged, baseline=base, thresholds=self.thresholds)
        self._history.append((step, ms.scalars()))
        prev, self._last_verdict = self._last_verdict, ms.verdict
        state = MonitorState(step, ms, self._trends(), changed=ms.verdict != prev)
        self.last = state
        for hook in self.on_state:
            hook(state)
        self._fired = self._alarm.observe(state)
        return state

    def _trends(self) -> dict[str, float | None]:
        """Least-squares slope per 100 steps of each tracked metric over the history."""
        out: dict[str, float | None] = {}
        for name in TRACKED:
            pts = [(s, m[name]) for s, m in self._history if m.get(name) is not None]
            if len(pts) < 2:
                out[name] = None
                continue
            x = np.array([p[0] for p in pts], dtype=np.float64)
            y = np.array([p[1] for p in pts], dtype=np.float64)
            x -= x.mean()
            denom = float(x @ x)
            out[name] = float(100.0 * (x @ (y - y.mean())) / denom) if denom > 0 else None
        return out

    # ------------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically after a restart (tensors and ints)."""
        import torch

        base = self._baseline.moments if isinstance(self._baseline, Measurement) else \
            self._baseline  # fmt: skip
        return {
            "calls": self._calls,
            "alarm": self._alarm.state_dict(),
            "batch_steps": [s for s, _ in self._batches],
            "batches": [torch.from_numpy(m.to_array()) for _, m in self._batches],
            "d": self._batches[0][1].d if self._batches else 0,
            "baseline": None if base is None else torch.from_numpy(base.to_array()),
            "baseline_sample": 0 if base is None else base.sample_size,
            "history_steps": [s for s, _ in self._history],
            "history": [torch.tensor([_nan(m.get(k)) for k in TRACKED], dtype=torch.float64)
                        for _, m in self._history],
            "last_verdict": self._last_verdict,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self._calls = int(state["calls"])
        self._alarm.load_state_dict(state["alarm"])
        d = int(state["d"])
        self._batches.clear()
        for s, packed in zip(state["batch_steps"], state["batches"], strict=True):
            self._batches.append((int(s), Moments.from_array(packed.numpy(), d, self.sample_size)))
        if state.get("baseline") is not None:
            self._baseline = Moments.from_array(state["baseline"].numpy(), d,
                                                int(state["baseline_sample"]))  # fmt: skip
        self._history.clear()
        for s, vals in zip(state["history_steps"], state["history"], strict=True):
            self._history.append(
                (int(s), {k: (None if math.isnan(v) else float(v))
                          for k, v in zip(TRACKED, vals.tolist(), strict=True)})
            )  # fmt: skip
        self._last_verdict = state["last_verdict"]


def _dim(z: Any) -> int:
    shape = tuple(z.shape)
    if len(shape) != 2:
        raise ConfigError(f"CollapseMonitor.update: expected (B, d) embeddings, got {shape}")
    return int(shape[1])


def _host(z: Any) -> Any:
    if hasattr(z, "detach"):  # torch.Tensor, without importing torch here
        z = z.detach()
        return z.float().cpu() if str(z.dtype) != "torch.float32" else z.cpu()
    return z


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.3g}"


__all__ = ["ACTIONS", "TRACKED", "AlarmPolicy", "CollapseMonitor", "Emit", "MonitorState",
           "OnCollapse"]
