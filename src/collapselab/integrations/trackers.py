"""Experiment trackers as monitor sinks: TensorBoard, Weights & Biases, MLflow.

Each sink is a callable ``(state: MonitorState) -> None`` over the monitor's one typed
record: it logs ``state.metrics`` (``Measurement.scalars()``, among them ``level``: 0
healthy, 1 warning, 2 dimensional, 3 complete) as scalars at ``state.step``, and the
spectrum (eigenvalue shares ``lambda_i / sum(lambda)`` of the window, descending) as a
histogram (TensorBoard, W&B) or a JSON artifact (MLflow).
Hang one on any monitor, or pass it to a training callback::

    from collapselab import CollapseMonitor
    from collapselab.integrations.trackers import TensorBoardSink

    monitor = CollapseMonitor(every=10, on_state=TensorBoardSink("runs/exp1"))
    CollapseMonitorCallback(..., on_state=TensorBoardSink(tb_logger.experiment))

Each tracker package is imported when its sink is built. Sinks write on global rank 0
only (under torch.distributed every rank holds the same all-reduced state).
"""

from __future__ import annotations

import os
from typing import Any

from collapselab.errors import ConfigError
from collapselab.integrations._record import flat_metrics, is_rank_zero, spectrum_shares
from collapselab.monitor import MonitorState


class TensorBoardSink:
    """Scalars and a spectrum histogram to TensorBoard.

    Args:
        writer: a ``torch.utils.tensorboard.SummaryWriter`` (or anything with
            ``add_scalar`` / ``add_histogram``, e.g. Lightning's
            ``TensorBoardLogger.experiment``), or a log directory to open one in.
        prefix: tag prefix.
        spectrum: also log the spectrum shares as the histogram ``<prefix>spectrum``.
    """

    def __init__(
        self, writer: Any, prefix: str = "collapse/", spectrum: bool = True
    ) -> None:
        if isinstance(writer, str | os.PathLike):
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError('TensorBoardSink needs tensorboard: pip install tensorboard'
                                  ) from None  # fmt: skip
            writer = SummaryWriter(os.fspath(writer))
        self.writer = writer
        self.prefix = prefix
        self.spectrum = spectrum

    def __call__(self, state: MonitorState) -> None:
        if not is_rank_zero():
            return
        for tag, value in flat_metrics(state, self.prefix).items():
            self.writer.add_scalar(tag, value, state.step)
        if self.spectrum:
            self.writer.add_histogram(f"{self.prefix}spectrum", spectrum_shares(state),
                                      state.step)  # fmt: skip
        if hasattr(self.writer, "flush"):
            self.writer.flush()

    def close(self) -> None:
        if hasattr(self.writer, "close"):
            self.writer.close()


class WandbSink:
    """Scalars and a spectrum histogram to a Weights & Biases run.

    The monitor's step is logged as ``<prefix>step`` and declared the step metric of
    ``<prefix>*`` (W&B's own step stays the trainer's), so the charts' x axis is the
    training step of each evaluation.

    Args:
        run: a ``wandb`` run; None: the active run (``wandb.run``) at each call.
        prefix: key prefix.
        spectrum: also log ``<prefix>spectrum`` as a ``wandb.Histogram``.
    """

    def __init__(self, run: Any = None, prefix: str = "collapse/", spectrum: bool = True) -> None:
        try:
            import wandb
        except ImportError:
            raise ConfigError("WandbSink needs wandb: pip install wandb") from None
        self._wandb = wandb
        self.run = run
        self.prefix = prefix
        self.spectrum = spectrum
        self._defined: set[int] = set()

    def __call__(self, state: MonitorState) -> None:
        if not is_rank_zero():
            return
        run = self.run if self.run is not None else self._wandb.run
        if run is None:
            raise ConfigError("WandbSink: no wandb run; call wandb.init() first or pass run=")
        if id(run) not in self._defined:
            run.define_metric(f"{self.prefix}step")
            run.define_metric(f"{self.prefix}*", step_metric=f"{self.prefix}step")
            self._defined.add(id(run))
        data: dict[str, Any] = {f"{self.prefix}step": state.step,
                                **flat_metrics(state, self.prefix)}  # fmt: skip
        if self.spectrum:
            data[f"{self.prefix}spectrum"] = self._wandb.Histogram(
                spectrum_shares(state).tolist()
            )
        run.log(data)


class MLflowSink:
    """Scalars (metric history by step) and the spectrum (a JSON artifact) to MLflow.

    Args:
        run_id: the run to log to; None: the active run (``mlflow.active_run()``), or a
            new one started when there is none.
        tracking_uri: for the client; None: MLflow's current tracking URI.
        prefix: metric-name prefix.
        spectrum: also log ``<prefix>spectrum/step_<step>.json`` (shares and eigenvalues).
    """

    def __init__(
        self,
        run_id: str | None = None,
        tracking_uri: str | None = None,
        prefix: str = "collapse/",
        spectrum: bool = True,
    ) -> None:
        try:
            import mlflow
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError("MLflowSink needs mlflow: pip install mlflow") from None
        self._mlflow = mlflow
        self.client = MlflowClient(tracking_uri)
        self.run_id = run_id
        self.prefix = prefix
        self.spectrum = spectrum

    def _run_id(self) -> str:
        if self.run_id is None:
            active = self._mlflow.active_run() or self._mlflow.start_run()
            self.run_id = str(active.info.run_id)
        return self.run_id

    def __call__(self, state: MonitorState) -> None:
        if not is_rank_zero():
            return
        import time

        from mlflow.entities import Metric

        run_id, now = self._run_id(), int(time.time() * 1000)
        metrics = [Metric(k, v, now, state.step)
                   for k, v in flat_metrics(state, self.prefix).items()]  # fmt: skip
        self.client.log_batch(run_id, metrics=metrics)
        if self.spectrum:
            record = {"step": state.step, "shares": spectrum_shares(state).tolist(),
                      "eigenvalues": [float(v) for v in state.spectrum]}  # fmt: skip
            self.client.log_dict(run_id, record,
                                 f"{self.prefix}spectrum/step_{state.step:08d}.json")  # fmt: skip


__all__ = ["MLflowSink", "TensorBoardSink", "WandbSink"]
