"""Lightning callback built on :class:`~collapselab.monitor.CollapseMonitor`.

Lightning is an optional extra (``pip install "collapselab[lightning]"``), imported only
when :data:`CollapseMonitorCallback` is first accessed::

    from collapselab.integrations.lightning import CollapseMonitorCallback
    cb = CollapseMonitorCallback(every=10, on_collapse="stop")
    trainer = lightning.Trainer(callbacks=[cb], log_every_n_steps=10)

The module's ``training_step`` returns a dict with the embeddings to watch under
``"embeddings"`` (and optionally the second view under ``"paired"``), or the callback is
given ``get_embeddings(pl_module, outputs, batch)``.

- **Steps**: the monitor counts optimizer steps (``trainer.global_step``). Under gradient
  accumulation the micro-batches of one optimizer step are accumulated and fed as one
  batch on the micro-batch that completes the step: one evaluation per optimizer step,
  over the step's whole batch.
- **Logging**: each evaluation goes through ``pl_module.log_dict`` as
  ``collapse/<metric>`` (``Measurement.scalars()`` and ``level``), so every attached
  Lightning logger receives it. Lightning writes step metrics at multiples of
  ``log_every_n_steps``: keep ``every`` a multiple of it (a warning says so otherwise).
- **Stopping**: with ``on_collapse="stop"`` the monitor's ``should_stop`` turns True
  when the alarm fires; the callback then sets ``trainer.should_stop``.
- **DDP**: every rank feeds its own batch; the monitor all-reduces the moments at each
  evaluation, so every rank sees the verdict of the global batch and stops at the same
  step. Warnings are issued on global rank 0 only (the policy is
  :meth:`~collapselab.monitor.AlarmPolicy.gated` by ``trainer.is_global_zero``).
- **Checkpoints**: the monitor's state (windows, baseline, trend history, alarm) is saved
  in Lightning checkpoints and restored on ``fit(ckpt_path=...)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from collapselab.errors import InputError
from collapselab.integrations._record import flat_metrics, resolve_on_collapse
from collapselab.monitor import AlarmPolicy, CollapseMonitor, OnCollapse

EmbeddingGetter = Callable[[Any, Any, Any], Any]

_INSTALL_HINT = (
    'CollapseMonitorCallback needs PyTorch Lightning: pip install "collapselab[lightning]"'
)


class LightningHooks:
    """The callback's logic (the Lightning ``Callback`` subclass mixes it in).

    Args:
        every: monitor evaluation interval in optimizer steps (``trainer.global_step``).
        window: optimizer steps merged per evaluation.
        on_collapse: ``"warn"``, ``"stop"`` (``trainer.should_stop = True``), ``"raise"``,
            ``"ignore"`` or a callable receiving the :class:`MonitorState`; None: the
            ``alarm``'s.
        get_embeddings: ``(pl_module, outputs, batch) -> (B, d)`` tensor; default reads
            ``outputs["embeddings"]`` (and ``outputs["paired"]`` when present).
        log_prefix: prefix of the logged metric names.
        stop_on_collapse: deprecated; ``True`` means ``on_collapse="stop"``.
        alarm: the :class:`~collapselab.monitor.AlarmPolicy` (default: ``AlarmPolicy()``);
            ``on_collapse``, ``patience``, ``level`` and ``emit`` replace its fields.
        patience: evaluations in a row at ``level`` or worse before the alarm fires;
            None: the ``alarm``'s.
        level: the lowest level that counts; None: the ``alarm``'s.
        **monitor_kwargs: further :class:`CollapseMonitor` arguments (``thresholds``,
            ``baseline``, ``on_state`` for tracker sinks, ``emit``, ...).

    Attributes:
        monitor: the :class:`CollapseMonitor` (``monitor.last`` is the latest state).
    """

    def __init__(
        self,
        every: int = 10,
        window: int = 4,
        on_collapse: OnCollapse | None = None,
        get_embeddings: EmbeddingGetter | None = None,
        log_prefix: str = "collapse/",
        stop_on_collapse: bool | None = None,
        alarm: AlarmPolicy | None = None,
        patience: int | None = None,
        level: str | None = None,
        **monitor_kwargs: Any,
    ) -> None:
        policy = AlarmPolicy.build(
            alarm,
            on_collapse=resolve_on_collapse(on_collapse, stop_on_collapse),
            patience=patience,
            level=level,
            emit=monitor_kwargs.pop("emit", None),
        )
        self._global_zero = True  # until setup() knows the rank
        self.monitor = CollapseMonitor(
            every=every, window=window, alarm=policy.gated(self._speaks), **monitor_kwargs
        )
        self.get_embeddings = get_embeddings
        self.log_prefix = log_prefix
        self._step: int | None = None  # global step at the last completed optimizer step
        self._micro: list[tuple[Any, Any]] = []  # micro-batches of the step in progress

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Warn only on global rank 0."""
        self._global_zero = bool(trainer.is_global_zero)

    def _speaks(self) -> bool:
        """The alarm's gate: this process is global rank 0."""
        return self._global_zero

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Note the starting step (after a checkpoint restore too)."""
        self._step = int(trainer.global_step)
        self._micro.clear()
        n = int(getattr(trainer, "log_every_n_steps", 0) or 0)
        if n and self.monitor.every % n and getattr(trainer, "loggers", None):
            warnings.warn(
                f"CollapseMonitorCallback(every={self.monitor.every}) is not a multiple of "
                f"Trainer(log_every_n_steps={n}): Lightning's loggers write step metrics only "
                f"at multiples of {n}, so some evaluations will not be logged",
                UserWarning,
                stacklevel=2,
            )

    def _embeddings(self, pl_module: Any, outputs: Any, batch: Any) -> tuple[Any, Any]:
        if self.get_embeddings is not None:
            return self.get_embeddings(pl_module, outputs, batch), None
        if isinstance(outputs, dict) and "embeddings" in outputs:
            return outputs["embeddings"], outputs.get("paired")
        raise InputError(
            "CollapseMonitorCallback: training_step must return a dict with "
            "'embeddings' (B, d), or pass get_embeddings=(pl_module, outputs, batch) -> z"
        )

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Collect this micro-batch; at a completed optimizer step feed the monitor."""
        z, paired = self._embeddings(pl_module, outputs, batch)
        self._micro.append((_detach(z), _detach(paired)))
        step = int(trainer.global_step)
        if step == self._step:
            return  # gradient accumulation: the optimizer step is not complete yet
        self._step = step
        zs, ps = zip(*self._micro, strict=True)
        self._micro.clear()
        z, paired = _cat(zs), (None if any(p is None for p in ps) else _cat(ps))
        state = self.monitor.update(z, step, paired=paired)
        if self.monitor.should_stop:  # the alarm fired with on_collapse="stop"
            trainer.should_stop = True
        if state is not None:
            pl_module.log_dict(flat_metrics(state, self.log_prefix), on_step=True,
                               on_epoch=False, batch_size=int(z.shape[0]))  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """The monitor's state (Lightning stores it in checkpoints)."""
        return self.monitor.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.monitor.load_state_dict(state_dict)


def _detach(z: Any) -> Any:
    return z.detach() if hasattr(z, "detach") else z


def _cat(parts: tuple[Any, ...]) -> Any:
    if len(parts) == 1:
        return parts[0]
    if hasattr(parts[0], "detach"):
        import torch

        return torch.cat(parts)
    import numpy as np

    return np.concatenate(parts)


def _build() -> type:
    try:
        import lightning.pytorch as pl
    except ImportError:
        try:
            import pytorch_lightning as pl  # type: ignore[no-redef]
        except ImportError:
            raise ImportError(_INSTALL_HINT) from None
    return type(
        "CollapseMonitorCallback",
        (LightningHooks, pl.Callback),
        {"__doc__": "Lightning callback running a CollapseMonitor (see LightningHooks).",
         "__module__": __name__},
    )  # fmt: skip


def __getattr__(name: str) -> Any:
    if name == "CollapseMonitorCallback":
        cls = _build()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
