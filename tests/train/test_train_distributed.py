"""`torchrun --nproc_per_node=2 -m collapselab train` equals one process on the same batch.

Two gloo processes each hold half of the global batch; batch norm statistics, NT-Xent
negatives, Barlow / VICReg statistics and the monitor's moments span both halves, and
DDP averages the gradients, so parameters, logged losses and monitor states must equal a
single-process run up to float summation order. The runs use SGD: its update is linear in
the gradient, so a wrong gradient scale (the 1/world_size bug of raw all-reduces) shows
while float reordering (~1e-7 relative) does not; Adam's first steps are sign-like and
turn 1e-8 gradient noise on near-zero coordinates into lr-sized differences. The encoder
is the MLP: convolution kernels block differently for 32 and 64 images, and the 1e-7
differences flip max-pool / ReLU ties, routing some gradient to another pixel (measured:
1e-5 parameter differences in the first convolution after one step, exact elsewhere).
Tolerances: parameters within 1e-5 of each tensor's largest entry (measured: 8e-7 for
SimCLR, 3e-6 for Barlow Twins after 4 steps; a gradient-scale bug gives errors of order
1); logged losses within 1e-4 relative (DINO's teacher temperature 0.04 sharpens a 1e-7
reordering of the batch-norm sums into 4e-5 in the loss).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from collapselab.train.checkpoint import load_checkpoint
from collapselab.train.config import TrainConfig
from collapselab.train.trainer import train


class RetriedRunWarning(UserWarning):
    """A distributed run was retried after the gloo teardown abort (see run_pair)."""


def run_pair(tmp_path: Path, method: str, steps: int) -> tuple[dict, dict, Path, Path]:
    args = ["--method", method, "--batch-size", "64", "--epochs", "1", "--max-steps",
            str(steps), "--threads", "1", "--no-evaluate", "--log-every", "1",
            "--monitor-every", "2", "--monitor-window", "2", "--optimizer", "sgd",
            "--lr", "0.05", "--encoder", "mlp"]  # fmt: skip
    ddp_dir, one_dir = tmp_path / "ddp", tmp_path / "one"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first_stderr = ""
    for attempt in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             "-m", "collapselab", "train", *args, "--out", str(ddp_dir / str(attempt)), "--json"],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip
        # Seen once in CI (then 0 of 8 reruns): a rank aborts in the C++ runtime as gloo tears
        # down ("terminate called without an active exception", SIGABRT). Only that
        # signature is retried, once, from scratch; the retry must pass in full, and the
        # retry is reported (a warning in the summary of `pytest -rA` / `-W error` fails it).
        if attempt or proc.returncode == 0 or "without an active exception" not in proc.stderr:
            break
        first_stderr = proc.stderr
        warnings.warn(
            f"torchrun train ({method}) aborted in gloo's teardown (exit {proc.returncode}); "
            f"retrying once. Its stderr ends:\n{first_stderr[-1500:]}",
            RetriedRunWarning,
            stacklevel=1,
        )
    retried = f"\n--- first attempt (retried), stderr ends:\n{first_stderr[-1500:]}"
    assert proc.returncode == 0, proc.stderr[-3000:] + (retried if first_stderr else "")
    ddp_dir = ddp_dir / str(attempt)
    summary = json.loads(proc.stdout)  # rank 0 alone prints, and only the JSON
    assert summary["world_size"] == 2
    single = train(TrainConfig(method=method, batch_size=64, epochs=1, max_steps=steps,
                               threads=1, evaluate=False, log_every=1, monitor_every=2,
                               monitor_window=2, optimizer="sgd", lr=0.05, encoder="mlp",
                               out=str(one_dir))).to_dict()  # fmt: skip
    assert single["world_size"] == 1
    return summary, single, ddp_dir, one_dir


def compare(ddp_dir: Path, one_dir: Path) -> None:
    a, b = load_checkpoint(ddp_dir / "checkpoint.pt"), load_checkpoint(one_dir / "checkpoint.pt")
    assert a["step"] == b["step"]
    for key, ta in a["method"].items():
        tb = b["method"][key]
        if ta.is_floating_point():
            scale = float(tb.abs().max()) or 1.0
            assert float((ta - tb).abs().max()) <= 1e-5 * scale, key
        else:
            assert torch.equal(ta, tb), key
    la = [json.loads(x) for x in (ddp_dir / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (one_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["event"] for r in la] == [r["event"] for r in lb]
    for ra, rb in zip(la, lb, strict=True):
        if ra["event"] == "step":
            assert ra["loss"] == pytest.approx(rb["loss"], rel=1e-4)
        else:  # monitor states from all-reduced moments of both shards
            assert ra["verdict"] == rb["verdict"]
            # global rows: the 64 rows of every batch in the window, from both ranks
            assert ra["rows"] == rb["rows"] == 64 * min(ra["step"] + 1, 2)
            assert ra["effective_rank"] == pytest.approx(rb["effective_rank"], rel=1e-5)


def test_two_processes_match_one_simclr(tmp_path: Path) -> None:
    summary, single, ddp_dir, one_dir = run_pair(tmp_path, "simclr", steps=3)
    compare(ddp_dir, one_dir)
    assert summary["steps"] == single["steps"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["moco", "byol", "barlow", "vicreg", "dino"])
def test_two_processes_match_one_other_methods(tmp_path: Path, method: str) -> None:
    _, _, ddp_dir, one_dir = run_pair(tmp_path, method, steps=4)
    compare(ddp_dir, one_dir)
