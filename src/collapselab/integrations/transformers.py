"""CollapseMonitor adapters for Hugging Face ``Trainer`` and ``SentenceTransformerTrainer``.

Both are thin wrappers around :class:`~collapselab.text.monitor.ProbeMonitor` (a fixed
probe set embedded every k steps, fed to the CollapseMonitor); this module imports
transformers (``pip install "collapselab[text]"``):

- :class:`CollapseMonitorCallback`, a ``transformers.TrainerCallback`` for any
  ``Trainer``: a sentence-transformers model is probed with its ``encode``; any other
  transformers encoder by the mean of its last hidden states over the attention mask
  (the tokenizer is the trainer's ``processing_class`` or ``tokenizer=``). It probes at
  step 0 (the model before training) and every ``every`` optimizer steps. Attach it with
  ``cb.attach(trainer)`` to have each probe go to ``trainer.log()`` (so
  ``trainer.state.log_history`` and every ``report_to`` integration receive it);
  ``on_collapse="stop"`` sets ``control.should_training_stop`` when the alarm fires.
- :class:`CollapseMonitorEvaluator`, a sentence-transformers evaluator: pass it as
  ``evaluator=`` and its metrics are logged with every evaluation (``eval_strategy="steps"``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from transformers import TrainerCallback

from collapselab.diagnose import Thresholds
from collapselab.errors import ConfigError
from collapselab.integrations._record import flat_metrics, resolve_on_collapse
from collapselab.monitor import AlarmPolicy, MonitorState, OnCollapse
from collapselab.text.monitor import PROBE_ALARM, ProbeMonitor, ProbeRecord

try:  # sentence-transformers >= 6
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator
except ImportError:  # pragma: no cover - 3.x to 5.x
    from sentence_transformers.evaluation import (  # type: ignore[no-redef]
        SentenceEvaluator as BaseEvaluator,
    )

StateHook = Callable[[MonitorState], Any]


def record_metrics(record: ProbeRecord, prefix: str = "") -> dict[str, float]:
    """Flat float metrics of a probe record: the state's, the relative spread, recall@1."""
    out = flat_metrics(record.state, prefix)
    out[f"{prefix}relative_spread"] = record.relative_spread
    out[f"{prefix}alarm"] = float(record.alarm)
    if record.recall_at_1 is not None:
        out[f"{prefix}recall_at_1"] = record.recall_at_1
    return out


class MeanPooledEncoder:
    """A transformers encoder seen as a sentence encoder (what :func:`encode` calls).

    Embedding of a text: the mean of the last layer's hidden states over its attention
    mask, ``(len(texts), hidden_size)``.
    """

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @property
    def training(self) -> bool:
        return bool(self.model.training)

    def train(self, mode: bool = True) -> Any:
        return self.model.train(mode)

    def encode(self, texts: Sequence[str], batch_size: int = 32, **_: Any) -> NDArray[np.float32]:
        import torch

        self.model.eval()
        device = next(self.model.parameters()).device
        parts = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(list(texts[i : i + batch_size]), padding=True, truncation=True,
                                 return_tensors="pt").to(device)  # fmt: skip
            out = self.model(**enc, output_hidden_states=True)
            h = out.hidden_states[-1]  # (b, L, hidden)
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)  # (b, L, 1)
            parts.append(((h * mask).sum(1) / mask.sum(1).clamp_min(1.0)).float().cpu())
        return torch.cat(parts).numpy()


class CollapseMonitorCallback(TrainerCallback):  # type: ignore[misc]
    """Probe the model every ``every`` optimizer steps during ``Trainer.train()``.

    Args:
        probe_texts: fixed probe sentences.
        every: probe at global steps divisible by ``every`` (and at step 0).
        heldout_pairs: optional (queries, documents) texts scored by recall@1.
        on_collapse: ``"warn"``, ``"stop"`` (``control.should_training_stop``), ``"raise"``,
            ``"ignore"`` or a callable receiving the :class:`MonitorState`; None: the
            ``alarm``'s.
        patience: probes in a row at ``level`` or worse before the alarm fires; None: the
            ``alarm``'s.
        batch_size: texts per forward pass for the probe.
        thresholds: verdict thresholds.
        tokenizer: for a model without ``encode``; default: the trainer's
            ``processing_class``.
        on_state: tracker sinks (:mod:`collapselab.integrations.trackers`) or other
            callables receiving each :class:`MonitorState`.
        log_prefix: prefix of the names sent to ``trainer.log``.
        stop_on_collapse: deprecated; ``True`` means ``on_collapse="stop"``.
        alarm: the :class:`~collapselab.monitor.AlarmPolicy` (default: the probe's,
            :data:`~collapselab.text.monitor.PROBE_ALARM`); ``on_collapse``, ``patience``
            and ``level`` replace its fields. Warnings are issued on the world's process
            zero only (the policy is :meth:`~collapselab.monitor.AlarmPolicy.gated`).
        level: the lowest level that counts; None: the ``alarm``'s.

    Attributes:
        probe: the :class:`ProbeMonitor` (``probe.records`` holds every evaluation).
    """

    def __init__(
        self,
        probe_texts: Sequence[str],
        every: int = 25,
        heldout_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
        on_collapse: OnCollapse | None = None,
        patience: int | None = None,
        batch_size: int = 64,
        thresholds: Thresholds | None = None,
        tokenizer: Any = None,
        on_state: StateHook | Sequence[StateHook] | None = None,
        log_prefix: str = "collapse/",
        stop_on_collapse: bool | None = None,
        alarm: AlarmPolicy | None = None,
        level: str | None = None,
    ) -> None:
        policy = AlarmPolicy.build(
            alarm or PROBE_ALARM,
            on_collapse=resolve_on_collapse(on_collapse, stop_on_collapse),
            patience=patience,
            level=level,
        )
        self._world_zero = True  # updated at each probe from the trainer's state
        self.probe = ProbeMonitor(probe_texts, every, heldout_pairs=heldout_pairs,
                                  batch_size=batch_size, thresholds=thresholds,
                                  alarm=policy.gated(self._speaks),
                                  on_state=on_state)  # fmt: skip
        self.tokenizer = tokenizer
        self.log_prefix = log_prefix
        self.trainer: Any = None

    def attach(self, trainer: Any) -> CollapseMonitorCallback:
        """Add this callback to ``trainer`` and log every probe through ``trainer.log``."""
        trainer.add_callback(self)
        self.trainer = trainer
        return self

    def _speaks(self) -> bool:
        """The alarm's gate: this is the world's process zero."""
        return self._world_zero

    def _encoder(self, model: Any, kwargs: dict[str, Any]) -> Any:
        if hasattr(model, "encode"):  # a SentenceTransformer
            return model
        tok = self.tokenizer or kwargs.get("processing_class") or kwargs.get("tokenizer")
        if tok is None:
            raise ConfigError("CollapseMonitorCallback: the model has no encode(); pass "
                              "tokenizer= or give the Trainer a processing_class")  # fmt: skip
        return MeanPooledEncoder(model, tok)

    def _run(self, state: Any, control: Any, kwargs: dict[str, Any]) -> None:
        model = kwargs.get("model")
        if model is None or not self.probe.due(int(state.global_step)):
            return
        # every rank probes (the same texts, the same verdict), so all stop together
        self._world_zero = bool(getattr(state, "is_world_process_zero", True))
        record = self.probe(self._encoder(model, kwargs), int(state.global_step))
        if record is None:
            return
        if self.trainer is not None:
            self.trainer.log(record_metrics(record, self.log_prefix))
        if self.probe.should_stop:  # the alarm fired with on_collapse="stop"
            control.should_training_stop = True

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._run(state, control, kwargs)
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        self._run(state, control, kwargs)
        return control


class CollapseMonitorEvaluator(BaseEvaluator):  # type: ignore[misc]
    """A sentence-transformers evaluator that reports the collapse state of a probe set.

    Args:
        probe_texts: fixed probe sentences.
        heldout_pairs: optional (queries, documents) texts scored by recall@1.
        name: metric prefix (``"collapse_effective_rank"``, ...).
        on_collapse, batch_size, thresholds, alarm: as for :class:`ProbeMonitor`.

    Returns (when called):
        ``{name_effective_rank, name_mean_cosine, name_severity, ...}``; the
        primary metric is the effective rank (greater is better).
    """

    def __init__(
        self,
        probe_texts: Sequence[str],
        heldout_pairs: tuple[Sequence[str], Sequence[str]] | None = None,
        name: str = "collapse",
        on_collapse: OnCollapse | None = None,
        batch_size: int = 64,
        thresholds: Thresholds | None = None,
        alarm: AlarmPolicy | None = None,
    ) -> None:
        super().__init__()
        # every call is an evaluation: the trainer's eval_steps sets the rhythm
        self.probe = ProbeMonitor(probe_texts, 1, on_collapse, heldout_pairs, batch_size,
                                  thresholds, alarm=alarm)  # fmt: skip
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
