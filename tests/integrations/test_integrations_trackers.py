"""TensorBoard, W&B (offline) and MLflow (file store) sinks, each read back from disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapselab import CollapseMonitor
from collapselab.monitor import MonitorState


def run_monitor(sink: object, steps: int = 6) -> list[MonitorState]:
    """A monitor with ``sink`` hung on it: healthy batches, then collapsed ones."""
    rng = np.random.default_rng(0)
    states: list[MonitorState] = []
    mon = CollapseMonitor(every=2, window=1, on_collapse="ignore", on_state=[sink, states.append])
    for step in range(steps + 1):
        z = rng.normal(size=(64, 16))
        if step >= 4:  # every row on one line through the origin: dimensional collapse
            z = np.outer(z[:, 0], np.ones(16)) + 1e-3 * z
        mon.update(z, step)
    assert [s.step for s in states] == [0, 2, 4, 6] and states[-1].collapsed
    return states


def test_adapters_import_their_frameworks_lazily() -> None:
    code = ("import sys, collapselab.integrations.lightning, collapselab.integrations.trackers; "
            "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'wandb', 'mlflow', "
            "'tensorboard') if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_monitor_calls_its_on_state_hooks_before_the_alarm() -> None:
    from collapselab.errors import CollapseDetected

    seen: list[int] = []
    mon = CollapseMonitor(every=1, window=1, on_collapse="raise", patience=1,
                          on_state=lambda s: seen.append(s.step))  # fmt: skip
    mon.update(np.random.default_rng(0).normal(size=(32, 8)), 0)
    with pytest.raises(CollapseDetected):
        mon.update(np.ones((32, 8)) + 1e-6 * np.arange(8), 1)
    assert seen == [0, 1]  # the state that raised reached the hook first


def test_tensorboard_scalars_and_spectrum_histogram(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="needs tensorboard (collapselab[dev])")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from collapselab.integrations.trackers import TensorBoardSink

    sink = TensorBoardSink(tmp_path)
    states = run_monitor(sink)
    sink.close()
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    rank = acc.Scalars("collapse/effective_rank")
    assert [e.step for e in rank] == [0, 2, 4, 6]
    for e, s in zip(rank, states, strict=True):
        assert e.value == pytest.approx(s.metrics["effective_rank"], rel=1e-6)  # float32
    assert [e.value for e in acc.Scalars("collapse/level")] == [s.level for s in states]
    hist = acc.Histograms("collapse/spectrum")
    assert [h.step for h in hist] == [0, 2, 4, 6]
    for h in hist:
        assert h.histogram_value.num == 16  # d eigenvalues
        assert h.histogram_value.sum == pytest.approx(1.0, rel=1e-6)  # shares sum to 1
    assert hist[-1].histogram_value.max > 0.5 > hist[0].histogram_value.max  # mass on top


def test_wandb_offline_run_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb", reason="needs wandb (collapselab[dev])")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    from collapselab.integrations.trackers import WandbSink

    run = wandb.init(project="collapselab-test", dir=str(tmp_path))
    try:
        states = run_monitor(WandbSink())  # the active run
        last = states[-1]
        assert run.summary["collapse/step"] == 6
        assert run.summary["collapse/effective_rank"] == pytest.approx(
            last.metrics["effective_rank"])
        assert run.summary["collapse/level"] == float(last.level) >= 2.0
    finally:
        run.finish()
        wandb.teardown()  # waits for the wandb service to write out the offline run
    # the offline run file (protobuf records: history keys and their JSON values)
    (log,) = Path(tmp_path).glob("wandb/offline-run-*/run-*.wandb")
    data = log.read_bytes()
    for s in states:
        assert json.dumps(s.metrics["effective_rank"]).encode() in data
    for key in ("collapse/step", "collapse/level", "collapse/effective_rank"):
        assert key.encode() in data
    assert b'collapse/spectrum' in data and b'"histogram"' in data


def test_mlflow_file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 deprecates file stores
    mlflow = pytest.importorskip("mlflow", reason="needs mlflow (collapselab[dev])")
    from mlflow.tracking import MlflowClient

    from collapselab.integrations.trackers import MLflowSink

    uri = "file:" + os.fspath(tmp_path / "mlruns")
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run() as run:
            states = run_monitor(MLflowSink())
        client = MlflowClient(uri)
        history = client.get_metric_history(run.info.run_id, "collapse/effective_rank")
        assert sorted(m.step for m in history) == [0, 2, 4, 6]
        by_step = {m.step: m.value for m in history}
        for s in states:
            assert by_step[s.step] == pytest.approx(s.metrics["effective_rank"])
        levels = client.get_metric_history(run.info.run_id, "collapse/level")
        assert max(m.value for m in levels) == float(states[-1].level) >= 2.0
        path = client.download_artifacts(run.info.run_id,
                                         "collapse/spectrum/step_00000006.json", str(tmp_path))
        record = json.loads(Path(path).read_text())
        assert record["step"] == 6 and len(record["eigenvalues"]) == 16
        assert sum(record["shares"]) == pytest.approx(1.0)
    finally:
        mlflow.set_tracking_uri(None)
