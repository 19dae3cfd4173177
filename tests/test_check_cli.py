"""`collapselab check` end to end, as a user runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from collapselab.check import check_files
from collapselab.cli import main

RNG = np.random.default_rng(11)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    healthy = RNG.standard_normal((3000, 32)).astype(np.float32)
    collapsed = (np.ones((500, 32)) + 1e-5 * RNG.standard_normal((500, 32))).astype(np.float32)
    lowrank = (RNG.standard_normal((2000, 1)) * RNG.standard_normal((1, 32))).astype(np.float32)
    out = {}
    for name, arr in (("healthy", healthy), ("collapsed", collapsed), ("lowrank", lowrank)):
        out[name] = tmp_path / f"{name}.npy"
        np.save(out[name], arr)
    return out


def test_json_has_the_documented_keys(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, _ = run(["check", str(files["healthy"]), "--json"], capsys)
    assert rc == 0
    res = json.loads(out)
    for key in (
        "n",
        "d",
        "verdict",
        "effective_rank",
        "numerical_rank",
        "participation_ratio",
        "total_variance",
        "std_of_l2_normalized",
        "mean_cosine",
        "eigenvalues",
        "evidence",
    ):
        assert key in res, key
    assert (res["n"], res["d"], res["verdict"]) == (3000, 32, "healthy")
    eig = res["eigenvalues"]
    assert len(eig) == 32 and eig == sorted(eig, reverse=True)
    ref = np.linalg.eigvalsh(np.cov(np.load(files["healthy"]).astype(np.float64).T, bias=True))
    np.testing.assert_allclose(eig, ref[::-1], rtol=1e-6)


def test_fail_on_gates_exit_codes(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["check", str(files["collapsed"]), "--fail-on", "complete"], capsys)[0] == 1
    assert run(["check", str(files["lowrank"]), "--fail-on", "complete"], capsys)[0] == 0
    assert run(["check", str(files["lowrank"]), "--fail-on", "dimensional"], capsys)[0] == 1
    assert run(["check", str(files["healthy"]), "--fail-on", "dimensional"], capsys)[0] == 0
    rc, out, _ = run(["check", str(files["collapsed"])], capsys)
    assert rc == 0 and ": COMPLETE (level 3 of 3, severity 1.00)" in out


def test_plot_writes_a_png(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "sub" / "spec.png"
    rc, _, _ = run(["check", str(files["lowrank"]), "--plot", str(png)], capsys)
    assert rc == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize(
    "make,expected",
    [
        (lambda p: None, "no such file"),
        (lambda p: np.save(p, np.zeros(5)), "1-D array of shape (5,); expected (N, d)"),
        (lambda p: np.save(p, np.zeros((1, 4))), "row"),
        (
            lambda p: np.save(p, np.array([[1, "a"]], dtype=object), allow_pickle=True),
            "never unpickles",
        ),
    ],
)
def test_bad_inputs_one_line_exit_2(
    tmp_path: Path, make, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.npy"
    make(path)
    rc, out, err = run(["check", str(path)], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "bad.npy" in err and expected in err, err
    assert "Traceback" not in err


def test_nan_rows_named_with_count_and_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = RNG.standard_normal((100, 8)).astype(np.float32)
    z[[17, 40, 41]] = np.inf
    z[60, 3] = np.nan
    np.save(tmp_path / "nan.npy", z)
    rc, _, err = run(["check", str(tmp_path / "nan.npy"), "--chunk-rows", "30"], capsys)
    assert rc == 2
    assert "nan.npy: 4 rows contain NaN or Inf (first: row 17)" in err


def test_threshold_override_and_bad_threshold(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    p = str(files["lowrank"])
    assert (
        run(
            [
                "check",
                p,
                "--fail-on",
                "dimensional",
                "--threshold",
                "few_dims_fraction=0",
                "--threshold",
                "min_effective_rank=0",
            ],
            capsys,
        )[0]
        == 0
    )
    rc, _, err = run(["check", p, "--threshold", "bogus=1"], capsys)
    assert rc == 2 and "NAME=VALUE" in err


def test_several_files_and_globs_are_one_matrix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    z = RNG.standard_normal((3000, 16)) @ np.diag(np.linspace(0.1, 2, 16))
    for i in range(3):
        np.save(tmp_path / f"shard-{i}.npy", z[i * 1000 : (i + 1) * 1000])
    np.save(tmp_path / "whole.npy", z)
    rc, out, _ = run(["check", str(tmp_path / "shard-*.npy"), "--json"], capsys)
    shards = json.loads(out)
    whole = json.loads(run(["check", str(tmp_path / "whole.npy"), "--json"], capsys)[1])
    assert rc == 0 and shards["n"] == 3000 and len(shards["files"]) == 3
    np.testing.assert_allclose(shards["eigenvalues"], whole["eigenvalues"], rtol=1e-10)
    rc, _, err = run(["check", str(tmp_path / "nope-*.npy")], capsys)
    assert rc == 2 and "nope-*.npy" in err


def test_streaming_small_chunks_equals_whole(tmp_path: Path) -> None:
    z = (RNG.standard_normal((5000, 12)) + 4).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    a = check_files([str(tmp_path / "z.npy")], chunk_rows=333).measurement.metrics
    b = check_files([str(tmp_path / "z.npy")]).measurement.metrics
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-9)
    assert a.mean_cosine == pytest.approx(b.mean_cosine, rel=1e-9)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dist_worker(rank: int, world: int, port: int, paths: list[str], out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        res = check_files(paths, chunk_rows=100).measurement.metrics
        torch.save(
            {"eig": torch.from_numpy(res.eigenvalues), "n": res.n, "cos": res.mean_cosine},
            f"{out}.{rank}",
        )
    finally:
        dist.destroy_process_group()


def test_distributed_ranks_reduce_to_the_single_process_result(tmp_path: Path) -> None:
    z = RNG.standard_normal((1001, 10)) * np.linspace(0.2, 3, 10) + 1.0
    paths = []
    for i, (a, b) in enumerate([(0, 400), (400, 1001)]):
        paths.append(str(tmp_path / f"s{i}.npy"))
        np.save(paths[-1], z[a:b])
    single = check_files(paths).measurement.metrics
    mp.spawn(_dist_worker, args=(2, _free_port(), paths, str(tmp_path / "res")), nprocs=2)
    for rank in range(2):
        got = torch.load(f"{tmp_path / 'res'}.{rank}", weights_only=True)
        assert got["n"] == 1001
        np.testing.assert_allclose(got["eig"].numpy(), single.eigenvalues, rtol=1e-10)
        assert got["cos"] == pytest.approx(single.mean_cosine, rel=1e-10)


def test_console_script_runs(files: dict[str, Path]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "collapselab", "check", str(files["collapsed"]), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "complete"


def test_a_check_request_is_what_the_command_runs(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The library request (README "From Python") gives the command's numbers, and its
    field rules refuse what the command refuses, with the same words."""
    from collapselab.check import CheckRequest
    from collapselab.errors import ConfigError
    from collapselab.integrations.engines import run_check

    request = CheckRequest(paths=[str(files["lowrank"])], baseline=[str(files["healthy"])])
    lib = run_check(request).to_dict()
    rc, out, _ = run(["check", str(files["lowrank"]), "--baseline", str(files["healthy"]),
                      "--json"], capsys)  # fmt: skip
    cli = json.loads(out)
    assert rc == 0 and lib["verdict"] == cli["verdict"] == "dimensional"
    assert lib["baseline"]["files"] == [str(files["healthy"])]
    np.testing.assert_allclose(lib["eigenvalues"], cli["eigenvalues"], rtol=1e-12)
    with pytest.raises(ConfigError, match="--master goes with --engine spark"):
        CheckRequest(paths=["x.parquet"], engine="ray", master="local[2]")
    with pytest.raises(ConfigError, match="--engine 'dask': local, ray or spark"):
        CheckRequest(paths=["x.parquet"], engine="dask")
    rc, _, err = run(["check", "x.parquet", "--engine", "ray", "--master", "local[2]"], capsys)
    assert rc == 2 and "--master goes with --engine spark" in err


def test_a_reported_quantity_shows_no_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The effective-rank fraction is reported, not a line: its row says "-" where a line
    would be, never "nan", in the terminal table and in the JSON (null)."""
    rc, out, _ = run(["check", str(files["lowrank"])], capsys)
    row = next(ln for ln in out.splitlines() if ln.startswith("effective_rank_fraction"))
    assert rc == 0 and "nan" not in out and row.split()[2:4] == ["-", "-"]
    ev = {e["name"]: e for e in json.loads(run(["check", str(files["lowrank"]), "--json"],
                                               capsys)[1])["evidence"]}  # fmt: skip
    assert ev["effective_rank_fraction"]["threshold"] is None
    assert ev["effective_rank_fraction"]["crossed"] is False
