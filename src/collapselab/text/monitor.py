"""Watch a sentence-embedding model while it trains: a fixed probe set, every k steps.

A training batch of sentence pairs is a poor sample of the embedding space (32 rows in
384 dimensions). :class:`ProbeMonitor` instead embeds a *fixed* probe set of texts
(a few hundred to a few thousand sentences) every ``every`` steps, without gradients, and
feeds the embeddings to :class:`~collapselab.train.callbacks.CollapseMonitor` -- the same
metrics and verdict as ``collapselab check``. Optionally it scores held-out
(query, document) pairs by recall@1 at the same steps, so the geometry and the task can
be read side by side.

**Spread alarm.** The verdict's thresholds are absolute (``complete`` when the relative
variance ``trace(C) / E||z||^2`` falls below 0.05, i.e. a random-pair cosine of about
0.95 for unit-norm rows), which suits "all rows are one vector" but comes late for a
retrieval model: there, recall is already falling at a cosine of 0.7, and frozen models
differ widely in their own anisotropy. So the probe monitor also compares each
evaluation with the *first* one (the model before fine-tuning): ``relative_spread`` is
the relative variance now over its value at the first probe, and the alarm fires when it
drops below ``alarm_ratio`` (default 0.5: half of the model's own spread is gone). It
reacts like ``on_collapse`` and is recorded in ``first_alarm_step``.

Use it in any loop (``probe(model, step)``), or through the sentence-transformers /
transformers adapters in :mod:`collapselab.text.callbacks`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from collapselab.diagnose import Thresholds
from collapselab.errors import CollapseDetected, ConfigError
from collapselab.text.evaluate import recall_at_k
from collapselab.text.model import encode
from collapselab.train.callbacks import CollapseMonitor, MonitorState, OnCollapse

#: CollapseMonitor's pairwise-statistics sample for probe sets (rows per evaluation)
PROBE_SAMPLE = 512

logger = logging.getLogger("collapselab.monitor")


@dataclass(frozen=True)
class ProbeRecord:
    """One probe evaluation: the monitor's state plus held-out recall@1 (when pairs given)."""

    step: int
    state: MonitorState = field(repr=False)
    recall_at_1: float | None
    relative_spread: float  #: relative variance / its value at the first probe (1 at start)
    alarm: bool  #: relative_spread < alarm_ratio

    @property
    def verdict(self) -> str:
        return self.state.verdict

    def to_dict(self) -> dict[str, Any]:
        return {**self.state.to_dict(), "recall_at_1": self.recall_at_1,
                "relative_spread": self.relative_spread, "alarm": self.alarm}  # fmt: skip


class ProbeMonitor:
    """Embed a fixed probe set every ``every`` steps and feed a :class:`CollapseMonitor`.

    Args:
        probe_texts: the probe sentences (at least 2; a few hundred or more gives a stable
            spectrum: the effective rank cannot exceed the number of texts).
        every: evaluate at steps divisible by ``every``.
        on_collapse: passed to the monitor (``"warn"``, ``"raise"``, ``"ignore"`` or a
            callable receiving the :class:`MonitorState`).
        heldout_pairs: optional ``(queries, documents)`` texts, row ``i`` relevant to row
            ``i``, scored by recall@1 at each evaluation.
        batch_size: texts per forward pass when embedding the probe.
        thresholds: verdict thresholds (default: those of ``collapselab check``).
        alarm_ratio: raise the spread alarm when the relative variance falls below this
            fraction of its value at the first probe (None: no alarm).
        patience: consecutive collapsed verdicts before ``on_collapse`` fires. 1 by
            default: a fixed probe set has no batch-to-batch noise to ride out.
        monitor: a ready monitor to feed instead (its ``every`` is then used; keep its
            ``window`` at 1 for a fixed probe set: merging older evaluations of the same
            texts would blur the current state).

    Example:
        >>> probe = ProbeMonitor(glosses[:1000], every=25)       # doctest: +SKIP
        >>> for step, batch in enumerate(loader):                # doctest: +SKIP
        ...     train_step(model, batch)
        ...     record = probe(model, step)       # None between evaluations
    """

    def __init__(
        self,
        probe_texts: Sequence[str],
        every: int = 25,
        on_collapse: OnCollapse = "warn",
        heldout_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
        batch_size: int = 64,
        thresholds: Thresholds | None = None,
        monitor: CollapseMonitor | None = None,
        alarm_ratio: float | None = 0.5,
        patience: int = 1,
    ) -> None:
        if len(probe_texts) < 2:
            raise ConfigError(f"the probe set needs at least 2 texts, got {len(probe_texts)}")
        if heldout_pairs is not None and len(heldout_pairs[0]) != len(heldout_pairs[1]):
            raise ConfigError("held-out queries and documents must pair up one to one")
        if alarm_ratio is not None and not 0 < alarm_ratio < 1:
            raise ConfigError(f"alarm_ratio must be in (0, 1), got {alarm_ratio}")
        self.alarm_ratio = alarm_ratio
        self.on_collapse = on_collapse
        self.first_alarm_step: int | None = None
        self._initial_spread: float | None = None
        self.probe_texts = list(probe_texts)
        self.heldout = heldout_pairs
        self.batch_size = batch_size
        self.monitor = monitor or CollapseMonitor(
            every=every,
            window=1,
            thresholds=thresholds,
            on_collapse=on_collapse,
            patience=patience,
            sample_size=min(PROBE_SAMPLE, len(self.probe_texts)),
            distributed=False,  # every rank embeds the same probe: nothing to reduce
        )
        self.records: list[ProbeRecord] = []

    @property
    def every(self) -> int:
        return self.monitor.every

    @property
    def first_collapse_step(self) -> int | None:
        """Step at which the monitor first fired ``on_collapse`` (None if never)."""
        return self.monitor.first_collapse_step

    def due(self, step: int) -> bool:
        """True when ``step`` is an evaluation step."""
        return step % self.every == 0

    def __call__(self, model: Any, step: int) -> ProbeRecord | None:
        """Evaluate at ``step`` if it is due, else return None at no cost.

        Args:
            model: a ``SentenceTransformer`` (its train/eval mode is kept).
            step: the training step.
        """
        if not self.due(step):
            return None
        z = encode(model, self.probe_texts, self.batch_size)  # (P, d)
        state = self.monitor.update(z, step)
        assert state is not None  # due(step): the monitor evaluates at this step
        recall = None
        if self.heldout is not None:
            q = encode(model, self.heldout[0], self.batch_size)  # (M, d)
            d = encode(model, self.heldout[1], self.batch_size)  # (M, d)
            recall = recall_at_k(q, d, k=1)
        spread = float(state.metrics["relative_variance"] or 0.0)
        if self._initial_spread is None:
            self._initial_spread = spread
        ratio = spread / self._initial_spread if self._initial_spread > 0 else 1.0
        alarm = self.alarm_ratio is not None and ratio < self.alarm_ratio
        record = ProbeRecord(step, state, recall, ratio, alarm)
        self.records.append(record)
        if alarm and self.first_alarm_step is None:
            self.first_alarm_step = step
            self._react(record)
        return record

    def _react(self, record: ProbeRecord) -> None:
        msg = (
            f"spread alarm at step {record.step}: the probe set's relative variance fell to "
            f"{record.relative_spread:.2f} of its initial value (random-pair cosine "
            f"{record.state.metrics['mean_cosine']:.3f}); the embeddings are collapsing "
            "towards one direction: add negatives (e.g. InfoNCE / "
            "MultipleNegativesRankingLoss) or lower the learning rate"
        )
        if self.on_collapse == "raise":
            raise CollapseDetected(msg)
        if callable(self.on_collapse):
            self.on_collapse(record.state)
        elif self.on_collapse == "warn":
            logger.warning(msg)
            warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def to_dict(self) -> dict[str, Any]:
        """Every record, plus the first step at which the monitor fired."""
        return {"first_collapse_step": self.first_collapse_step,
                "first_alarm_step": self.first_alarm_step,
                "records": [r.to_dict() for r in self.records]}  # fmt: skip
