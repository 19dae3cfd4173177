"""What a person sees in a terminal, seen as they see it: commands run in a real tmux pane
of a fixed width, the screen captured with ``capture-pane``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

WIDTH = 72


def _screen(command: str, tmp_path: Path, timeout: float = 240) -> str:
    """Run ``command`` in a detached tmux pane WIDTH columns wide; the whole screen and
    scroll-back once it has finished."""
    session = f"cl-{uuid.uuid4().hex[:8]}"
    done = tmp_path / f"{session}.done"
    # stty: the pane can start at tmux's default size before -x applies (seen under pytest)
    script = f"stty cols {WIDTH} rows 50; cd {tmp_path} && {command}; echo EXIT=$? > {done}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(WIDTH), "-y", "50",
                    "bash", "--norc", "--noprofile", "-c", script + "; sleep 30"],
                   check=True)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while not done.exists():
            assert time.monotonic() < deadline, f"{command!r} did not finish"
            time.sleep(0.2)
        time.sleep(0.3)
        out = subprocess.run(["tmux", "capture-pane", "-p", "-J", "-S", "-", "-t", session],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert done.read_text().strip() == "EXIT=0", out
    return out


def test_theory_claim_fits_the_terminal_and_shows_its_progress(tmp_path: Path) -> None:
    exe = f"{sys.executable} -m collapselab"
    screen = _screen(f"{exe} theory --claim variance-gradient --claim uniform-softmax",
                     tmp_path)  # fmt: skip
    lines = screen.rstrip("\n").splitlines()
    assert max(len(ln) for ln in lines) <= WIDTH, "\n".join(ln for ln in lines if len(ln) > WIDTH)
    # the bar is labelled and ended at 2 of 2 claims; the report follows it
    assert any(ln.startswith("theory") and "2/2" in ln for ln in lines), screen
    assert "variance-gradient: FAILS" in screen and "uniform-softmax: HOLDS" in screen
    assert "ratio_claimed_to_autograd" in screen  # the numbers, wrapped, not cut


def test_check_table_fits_the_terminal(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.standard_normal((3000, 64)).astype(np.float32))
    np.save(tmp_path / "b.npy", (0.2 * rng.standard_normal((3000, 64))).astype(np.float32))
    screen = _screen(f"{sys.executable} -m collapselab check a.npy --baseline b.npy", tmp_path)
    lines = screen.rstrip("\n").splitlines()
    assert max(len(ln) for ln in lines) <= WIDTH, "\n".join(ln for ln in lines if len(ln) > WIDTH)
    assert "effective rank" in screen and "advice:" in screen


def test_nothing_but_the_result_on_a_pipe(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "collapselab", "theory", "--claim",
                          "uniform-softmax"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=240)  # fmt: skip
    assert out.returncode == 0 and out.stderr == ""  # no bar, no warning on a pipe
    assert out.stdout.startswith("uniform-softmax: HOLDS")
