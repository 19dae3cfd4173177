"""What a user meets first on the command line: commands that read paths alike, bad
choices refused before any work, reasons for a failing gate, tables that fit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapselab._term import table
from collapselab.cli import main


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collapselab", *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "emb"
    folder.mkdir()
    for i, rank in enumerate((2, 16, 6)):  # three different spreads: a definite ranking
        z = rng.standard_normal((300, rank)) @ rng.standard_normal((rank, 16))
        np.save(folder / f"part-{i}.npy", z.astype(np.float32))
    (folder / "notes.txt").write_text("not an embedding file")
    return folder


def test_check_reads_a_folder_as_its_sorted_files(
    shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(shards), "--json"]) == 0
    folder = json.loads(capsys.readouterr().out)
    assert main(["check", str(shards / "part-*.npy"), "--json"]) == 0
    globbed = json.loads(capsys.readouterr().out)
    assert folder["files"] == [str(shards / f"part-{i}.npy") for i in range(3)]
    assert folder["eigenvalues"] == globbed["eigenvalues"] and folder["n"] == 900


def test_check_of_a_folder_without_embeddings_is_a_one_line_error(tmp_path: Path) -> None:
    out = _cli("check", str(tmp_path))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith(f"collapselab check: error: {tmp_path}: a folder with no")


def test_rank_takes_a_folder_and_a_glob_as_check_does(
    shards: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    explicit = [str(shards / f"part-{i}.npy") for i in range(3)]
    orders = []
    for args in (explicit, [str(shards)], [str(shards / "part-*.npy")]):
        assert main(["rank", *args, "--metric", "effective_rank", "--json"]) == 0
        orders.append([r["path"] for r in json.loads(capsys.readouterr().out)["runs"]])
    assert orders[0] == orders[1] == orders[2]
    # rank 16 > rank 6 > rank 2: best first
    assert orders[0] == [explicit[1], explicit[2], explicit[0]]


def test_rank_of_a_glob_matching_nothing_is_a_one_line_error(tmp_path: Path) -> None:
    out = _cli("rank", str(tmp_path / "run-*"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "no files match this pattern" in out.stderr


def test_fail_on_says_why_on_stderr(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    line = rng.standard_normal((500, 1)) @ rng.standard_normal((1, 32))
    np.save(tmp_path / "line.npy", (line + 1e-3 * rng.standard_normal((500, 32))).astype("f4"))
    np.save(tmp_path / "iso.npy", rng.standard_normal((500, 32)).astype("f4"))
    bad = _cli("check", str(tmp_path / "line.npy"), "--fail-on", "dimensional")
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == [
        "collapselab check: --fail-on dimensional triggered: dimensional (level 2, severity 1.00)"
    ]
    good = _cli("check", str(tmp_path / "iso.npy"), "--fail-on", "warning")
    assert good.returncode == 0 and good.stderr == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--methods", "simclr", "--data", "mnist"], "invalid choice: 'mnist'"),
        (["compare", "--methods", "simclr,nope"], "unknown method 'nope'"),
        (["train", "--method", "nope"], "invalid choice: 'nope'"),
        (["rank", "a", "b", "--metric", "nope"], "invalid choice: 'nope'"),
    ],
)
def test_bad_choices_fail_before_any_work(tmp_path: Path, args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "collapselab", *args], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and message in out.stderr
    assert list(tmp_path.iterdir()) == []  # no run folder was started


@pytest.mark.parametrize("command", ["compare", "train"])
def test_help_lists_the_methods_and_data_sets(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from collapselab.data.datasets import DATASETS
    from collapselab.methods import METHODS

    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert all(m in out for m in METHODS) and all(d in out for d in DATASETS)
    assert "simsiam-no-\n" not in out  # names never split at a hyphen


def test_table_fits_the_width_and_keeps_every_word() -> None:
    rows = [("demo2", "infonce", " ".join(f"word{i}" for i in range(40)))]
    text = table(rows, header=("section", "loss", "evidence"), width=50)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 50 and len(lines) > 3
    assert " ".join(text.split()).count("word") == 40
    assert lines[0].split() == ["section", "loss", "evidence"]
    wide = table(rows, header=("section", "loss", "evidence"), width=10**6)
    assert len(wide.splitlines()) == 3  # no limit: one line per row


def test_check_s_first_lines_never_contradict(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A healthy matrix whose spread fell against its baseline: the first line says WARNING
    (not HEALTHY alone), the headline says why, and no 'WARNING:' line repeats it."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2000, 32))
    mu = np.zeros(32)
    mu[0] = np.sqrt(0.64 * 32 * (1 / 0.4 - 1))  # the spread of 0.8 z + mu: 0.4 of base's
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "tuned.npy", 0.8 * base + mu)
    assert main(["check", str(tmp_path / "tuned.npy"), "--baseline",
                 str(tmp_path / "base.npy")]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path / 'tuned.npy'}: WARNING (level 1 of 3, severity " \
                       f"{lines[0].split('severity ')[1][:4]}; verdict healthy)"
    head = " ".join(lines[1:3])
    assert "collapse under way against the baseline" in head and "healthy on its own" in head
    assert not any(ln.startswith("WARNING:") for ln in lines)
    # the same file against itself: nothing new, the severity it has alone
    assert main(["check", str(tmp_path / "base.npy"), "--baseline", str(tmp_path / "base.npy"),
                 "--json"]) == 0  # fmt: skip
    with_base = json.loads(capsys.readouterr().out)
    assert main(["check", str(tmp_path / "base.npy"), "--json"]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert with_base["severity"] == alone["severity"] == 0.0 and with_base["level"] == 0


def test_rank_refuses_non_finite_rows_in_one_line_without_a_warning(tmp_path: Path) -> None:
    z = np.random.default_rng(5).standard_normal((50, 8)).astype(np.float32)
    np.save(tmp_path / "ok.npy", z)
    bad = z.copy()
    bad.view(np.uint32)[7, 2] = 0x7FA00000  # a signalling NaN: a float64 cast would warn
    np.save(tmp_path / "bad.npy", bad)
    out = _cli("rank", str(tmp_path / "ok.npy"), str(tmp_path / "bad.npy"))
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{tmp_path / 'bad.npy'}: 1 rows contain NaN or Inf (first: row 7)" in out.stderr


def test_plot_of_a_matrix_with_no_variance_prints_no_warning(tmp_path: Path) -> None:
    np.save(tmp_path / "zeros.npy", np.zeros((20, 4), dtype=np.float32))
    out = _cli("check", str(tmp_path / "zeros.npy"), "--plot", str(tmp_path / "p.png"))
    assert out.returncode == 0 and out.stderr == "" and (tmp_path / "p.png").stat().st_size > 0
