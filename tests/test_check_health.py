"""check --health: planted faults found through the command a user runs, NaN rows reported
instead of refused, and health agreeing with the verdict on outlier rows."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from collapselab.check import CheckRequest, check_files
from collapselab.errors import ConfigError, InputError


def _planted(tmp_path):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3000, 24)).astype(np.float32)
    z[7] = np.nan
    z[11, 3] = np.inf
    z[100] = 0.0
    z[2500] = z[40]  # an exact duplicate far from its original (another chunk)
    z[:, 9] *= 25.0  # a rogue dimension
    path = tmp_path / "planted.npy"
    np.save(path, z)
    return path


def test_planted_faults_found_through_the_command_line(tmp_path) -> None:
    path = _planted(tmp_path)
    run = subprocess.run([sys.executable, "-m", "collapselab", "check", str(path), "--health",
                          "--json", "--chunk-rows", "700"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    h = json.loads(run.stdout)["health"]
    assert (h["nan_rows"]["count"], h["nan_rows"]["first_rows"]) == (1, [7])
    assert (h["inf_rows"]["count"], h["inf_rows"]["first_rows"]) == (1, [11])
    assert (h["zero_rows"]["count"], h["zero_rows"]["first_rows"]) == (1, [100])
    dup = h["exact_duplicates"]
    assert dup["rows"] == 1 and dup["first_groups"] == [[40, 2500]]
    assert h["rogue_dimensions"]["rogue"] == [9]
    assert any(p.startswith("rogue dimension 9:") for p in h["problems"])
    text = subprocess.run([sys.executable, "-m", "collapselab", "check", str(path), "--health"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "index health:\n  NaN rows: 1 (first: 7)\n  Inf rows: 1 (first: 11)" in text
    # the verdict is on the 2998 finite rows
    assert "rows x dims           2998 x 24" in text


def test_nan_rows_without_health_are_refused_and_point_to_it(tmp_path) -> None:
    path = _planted(tmp_path)
    with pytest.raises(InputError, match=r"2 rows contain NaN or Inf \(first: row 7\); "
                                         r"--health lists them"):  # fmt: skip
        check_files([str(path)])


def test_health_names_the_rows_the_verdict_calls_outliers(tmp_path) -> None:
    # norms spread widely (one dominant column), one row 100x longer: the robust spread of
    # the norms alone would not flag it, the verdict's outlier caveat does; so must health
    rng = np.random.default_rng(4)
    z = rng.standard_normal((4000, 16))
    z[:, 2] *= 30
    z[123] *= 100
    np.save(tmp_path / "z.npy", z)
    r = check_files([str(tmp_path / "z.npy")], health=True)
    assert "outlier rows" in r.measurement.headline
    assert r.health is not None and r.health.norms is not None
    assert r.health.norms.rows == (123,) and r.health.norms.high == 1


def test_health_is_refused_where_it_cannot_run() -> None:
    with pytest.raises(ConfigError, match="--health reads embedding files or stores here"):
        CheckRequest(paths=["a.parquet"], engine="spark", health=True)


def test_all_rows_nan_is_one_line(tmp_path) -> None:
    np.save(tmp_path / "nan.npy", np.full((5, 3), np.nan, dtype=np.float32))
    run = subprocess.run([sys.executable, "-m", "collapselab", "check",
                          str(tmp_path / "nan.npy"), "--health"], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        f"collapselab check: error: {tmp_path / 'nan.npy'}: 0 finite rows of 5; nothing left "
        "to measure"]


def test_the_report_has_the_health_section(tmp_path) -> None:
    from collapselab.report.check_report import write_check_report

    result = check_files([str(_planted(tmp_path))], health=True)
    page = write_check_report(result, tmp_path / "rep").read_text()
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    health = data["sections"]["health"]["data"]
    assert health["nan_rows"]["first_rows"] == [7] and health["problems"] == result.health.problems
    assert "<h2" in page and "Index health" in page and "1 row contains NaN (first: 7)" in page
