"""``TrainConfig.on_collapse``: warn, stop, raise, ignore, as for every monitor.

A tiny collapsing run: the variance-only objective on digits (batch 64, an evaluation
every 2 steps, patience 1) raises its alarm after about a dozen steps.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from collapselab.cli import main
from collapselab.errors import CollapseDetected, ConfigError
from collapselab.monitor import AlarmPolicy
from collapselab.train.checkpoint import load_checkpoint
from collapselab.train.config import TrainConfig, build_config, config_from_json, config_json
from collapselab.train.trainer import train

BASE = dict(method="variance", data="digits", batch_size=64, epochs=1, threads=1,
            monitor_every=2, monitor_window=1, monitor_patience=1, log_every=5,
            evaluate=False, max_steps=16)  # fmt: skip


def run(tmp_path: Path | None = None, **kw: object) -> tuple[dict, list[int], int]:
    """(summary, steps told to train()'s on_collapse, collapse warnings issued)."""
    told: list[int] = []
    tell = kw.pop("tell", True)
    cfg = TrainConfig(**{**BASE, **kw}, out=None if tmp_path is None else str(tmp_path))  # type: ignore[arg-type]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = train(cfg, on_collapse=(lambda st: told.append(st.step)) if tell else None)
    n = sum("collapse alarm" in str(w.message) for w in caught)
    return s.to_dict(), told, n


@pytest.fixture(scope="module")
def alarm_step() -> int:
    """The step whose evaluation fires the alarm, from a run that ignores it."""
    s, told, warned = run(on_collapse="ignore")
    assert s["steps"] == BASE["max_steps"] and told == [] and warned == 0
    assert s["first_collapse_step"] is not None and s["first_collapse_step"] < 14
    return int(s["first_collapse_step"])


def test_on_collapse_raise_raises_collapse_detected(alarm_step: int) -> None:
    with pytest.raises(CollapseDetected, match=f"collapse alarm at step {alarm_step}"):
        train(TrainConfig(on_collapse="raise", **BASE))  # type: ignore[arg-type]


def test_on_collapse_stop_ends_the_run_cleanly_and_stays_stopped(
    tmp_path: Path, alarm_step: int
) -> None:
    s, told, warned = run(tmp_path, on_collapse="stop")
    assert s["steps"] == alarm_step + 1 and s["first_collapse_step"] == alarm_step
    assert told == [alarm_step] and warned == 0  # told through the caller's callback
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == alarm_step + 1
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in recs if r["event"] == "step") == alarm_step  # logged
    # resuming a stopped run does not train on
    again = train(TrainConfig(on_collapse="stop", resume=True, out=str(tmp_path), **BASE))  # type: ignore[arg-type]
    assert again.steps == alarm_step + 1


def test_on_collapse_warn_warns_unless_the_caller_tells(alarm_step: int) -> None:
    s, told, warned = run(tell=False, max_steps=alarm_step + 1)  # the default: "warn"
    assert s["config"]["on_collapse"] == "warn" and warned == 1
    s, told, warned = run(max_steps=alarm_step + 1)
    assert told == [alarm_step] and warned == 0 and s["steps"] == alarm_step + 1


def test_cli_on_collapse_raise_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in BASE.items() if k != "evaluate"]
    code = main(["train", *flags, "--no-evaluate", "--on-collapse", "raise", "--json"])
    err = capsys.readouterr().err
    assert code == 1 and "collapse alarm at step" in err and err.count("\n") == 1
    assert main(["train", "--on-collapse", "halt"]) == 2


def test_config_on_collapse_defaults_validation_and_the_old_key(tmp_path: Path) -> None:
    cfg = TrainConfig().resolved()
    policy = AlarmPolicy()
    assert (cfg.on_collapse, cfg.monitor_patience) == (policy.on_collapse, policy.patience)
    with pytest.raises(ConfigError, match="--on-collapse 'halt'"):
        TrainConfig(on_collapse="halt").resolved()
    toml = tmp_path / "c.toml"
    toml.write_text("stop_on_collapse = true\n")
    with pytest.warns(DeprecationWarning, match="stop_on_collapse is deprecated"):
        assert build_config(toml).on_collapse == "raise"  # what it meant in TrainConfig
    # a checkpoint written before the rename still resumes (its config reads back)
    old = json.loads(config_json(cfg))
    del old["on_collapse"]
    old["stop_on_collapse"] = False
    assert config_from_json(json.dumps(old)) == cfg
    old["stop_on_collapse"] = True
    assert config_from_json(json.dumps(old)).on_collapse == "raise"

