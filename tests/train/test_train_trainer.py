"""The training loop end to end: summary, logs, bit-for-bit resume, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from collapselab.cli import main
from collapselab.errors import ConfigError, NonFiniteLossError
from collapselab.train.checkpoint import load_checkpoint
from collapselab.train.config import TrainConfig
from collapselab.train.trainer import train

TINY = dict(data="digits", batch_size=64, epochs=1, threads=1, monitor_every=4, log_every=1)
REQUIRED = {"method", "data", "steps", "knn_accuracy", "linear_accuracy",
            "knn_accuracy_5_per_class", "effective_rank", "verdict", "seconds"}  # fmt: skip


def test_tiny_run_writes_summary_metrics_and_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(TrainConfig(method="simclr", out=str(out), max_steps=6, **TINY))  # type: ignore[arg-type]
    assert summary.steps == 6 and summary.representation is not None
    assert summary.evaluation is not None and 0.0 <= summary.evaluation.knn_accuracy <= 1.0
    # the representation is measured against the untrained encoder's (the run's start)
    assert summary.representation.baseline is not None
    assert summary.representation.metrics.effective_rank >= 1.0
    s = json.loads((out / "summary.json").read_text())
    assert REQUIRED <= set(s) and s["steps"] == 6 and s == json.loads(json.dumps(
        summary.to_dict(), default=str))
    assert s["verdict"] == summary.representation.verdict and "severity" in s
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in recs if r["event"] == "step"]
    assert steps == list(range(6))
    monitor = [r for r in recs if r["event"] == "monitor"]
    assert [r["step"] for r in monitor] == [0, 4]
    assert {"effective_rank", "std_of_l2_normalized", "verdict", "trends"} <= set(monitor[0])
    ck = load_checkpoint(out / "checkpoint.pt")
    assert ck["step"] == 6


@pytest.mark.parametrize("method", ["simclr", "moco"])  # moco: queue + EMA teacher state
def test_resume_continues_bit_for_bit(tmp_path: Path, method: str) -> None:
    base = dict(method=method, evaluate=False, checkpoint_every=4, **TINY)
    full = tmp_path / "full"
    train(TrainConfig(out=str(full), **base))  # type: ignore[arg-type]
    cut = tmp_path / "cut"
    train(TrainConfig(out=str(cut), max_steps=8, **base))  # type: ignore[arg-type]  # "killed"
    train(TrainConfig(out=str(cut), resume=True, **base))  # type: ignore[arg-type]
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(cut / "checkpoint.pt")
    assert a["step"] == b["step"] == 1347 // 64
    for key, ta in a["method"].items():
        assert torch.equal(ta, b["method"][key]), key
    la = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (cut / "metrics.jsonl").read_text().splitlines()]
    assert la == lb  # every logged loss and monitor state identical


def test_resume_refuses_changed_settings(tmp_path: Path) -> None:
    base = dict(method="simclr", evaluate=False, out=str(tmp_path), **TINY)
    train(TrainConfig(max_steps=2, **base))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"settings differ.*seed=1 \(was 0\)"):
        train(TrainConfig(resume=True, **{**base, "seed": 1}))  # type: ignore[arg-type]


def test_non_finite_loss_stops_with_the_step(tmp_path: Path) -> None:
    cfg = TrainConfig(method="simclr", evaluate=False, augment_options={"brightness": float("nan")},
                      **TINY)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(NonFiniteLossError, match=r"step 0: loss is nan \(simclr\)"):
        train(cfg)


def test_cli_json_prints_only_the_summary(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:  # fmt: skip
    cfg = tmp_path / "c.toml"
    cfg.write_text("batch_size = 64\nthreads = 1\n[method_options]\nproj_dim = 64\n")
    code = main(["train", "--method", "byol", "--epochs", "1", "--max-steps", "3",
                 "--config", str(cfg), "-o", "momentum=0.9", "--json"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    summary = json.loads(captured.out)  # the whole stdout is one JSON object
    assert REQUIRED <= set(summary)
    assert summary["method"] == "byol" and summary["steps"] == 3
    assert summary["config"]["method_options"] == {"proj_dim": 64, "momentum": 0.9}


def test_cli_user_errors_are_one_line(capsys: pytest.CaptureFixture[str],
                                      tmp_path: Path) -> None:  # fmt: skip
    code = main(["train", "--data", "fashion-mnist", "--data-root", str(tmp_path), "--json"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "apt-get install dataset-fashion-mnist" in err
    assert main(["train", "--method", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
