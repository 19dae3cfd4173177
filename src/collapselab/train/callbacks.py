"""CollapseMonitor: watch embeddings as they form and say early when a run collapses.

Two lines in any training loop::

    monitor = CollapseMonitor(every=10)
    state = monitor.update(z, step)          # None between evaluations

The detached embeddings of the ``window`` consecutive steps ending at every ``every``-th
step are folded into :class:`~collapselab.metrics.Moments` accumulators, merged (one
noisy batch never decides; consecutive steps, so a drifting mean is not mistaken for
spread), and :func:`~collapselab.metrics.summarize` of the merge goes to
:func:`collapselab.diagnose.diagnose`, the function ``collapselab check`` uses, so the
live verdict and the offline one cannot disagree. Under torch.distributed the merged
accumulator is all-reduced first (every rank must call ``update`` at the same steps), so
the verdict describes the global batch.

Cost: nothing outside the windows; per window step one ``(B, d)`` device-to-host copy
and a float64 ``d x d`` scatter update; per evaluation a merge of ``window`` ``d x d``
matrices, two ``d x d`` eigensolves and pairwise statistics over a small row sample.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from collapselab.diagnose import SEVERITY, Diagnosis, Thresholds, diagnose
from collapselab.errors import CollapseDetected
from collapselab.metrics import Moments, summarize
from collapselab.train._threads import blas_threads

logger = logging.getLogger("collapselab.monitor")

#: metrics of the state (scalars of EmbeddingMetrics) whose trends are tracked
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
        verdict: ``"healthy"``, ``"dimensional"`` or ``"complete"`` (from ``diagnose``).
        metrics: the numbers behind the verdict over the window: effective rank, its
            fraction of the isotropic reference, std of L2-normalised embeddings, total
            and relative variance, mean cosine, uniformity, alignment (None without paired
            views), top-eigenvalue share, rows merged.
        trends: for each tracked metric, its change per 100 steps, fitted by least squares
            over the last ``trend_window`` evaluations (None until two exist).
        spectrum: ``(d,)`` eigenvalues of the window's centred covariance, descending.
        diagnosis: the full :class:`~collapselab.diagnose.Diagnosis` (evidence, advice).
        changed: True when the verdict differs from the previous evaluation's.
    """

    step: int
    verdict: str
    metrics: dict[str, float | None]
    trends: dict[str, float | None]
    spectrum: NDArray[np.float64] = field(repr=False)
    diagnosis: Diagnosis = field(repr=False)
    changed: bool = False

    @property
    def collapsed(self) -> bool:
        """True for a ``dimensional`` or ``complete`` verdict."""
        return self.verdict != "healthy"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (without the spectrum)."""
        return {"step": self.step, "verdict": self.verdict, **self.metrics,
                "trends": self.trends}  # fmt: skip


OnCollapse = Literal["warn", "raise", "ignore"] | Callable[[MonitorState], Any]


class CollapseMonitor:
    """Live collapse verdicts over a window of recent batches.

    Args:
        every: evaluate at steps divisible by ``every`` (steps count calls when not
            passed); ``update`` returns None in between.
        window: consecutive batches (ending at the evaluation step) merged per evaluation.
        thresholds: verdict thresholds (default: the same as ``collapselab check``).
        on_collapse: the alarm, raised once per severity when the verdict has been
            ``dimensional`` / ``complete`` for ``patience`` evaluations in a row:
            ``"warn"`` (``warnings.warn`` + the ``collapselab.monitor`` logger),
            ``"raise"`` (:class:`~collapselab.errors.CollapseDetected`, stops the run),
            ``"ignore"``, or a callable receiving the :class:`MonitorState`.
        patience: consecutive collapsed evaluations required before ``on_collapse`` fires
            (each state reports its verdict regardless). The default 3 rides out brief
            low-rank phases of healthy runs (and noise) while a real collapse, which
            persists, is still caught early (digits: within 20 steps of its onset).
        sample_size: rows kept per batch for the pairwise statistics (uniformity).
        trend_window: evaluations used for the trend fits.
        distributed: all-reduce accumulators over torch.distributed ranks; None: when a
            process group is initialised.
        emit: issue warnings / log records (set False on all ranks but one).
    """

    def __init__(
        self,
        every: int = 10,
        window: int = 4,
        thresholds: Thresholds | None = None,
        on_collapse: OnCollapse = "warn",
        patience: int = 3,
        sample_size: int = 64,
        trend_window: int = 5,
        distributed: bool | None = None,
        emit: bool = True,
    ) -> None:
        if every < 1 or window < 1 or patience < 1 or trend_window < 2 or sample_size < 2:
            raise ValueError(
                "CollapseMonitor: every, window, patience >= 1, trend_window, sample_size >= 2"
            )
        if isinstance(on_collapse, str) and on_collapse not in ("warn", "raise", "ignore"):
            raise ValueError(f"on_collapse must be 'warn', 'raise', 'ignore' or a callable, "
                             f"got {on_collapse!r}")  # fmt: skip
        self.every = every
        self.window = window
        self.thresholds = thresholds or Thresholds()
        self.on_collapse = on_collapse
        self.patience = patience
        self.sample_size = sample_size
        self.trend_window = trend_window
        self.distributed = distributed
        self.emit = emit
        self._calls = 0
        self._batches: deque[tuple[int, Moments]] = deque(maxlen=window)
        self._history: deque[tuple[int, dict[str, float | None]]] = deque(maxlen=trend_window)
        self._streak = 0
        self._fired_severity = 0
        self._last_verdict = "healthy"
        self.last: MonitorState | None = None
        self.first_collapse_step: int | None = None

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
            CollapseDetected: ``on_collapse="raise"`` and the run collapsed.
        """
        if step is None:
            step = self._calls
        self._calls += 1
        if (step + self.window - 1) % self.every >= self.window:
            return None  # not in the window before an evaluation step
        with blas_threads(1):
            moments = Moments(_dim(z), sample_size=self.sample_size, seed=step)
            moments.update(_host(z), paired=None if paired is None else _host(paired))
            self._batches.append((step, moments))
            if step % self.every != 0:
                return None
            return self._evaluate(step)

    def _use_distributed(self) -> bool:
        if self.distributed is not None:
            return self.distributed
        import torch.distributed as dist

        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1

    def _evaluate(self, step: int) -> MonitorState:
        recent = [m for s, m in self._batches if s > step - self.window]
        merged = Moments(recent[0].d, sample_size=self.window * self.sample_size)
        for m in recent:
            merged.merge(m)
        if self._use_distributed():
            merged.all_reduce()  # one collective per evaluation: the global batch's moments
        met = summarize(merged)
        dg = diagnose(met, self.thresholds)
        lam = met.eigenvalues
        iso = met.isotropic_effective_rank
        metrics: dict[str, float | None] = {
            "effective_rank": met.effective_rank,
            "effective_rank_fraction": met.effective_rank / iso if iso > 0 else None,
            "std_of_l2_normalized": met.std_of_l2_normalized,
            "total_variance": met.total_variance,
            "relative_variance": met.relative_variance,
            "mean_cosine": met.mean_cosine,
            "uniformity": met.uniformity,
            "alignment": met.alignment,
            "top_eigenvalue_share": float(lam[0] / lam.sum()) if lam.sum() > 0 else 1.0,
            "rows": float(met.n),
        }
        metrics = {k: _finite_or_none(v) for k, v in metrics.items()}
        self._history.append((step, metrics))
        prev, self._last_verdict = self._last_verdict, dg.verdict
        state = MonitorState(
            step=step,
            verdict=dg.verdict,
            metrics=metrics,
            trends=self._trends(),
            spectrum=lam,
            diagnosis=dg,
            changed=dg.verdict != prev,
        )
        self.last = state
        self._react(state)
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

    def _react(self, state: MonitorState) -> None:
        if not state.collapsed:
            self._streak = 0
            return
        self._streak += 1
        severity = SEVERITY[state.verdict]
        if self._streak < self.patience or severity <= self._fired_severity:
            return
        self._fired_severity = severity
        if self.first_collapse_step is None:
            self.first_collapse_step = state.step
        m = state.metrics
        msg = (
            f"collapse detected at step {state.step}: verdict {state.verdict} "
            f"(effective rank {_fmt(m['effective_rank'])}, "
            f"relative variance {_fmt(m['relative_variance'])}, "
            f"std of L2-normalised embeddings {_fmt(m['std_of_l2_normalized'])}); "
            f"{state.diagnosis.advice}"
        )
        if self.on_collapse == "raise":
            raise CollapseDetected(msg)
        if callable(self.on_collapse):
            self.on_collapse(state)
        elif self.on_collapse == "warn" and self.emit:
            logger.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------- checkpointing
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue identically after a restart (tensors and ints)."""
        return {
            "calls": self._calls,
            "streak": self._streak,
            "fired_severity": self._fired_severity,
            "first_collapse_step": -1 if self.first_collapse_step is None else
            self.first_collapse_step,
            "batch_steps": [s for s, _ in self._batches],
            "batches": [torch.from_numpy(m.to_array()) for _, m in self._batches],
            "d": self._batches[0][1].d if self._batches else 0,
            "history_steps": [s for s, _ in self._history],
            "history": [torch.tensor([_nan(m.get(k)) for k in TRACKED], dtype=torch.float64)
                        for _, m in self._history],
            "last_verdict": self._last_verdict,
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self._calls = int(state["calls"])
        self._streak = int(state["streak"])
        self._fired_severity = int(state["fired_severity"])
        fcs = int(state["first_collapse_step"])
        self.first_collapse_step = None if fcs < 0 else fcs
        d = int(state["d"])
        self._batches.clear()
        for s, packed in zip(state["batch_steps"], state["batches"], strict=True):
            self._batches.append((int(s), Moments.from_array(packed.numpy(), d, self.sample_size)))
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
        raise ValueError(f"CollapseMonitor.update: expected (B, d) embeddings, got {shape}")
    return int(shape[1])


def _host(z: Any) -> Any:
    if isinstance(z, torch.Tensor):
        return z.detach().float().cpu() if z.dtype != torch.float32 else z.detach().cpu()
    return z


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"
