"""The training loop end to end: summary, logs, bit-for-bit resume, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from collapselab.cli import main
from collapselab.data import load_digits
from collapselab.diagnose import measure
from collapselab.errors import ConfigError, NonFiniteLossError
from collapselab.methods import build_method
from collapselab.metrics import Moments
from collapselab.models import build_encoder
from collapselab.train.checkpoint import load_checkpoint
from collapselab.train.config import TrainConfig
from collapselab.train.trainer import flush_denormal_enabled, train

TINY = dict(data="digits", batch_size=64, epochs=1, threads=1, monitor_every=4, log_every=1)
REQUIRED = {"method", "data", "steps", "knn_accuracy", "linear_accuracy",
            "knn_accuracy_5_per_class", "effective_rank", "verdict", "seconds"}  # fmt: skip


def test_tiny_run_writes_summary_metrics_and_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    summary = train(TrainConfig(method="simclr", out=str(out), max_steps=6, **TINY))  # type: ignore[arg-type]
    rep = summary.representation
    assert summary.steps == 6 and rep is not None and rep.baseline is not None
    # the verdict and the metrics are those of the test-set representation of the trained
    # encoder (not its projector), judged against the untrained encoder's: redone by hand
    data = load_digits()
    torch.manual_seed(0)  # the run's seed: the untrained encoder
    by_hand = build_method("simclr", build_encoder("cnn", data.input_shape)).eval()
    start = by_hand.embed(data.x_test).numpy()
    by_hand.load_state_dict(load_checkpoint(out / "checkpoint.pt")["method"])
    expected = measure(Moments.of(by_hand.eval().embed(data.x_test).numpy()),
                       baseline=Moments.of(start))  # fmt: skip
    assert rep.metrics.effective_rank == pytest.approx(expected.metrics.effective_rank, rel=1e-4)
    assert rep.metrics.relative_variance == pytest.approx(
        expected.metrics.relative_variance, rel=1e-4)  # fmt: skip
    assert (rep.verdict, rep.baseline.verdict) == (expected.verdict, expected.baseline.verdict)
    # What 6 SimCLR steps must give: the ReLU features of a (nearly) untrained CNN are all
    # >= 0 and share one large mean, so the absolute verdict is already `complete` at the
    # start (relative variance ~0.01, line 0.05); against the untrained encoder the spread
    # has not shrunk (ratio > 1), so the relative verdict is healthy and no warning is due.
    assert rep.verdict == "complete" and rep.metrics.relative_variance < 0.03
    assert rep.baseline.verdict == "healthy" and rep.warning is None
    assert rep.baseline.ratios["relative_variance"] > 1.0
    # even 6 steps of SimCLR learn: the kNN accuracy is far above chance (10 classes)
    assert summary.evaluation is not None and 0.6 < summary.evaluation.knn_accuracy <= 1.0
    assert summary.first_collapse_step is None  # the monitor raised no alarm
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
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_train_restores_threads_and_denormal_flushing(tmp_path: Path) -> None:
    # train() sets one torch thread, flush-denormal and BLAS limits for the run; a caller's
    # settings must come back, whether the run ends normally or with an error
    from threadpoolctl import threadpool_info

    blas = [p["num_threads"] for p in threadpool_info()]
    threads = torch.get_num_threads()
    want = 2  # != the run's threads=1 (more threads than cores is allowed)
    torch.set_num_threads(want)
    try:
        assert not flush_denormal_enabled()
        train(TrainConfig(method="simclr", evaluate=False, max_steps=2, **TINY))  # type: ignore[arg-type]
        assert torch.get_num_threads() == want and not flush_denormal_enabled()
        with pytest.raises(NonFiniteLossError):
            train(TrainConfig(method="simclr", evaluate=False,
                              augment_options={"brightness": float("nan")}, **TINY))  # type: ignore[arg-type]  # fmt: skip
        assert torch.get_num_threads() == want and not flush_denormal_enabled()
        torch.set_flush_denormal(True)  # a caller who flushes keeps flushing
        train(TrainConfig(method="simclr", evaluate=False, max_steps=1, **TINY))  # type: ignore[arg-type]
        assert flush_denormal_enabled()
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
    assert [p["num_threads"] for p in threadpool_info()] == blas  # BLAS limits lifted
