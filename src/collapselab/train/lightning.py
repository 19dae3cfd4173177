"""PyTorch Lightning callback built on :class:`~collapselab.monitor.CollapseMonitor`.

Lightning is an optional extra (``pip install "collapselab[lightning]"``); it is imported
only when :data:`CollapseMonitorCallback` is first accessed::

    from collapselab.train.lightning import CollapseMonitorCallback
    trainer = lightning.Trainer(callbacks=[CollapseMonitorCallback(every=10)])

The module's ``training_step`` returns a dict with the embeddings to watch under
``"embeddings"`` (and optionally the second view under ``"paired"``), or the callback is
given ``get_embeddings(pl_module, outputs, batch)``. Each evaluation logs
``collapse/<metric>`` through ``pl_module.log_dict``; ``on_collapse="stop"`` sets
``trainer.should_stop`` so Lightning ends the run cleanly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collapselab.errors import InputError
from collapselab.monitor import CollapseMonitor, OnCollapse

EmbeddingGetter = Callable[[Any, Any, Any], Any]

_INSTALL_HINT = (
    'CollapseMonitorCallback needs PyTorch Lightning: pip install "collapselab[lightning]"'
)


class LightningHooks:
    """The callback's logic, independent of Lightning (the Callback subclass mixes it in).

    Args:
        every: monitor evaluation interval in optimizer steps (``trainer.global_step``).
        window: batches merged per evaluation.
        on_collapse: ``"warn"``, ``"stop"`` (``trainer.should_stop = True``), ``"raise"``,
            ``"ignore"`` or a callable receiving the :class:`MonitorState`.
        get_embeddings: ``(pl_module, outputs, batch) -> (B, d)`` tensor; default reads
            ``outputs["embeddings"]``.
        log_prefix: prefix of the logged metric names.
        **monitor_kwargs: further :class:`CollapseMonitor` arguments.
    """

    def __init__(
        self,
        every: int = 10,
        window: int = 4,
        on_collapse: OnCollapse = "warn",
        get_embeddings: EmbeddingGetter | None = None,
        log_prefix: str = "collapse/",
        **monitor_kwargs: Any,
    ) -> None:
        self.monitor = CollapseMonitor(
            every=every, window=window, on_collapse=on_collapse, **monitor_kwargs
        )
        self.get_embeddings = get_embeddings
        self.log_prefix = log_prefix

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Feed this batch's embeddings to the monitor; log the state at evaluations."""
        if self.get_embeddings is not None:
            z, paired = self.get_embeddings(pl_module, outputs, batch), None
        elif isinstance(outputs, dict) and "embeddings" in outputs:
            z, paired = outputs["embeddings"], outputs.get("paired")
        else:
            raise InputError(
                "CollapseMonitorCallback: training_step must return a dict with "
                "'embeddings' (B, d), or pass get_embeddings=(pl_module, outputs, batch) -> z"
            )
        state = self.monitor.update(z, int(trainer.global_step), paired=paired)
        if self.monitor.should_stop:  # the AlarmPolicy fired with on_collapse="stop"
            trainer.should_stop = True
        if state is None:
            return
        logged = {f"{self.log_prefix}{k}": float(v) for k, v in state.metrics.items()
                  if v is not None}  # fmt: skip
        logged[f"{self.log_prefix}collapsed"] = float(state.collapsed)
        logged[f"{self.log_prefix}warning"] = float(state.warning is not None)
        pl_module.log_dict(logged)

    def state_dict(self) -> dict[str, Any]:
        """The monitor's state (Lightning stores it in checkpoints)."""
        return self.monitor.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.monitor.load_state_dict(state_dict)


def _build() -> type:
    try:
        import lightning.pytorch as pl
    except ImportError:
        try:
            import pytorch_lightning as pl
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
