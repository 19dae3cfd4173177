"""One AlarmPolicy object travels unchanged to every monitor and callback.

Every consumer is fed the same scripted run (a healthy baseline, then a shrinking spread:
levels 0, 0, 1, 1, 3) through its own entry point, without a framework's training loop:
the plain CollapseMonitor, the Lightning hooks, the text ProbeMonitor and the Hugging
Face callback. They must fire at the same steps with the same levels, each counting its
own evaluations although they share one policy object.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from collapselab.errors import ConfigError
from collapselab.integrations.lightning import LightningHooks
from collapselab.monitor import AlarmPolicy, CollapseMonitor, MonitorState
from collapselab.text.monitor import PROBE_ALARM, ProbeMonitor

SPREADS = (1.0, 0.9, 0.5, 0.45, 0.1)  # levels 0 (the baseline), 0, 1, 1, 3
TEXTS = [f"text {i}" for i in range(256)]


def cloud(step: int) -> np.ndarray:
    """(256, 64) rows c + noise of RMS ``SPREADS[step]`` (|c| = 1), fixed per step."""
    rng = np.random.default_rng(step)
    c = np.zeros(64)
    c[0] = 1.0
    return (c + SPREADS[step] * rng.standard_normal((256, 64)) / math.sqrt(64)).astype(
        np.float32
    )


class FakeEncoder:
    """What :func:`collapselab.text.model.encode` needs: ``encode`` and train/eval mode;
    each call returns the cloud of the step it is told."""

    def __init__(self) -> None:
        self.training = True
        self.step = 0

    def train(self, mode: bool = True) -> None:
        self.training = mode

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        assert len(texts) == len(TEXTS)
        return cloud(self.step)


class LightningFeeder:
    """Drives :class:`LightningHooks` as Lightning would: setup, one batch per step."""

    def __init__(self, hooks: LightningHooks, global_zero: bool = True) -> None:
        self.hooks = hooks
        # global_step -1 at the start: the first batch completes step 0, like the others
        self.trainer = SimpleNamespace(global_step=-1, is_global_zero=global_zero,
                                       should_stop=False, log_every_n_steps=1, loggers=[])
        self.module = SimpleNamespace(log_dict=lambda *a, **k: None)
        hooks.setup(self.trainer, self.module, "fit")
        hooks.on_train_start(self.trainer, self.module)

    def __call__(self, step: int) -> None:
        self.trainer.global_step = step
        out = {"embeddings": cloud(step)}
        self.hooks.on_train_batch_end(self.trainer, self.module, out, None, step)


class HFFeeder:
    """Drives the Hugging Face callback as ``Trainer`` would: ``on_train_begin`` at step 0,
    then ``on_step_end``."""

    def __init__(self, cb: Any, world_zero: bool = True) -> None:
        from transformers import TrainerControl, TrainerState

        self.cb, self.model = cb, FakeEncoder()
        self.state, self.control = TrainerState(), TrainerControl()
        self.state.is_world_process_zero = world_zero

    def __call__(self, step: int) -> None:
        self.model.step = self.state.global_step = step
        hook = self.cb.on_train_begin if step == 0 else self.cb.on_step_end
        hook(None, self.state, self.control, model=self.model)


def consumers(policy: AlarmPolicy) -> dict[str, Any]:
    """``name -> feed(step)`` for every consumer, all built from ``policy``."""
    from collapselab.integrations.transformers import CollapseMonitorCallback

    mon = CollapseMonitor(every=1, window=1, alarm=policy)
    probe = ProbeMonitor(TEXTS, every=1, alarm=policy)
    probe_model = FakeEncoder()

    def feed_probe(step: int) -> None:
        probe_model.step = step
        probe(probe_model, step)

    return {
        "monitor": lambda step: mon.update(cloud(step), step),
        "lightning": LightningFeeder(LightningHooks(every=1, window=1, alarm=policy)),
        "probe": feed_probe,
        "hf": HFFeeder(CollapseMonitorCallback(TEXTS, every=1, alarm=policy)),
    }


@pytest.mark.parametrize(
    ("patience", "level", "fired"),
    [(2, "warning", [(3, 1), (4, 3)]),  # warning twice in a row, then once per level
     (1, "warning", [(2, 1), (4, 3)]),
     (1, "complete", [(4, 3)])],
)  # fmt: skip
def test_one_policy_fires_alike_in_every_monitor_and_callback(
    patience: int, level: str, fired: list[tuple[int, int]]
) -> None:
    pytest.importorskip("transformers")
    seen: dict[str, list[tuple[int, int]]] = {}
    current = [""]

    def record(state: MonitorState) -> None:
        seen.setdefault(current[0], []).append((state.step, state.level))

    policy = AlarmPolicy(record, patience=patience, level=level)
    feeds = consumers(policy)
    for step in range(len(SPREADS)):
        for name, feed in feeds.items():  # interleaved: each counts its own evaluations
            current[0] = name
            feed(step)
    assert seen == {name: fired for name in feeds}


def test_stop_reaches_each_framework_and_keywords_override_the_policy() -> None:
    pytest.importorskip("transformers")
    from collapselab.integrations.transformers import CollapseMonitorCallback

    policy = AlarmPolicy("ignore", patience=2)
    lightning = LightningFeeder(LightningHooks(every=1, window=1, alarm=policy,
                                               on_collapse="stop"))  # fmt: skip
    hf = HFFeeder(CollapseMonitorCallback(TEXTS, every=1, alarm=policy, on_collapse="stop"))
    assert lightning.hooks.monitor.alarm.on_collapse == "stop"
    assert lightning.hooks.monitor.alarm.patience == 2  # the rest is the policy's
    for step in range(len(SPREADS)):
        lightning(step)
        hf(step)
        assert lightning.trainer.should_stop == (step >= 3)
        assert hf.control.should_training_stop == (step >= 3)
    assert policy.on_collapse == "ignore"  # the caller's policy is left as it was


def _warned(feed: Any) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(len(SPREADS)):
            feed(step)
    return sum("collapse alarm" in str(w.message) for w in caught)


def test_callbacks_warn_on_rank_zero_only_and_keep_the_policy_quiet_when_asked() -> None:
    pytest.importorskip("transformers")
    from collapselab.integrations.transformers import CollapseMonitorCallback

    loud, quiet = AlarmPolicy(patience=1), AlarmPolicy(patience=1, emit=False)
    hooks = lambda p: LightningHooks(every=1, window=1, alarm=p)  # noqa: E731
    hf = lambda p: CollapseMonitorCallback(TEXTS, every=1, alarm=p)  # noqa: E731
    assert _warned(LightningFeeder(hooks(loud))) == 2  # levels 1 and 3
    assert _warned(LightningFeeder(hooks(loud), global_zero=False)) == 0
    assert _warned(LightningFeeder(hooks(quiet))) == 0
    assert _warned(HFFeeder(hf(loud))) == 2
    assert _warned(HFFeeder(hf(loud), world_zero=False)) == 0
    assert _warned(HFFeeder(hf(quiet))) == 0


def test_policy_defaults_build_and_sharing() -> None:
    assert CollapseMonitor().alarm == AlarmPolicy()
    assert ProbeMonitor(TEXTS).monitor.alarm == PROBE_ALARM
    assert PROBE_ALARM.patience == 1 and AlarmPolicy().patience == 2
    built = AlarmPolicy.build(AlarmPolicy(patience=3), on_collapse="stop", level="complete")
    assert built == AlarmPolicy("stop", 3, "complete")
    assert AlarmPolicy.build(None) == AlarmPolicy()
    mon = CollapseMonitor(alarm=AlarmPolicy(patience=3), on_collapse="ignore", emit=False)
    assert mon.alarm == AlarmPolicy("ignore", 3, emit=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        mon.alarm.patience = 1  # type: ignore[misc]
    with pytest.raises(ConfigError, match="ready monitor"):
        ProbeMonitor(TEXTS, monitor=CollapseMonitor(), patience=2)
    with pytest.raises(ConfigError, match="patience"):
        AlarmPolicy.build(patience=0)
