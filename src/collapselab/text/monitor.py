"""Watch a sentence-embedding model while it trains: a fixed probe set, every k steps.

A training batch of sentence pairs is a poor sample of the embedding space (32 rows in
384 dimensions). :class:`ProbeMonitor` instead embeds a *fixed* probe set of texts
(a few hundred to a few thousand sentences) every ``every`` steps, without gradients, and
feeds the embeddings to :class:`~collapselab.monitor.CollapseMonitor` -- the same
metrics and verdict as ``collapselab check``. Optionally it scores held-out
(query, document) pairs by recall@1 at the same steps, so the geometry and the task can
be read side by side.

**Against the model's own start.** The first probe (the model before fine-tuning) is the
monitor's baseline: every later probe is measured against it, with the same rule as
``collapselab check --baseline``. A retrieval model's recall already falls while the
random-pair cosine is 0.3-0.6, long before any absolute line; the relative spread
(relative variance now / at the first probe) catches it: below 0.5
(``baseline_warn_ratio``) the state carries a warning, and the alarm policy
(:class:`~collapselab.monitor.AlarmPolicy`, the same for every monitor) fires on it.

Use it in any loop (``probe(model, step)``), or through the Trainer /
SentenceTransformerTrainer adapters in :mod:`collapselab.integrations.transformers`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from collapselab.diagnose import Thresholds
from collapselab.errors import ConfigError
from collapselab.metrics import recall_at_k
from collapselab.monitor import AlarmPolicy, CollapseMonitor, MonitorState, OnCollapse
from collapselab.text.model import encode

#: CollapseMonitor's pairwise-statistics sample for probe sets (rows per evaluation)
PROBE_SAMPLE = 512

#: the probe monitors' alarm policy unless told otherwise: it fires on the first probe at
#: warning level or worse (a fixed probe set has no batch-to-batch noise to ride out)
PROBE_ALARM = AlarmPolicy(patience=1)

StateHook = Callable[[MonitorState], Any]


@dataclass(frozen=True)
class ProbeRecord:
    """One probe evaluation: the monitor's state plus held-out recall@1 (when pairs given)."""

    step: int
    state: MonitorState = field(repr=False)
    recall_at_1: float | None
    relative_spread: float  #: relative variance / its value at the first probe (1 at start)

    @property
    def alarm(self) -> bool:
        """Level 1 or more (``Measurement.level``): a warning or a collapse verdict."""
        return self.state.level > 0

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
        on_collapse: what the alarm does (``"warn"``, ``"raise"``, ``"stop"``,
            ``"ignore"`` or a callable receiving the :class:`MonitorState`); None: the
            ``alarm``'s.
        heldout_pairs: optional ``(queries, documents)`` texts, row ``i`` relevant to row
            ``i``, scored by recall@1 at each evaluation.
        batch_size: texts per forward pass when embedding the probe.
        thresholds: verdict thresholds (default: those of ``collapselab check``; the
            warning line of the spread against the first probe is
            ``baseline_warn_ratio``).
        patience: evaluations in a row at ``level`` or worse before the alarm fires;
            None: the ``alarm``'s.
        monitor: a ready monitor to feed instead (its ``every`` and alarm policy are then
            used; keep its ``window`` at 1 for a fixed probe set: merging older
            evaluations of the same texts would blur the current state).
        alarm: the :class:`~collapselab.monitor.AlarmPolicy` (default:
            :data:`PROBE_ALARM`); ``on_collapse``, ``patience`` and ``level`` replace its
            fields (:meth:`AlarmPolicy.build <collapselab.monitor.AlarmPolicy.build>`).
        level: the lowest level that counts (``"warning"``, ``"dimensional"`` or
            ``"complete"``); None: the ``alarm``'s.
        on_state: callables receiving each :class:`MonitorState` (tracker sinks), as for
            :class:`CollapseMonitor`.

    Raises:
        ConfigError: fewer than 2 probe texts, unpaired held-out texts, or alarm settings
            or ``on_state`` given together with a ready ``monitor``.

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
        on_collapse: OnCollapse | None = None,
        heldout_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
        batch_size: int = 64,
        thresholds: Thresholds | None = None,
        monitor: CollapseMonitor | None = None,
        patience: int | None = None,
        alarm: AlarmPolicy | None = None,
        level: str | None = None,
        on_state: StateHook | Sequence[StateHook] | None = None,
    ) -> None:
        if len(probe_texts) < 2:
            raise ConfigError(f"the probe set needs at least 2 texts, got {len(probe_texts)}")
        if heldout_pairs is not None and len(heldout_pairs[0]) != len(heldout_pairs[1]):
            raise ConfigError("held-out queries and documents must pair up one to one")
        self.probe_texts = list(probe_texts)
        self.heldout = heldout_pairs
        self.batch_size = batch_size
        options = (alarm, on_collapse, patience, level, on_state)
        if monitor is not None and any(o is not None for o in options):
            raise ConfigError("ProbeMonitor: give the alarm settings and on_state to the "
                              "ready monitor, not beside it")  # fmt: skip
        self.monitor = monitor or CollapseMonitor(
            every=every,
            window=1,
            thresholds=thresholds,
            alarm=AlarmPolicy.build(alarm or PROBE_ALARM, on_collapse=on_collapse,
                                    patience=patience, level=level),  # fmt: skip
            sample_size=min(PROBE_SAMPLE, len(self.probe_texts)),
            distributed=False,  # every rank embeds the same probe: nothing to reduce
            on_state=on_state,
        )
        self.records: list[ProbeRecord] = []

    @property
    def every(self) -> int:
        return self.monitor.every

    @property
    def first_collapse_step(self) -> int | None:
        """Step at which the alarm first fired (None if never)."""
        return self.monitor.first_collapse_step

    @property
    def should_stop(self) -> bool:
        """True once an alarm with ``on_collapse="stop"`` fired."""
        return self.monitor.should_stop

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
        base = state.measurement.baseline
        spread = 1.0 if base is None else base.ratios["relative_variance"]
        record = ProbeRecord(step, state, recall, 1.0 if spread is None else spread)
        self.records.append(record)
        return record

    def to_dict(self) -> dict[str, Any]:
        """Every record, plus the first step at which the monitor fired."""
        return {"first_collapse_step": self.first_collapse_step,
                "records": [r.to_dict() for r in self.records]}  # fmt: skip
