"""The Lightning CollapseMonitorCallback under a real ``lightning.Trainer`` on CPU."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pl = pytest.importorskip("lightning.pytorch", reason="needs lightning (collapselab[dev])")

from lightning_module import Recorder, Tiny, loader, trainer  # noqa: E402

from collapselab.diagnose import measure_array  # noqa: E402
from collapselab.integrations.lightning import CollapseMonitorCallback  # noqa: E402

HERE = Path(__file__).parent


def test_is_a_lightning_callback() -> None:
    assert isinstance(CollapseMonitorCallback(every=5), pl.Callback)


def test_gradient_accumulation_one_evaluation_per_optimizer_step() -> None:
    """4 micro-batches of 8 per optimizer step: evaluations at optimizer steps 2, 4, 6,
    each over the step's whole batch (32 rows), never once per micro-batch."""
    torch.manual_seed(0)
    rec = Recorder()
    cb = CollapseMonitorCallback(every=2, window=1, on_collapse="ignore", on_state=rec)
    t = trainer(max_steps=6, accumulate_grad_batches=4, callbacks=[cb])
    t.fit(Tiny(), loader(n=64, batch_size=8))
    assert t.global_step == 6
    assert rec.steps == [2, 4, 6]
    assert [s.metrics["rows"] for s in rec.states] == [32.0, 32.0, 32.0]


def test_logs_through_log_dict_to_every_logger(tmp_path: Path) -> None:
    """A CSVLogger (any Lightning logger) receives each evaluation's scalars."""
    from lightning.pytorch.loggers import CSVLogger

    torch.manual_seed(0)
    rec = Recorder()
    cb = CollapseMonitorCallback(every=2, window=2, on_collapse="ignore", on_state=rec)
    logger = CSVLogger(tmp_path, name="run", version=0)
    t = trainer(max_steps=8, callbacks=[cb], logger=logger, log_every_n_steps=2)
    t.fit(Tiny(), loader())
    logger.finalize("success")
    rows = list(csv.DictReader(open(Path(logger.log_dir) / "metrics.csv")))
    logged = [r for r in rows if r.get("collapse/effective_rank")]
    assert len(logged) == len(rec.states) == 4  # steps 2, 4, 6, 8
    for row, state in zip(logged, rec.states, strict=True):
        assert float(row["collapse/effective_rank"]) == pytest.approx(
            state.metrics["effective_rank"], rel=1e-6)  # CSV keeps ~7 digits
        assert float(row["collapse/level"]) == state.level
        assert float(row["collapse/rows"]) == 32.0  # window 2 x batch 16


def test_every_not_a_multiple_of_log_every_n_steps_warns(tmp_path: Path) -> None:
    from lightning.pytorch.loggers import CSVLogger

    cb = CollapseMonitorCallback(every=3, window=1, on_collapse="ignore")
    t = trainer(max_steps=1, callbacks=[cb], log_every_n_steps=2, logger=CSVLogger(tmp_path))
    with pytest.warns(UserWarning, match="log_every_n_steps=2"):
        t.fit(Tiny(), loader())


def test_on_collapse_stop_ends_the_fit_early() -> None:
    torch.manual_seed(0)
    cb = CollapseMonitorCallback(every=5, window=1, on_collapse="stop", patience=1)
    t = trainer(max_steps=400, callbacks=[cb])
    t.fit(Tiny("collapse", lr=0.05), loader())
    first = cb.monitor.first_collapse_step
    assert first is not None and t.global_step == first < 400
    assert cb.monitor.should_stop and cb.monitor.last is not None
    assert cb.monitor.last.level >= 1


def test_a_healthy_run_is_not_stopped() -> None:
    torch.manual_seed(0)
    cb = CollapseMonitorCallback(every=5, window=1, on_collapse="stop", patience=1)
    t = trainer(max_steps=40, callbacks=[cb])
    t.fit(Tiny("healthy"), loader())
    assert t.global_step == 40 and cb.monitor.first_collapse_step is None


def test_deprecated_stop_on_collapse_maps_to_on_collapse_stop() -> None:
    with pytest.warns(DeprecationWarning, match="on_collapse='stop'"):
        cb = CollapseMonitorCallback(every=5, stop_on_collapse=True)
    assert cb.monitor.alarm.on_collapse == "stop"


def test_monitor_state_saved_in_and_restored_from_a_checkpoint(tmp_path: Path) -> None:
    """6 steps, checkpoint, resume to 12 with a fresh callback == 12 steps in one go:
    the baseline, windows, trend history and alarm streak travel in the checkpoint."""

    from lightning.pytorch.callbacks import ModelCheckpoint

    def run(tag: str, max_steps: int, ckpt: str | None = None) -> Recorder:
        torch.manual_seed(0)
        rec = Recorder()
        cb = CollapseMonitorCallback(every=2, window=2, on_collapse="ignore", on_state=rec)
        save = ModelCheckpoint(tmp_path / tag, every_n_train_steps=6,
                               save_top_k=-1, filename="{step}")  # fmt: skip
        t = trainer(max_steps=max_steps, callbacks=[cb, save], enable_checkpointing=True)
        t.fit(Tiny("collapse", lr=0.02), loader(n=32, batch_size=16), ckpt_path=ckpt)
        return rec

    whole = run("whole", 12)
    first = run("first", 6)
    path = str(tmp_path / "first" / "step=6.ckpt")
    saved = torch.load(path, weights_only=True)["callbacks"]
    assert any("calls" in v for v in saved.values())  # the monitor's state is in the file
    resumed = run("resumed", 12, ckpt=path)
    assert resumed.steps == [8, 10, 12] and first.steps == [2, 4, 6]
    for got, want in zip(resumed.states, whole.states[3:], strict=True):
        for key in ("effective_rank", "relative_variance", "relative_variance_vs_baseline"):
            assert got.metrics[key] == pytest.approx(want.metrics[key], rel=1e-6), key
        for key, slope in want.trends.items():
            if slope is None:  # e.g. a metric undefined on collapsed rows: None both ways
                assert got.trends[key] is None, key
            else:
                assert got.trends[key] == pytest.approx(slope, rel=1e-6, abs=1e-12), key


@pytest.mark.skipif(sys.platform == "win32", reason="gloo DDP on Linux / macOS")
def test_ddp_two_processes_judge_the_global_batch(tmp_path: Path) -> None:
    """strategy="ddp", 2 CPU processes (gloo): both ranks' monitors give the verdict of
    the concatenated global batch, and both stop at the same step."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(HERE), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    env.pop("MASTER_PORT", None)
    proc = subprocess.run([sys.executable, str(HERE / "ddp_lightning.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    data = [np.load(tmp_path / f"rank{r}.npz") for r in (0, 1)]
    assert ranks[0]["steps"] == ranks[1]["steps"] == [2, 4]
    for i, step in enumerate(ranks[0]["steps"]):
        z = np.concatenate([d[f"step{step}"] for d in data])  # (2 x 16, D): global batch
        want = measure_array(z).metrics
        for r in ranks:
            assert r["rows"][i] == 32
            assert r["effective_rank"][i] == pytest.approx(want.effective_rank, rel=1e-6)
            assert r["relative_variance"][i] == pytest.approx(want.relative_variance, rel=1e-6)
    assert ranks[0]["global_step"] == ranks[1]["global_step"]

