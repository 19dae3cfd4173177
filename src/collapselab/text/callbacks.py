"""CollapseMonitor adapters for sentence-transformers / Hugging Face training.

Two ways in, both thin wrappers around :class:`~collapselab.text.monitor.ProbeMonitor`
(a fixed probe set embedded every k steps, fed to the CollapseMonitor):

- :class:`CollapseMonitorCallback`, a ``transformers.TrainerCallback``: add it to
  ``SentenceTransformerTrainer(..., callbacks=[cb])``. It probes at step 0 (the model
  before training) and every ``every`` optimizer steps; with ``stop_on_collapse`` it ends
  training when the monitor fires.
- :class:`CollapseMonitorEvaluator`, a sentence-transformers evaluator: pass it as
  ``evaluator=`` and its metrics (effective rank, mean cosine, verdict severity, recall@1)
  are logged with every evaluation (``eval_strategy="steps"``, ``eval_steps=k``).

This module imports sentence-transformers and transformers
(``pip install "collapselab[text]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from collapselab.diagnose import Thresholds
from collapselab.text.monitor import ProbeMonitor, ProbeRecord

try:  # sentence-transformers >= 6
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
except ImportError:  # pragma: no cover - 3.x to 5.x
    from sentence_transformers.evaluation import (  # type: ignore[no-redef]
        SentenceEvaluator as BaseEvaluator,
    )


def record_metrics(record: ProbeRecord) -> dict[str, float]:
    """Flat float metrics of a probe record (None values dropped), for trainer logs."""
    out = {k: float(v) for k, v in record.state.metrics.items() if v is not None}
    out["relative_spread"] = record.relative_spread
    out["alarm"] = float(record.alarm)
    if record.recall_at_1 is not None:
        out["recall_at_1"] = record.recall_at_1
    return out


class CollapseMonitorCallback(TrainerCallback):  # type: ignore[misc]
    """Probe the model every ``every`` optimizer steps during ``Trainer.train()``.

    Args:
        probe_texts: fixed probe sentences.
        every: probe at global steps divisible by ``every`` (and at step 0).
        heldout_pairs: optional (queries, documents) texts scored by recall@1.
        on_collapse: the monitor's reaction (``"warn"``, ``"raise"``, ``"ignore"``,
            callable).
        stop_on_collapse: set ``control.should_training_stop`` once the alarm fires (a
            warning or a collapse verdict; see :class:`~collapselab.monitor.AlarmPolicy`).
        batch_size: texts per forward pass for the probe.
        thresholds: verdict thresholds.

    Attributes:
        probe: the :class:`ProbeMonitor` (``probe.records`` holds every evaluation).
    """

    def __init__(
        self,
        probe_texts: Sequence[str],
        every: int = 25,
        heldout_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
        on_collapse: Any = "warn",
        stop_on_collapse: bool = False,
        batch_size: int = 64,
        thresholds: Thresholds | None = None,
    ) -> None:
        self.probe = ProbeMonitor(probe_texts, every, on_collapse, heldout_pairs, batch_size,
                                  thresholds)  # fmt: skip
        self.stop_on_collapse = stop_on_collapse

    def _run(self, state: Any, control: Any, model: Any) -> None:
        if model is None or not getattr(state, "is_world_process_zero", True):
            return
        record = self.probe(model, int(state.global_step))
        if record is None:
            return
        if self.stop_on_collapse and self.probe.first_collapse_step is not None:
            control.should_training_stop = True

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._run(state, control, kwargs.get("model"))
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._run(state, control, kwargs.get("model"))
        return control


class CollapseMonitorEvaluator(BaseEvaluator):  # type: ignore[misc]
    """A sentence-transformers evaluator that reports the collapse state of a probe set.

    Args:
        probe_texts: fixed probe sentences.
        heldout_pairs: optional (queries, documents) texts scored by recall@1.
        name: metric prefix (``"collapse_effective_rank"``, ...).
        on_collapse, batch_size, thresholds: as for :class:`ProbeMonitor`.

    Returns (when called):
        ``{name_effective_rank, name_mean_cosine, name_severity, ...}``; the
        primary metric is the effective rank (greater is better).
    """

    def __init__(
        self,
        probe_texts: Sequence[str],
        heldout_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
        name: str = "collapse",
        on_collapse: Any = "warn",
        batch_size: int = 64,
        thresholds: Thresholds | None = None,
    ) -> None:
        super().__init__()
        # every call is an evaluation: the trainer's eval_steps sets the rhythm
        self.probe = ProbeMonitor(probe_texts, 1, on_collapse, heldout_pairs, batch_size,
                                  thresholds)  # fmt: skip
        self.name = name
        self.primary_metric = "effective_rank"
        self.greater_is_better = True
        self._calls = 0

    def __call__(
        self, model: Any, output_path: str | None = None, epoch: float = -1, steps: int = -1
    ) -> dict[str, float]:
        step = steps if steps >= 0 else self._calls  # -1: called outside training
        self._calls += 1
        record = self.probe(model, step)
        assert record is not None  # every = 1
        metrics: dict[str, float] = self.prefix_name_to_metrics(record_metrics(record), self.name)
        try:
            self.store_metrics_in_model_card_data(model, metrics, epoch, steps)  # type: ignore[arg-type]
        except AttributeError:  # a model without model-card data
            pass
        return metrics
