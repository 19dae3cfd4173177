"""The drift test: the Frechet distance against closed forms, the permutation null's level,
its power on a planted shift, and the streamed path (check --baseline) against the
in-memory one."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.linalg import sqrtm

from collapselab.check import accumulate_blocks, accumulate_sources, check_files
from collapselab.drift import BlockPlan, drift_test, frechet_terms
from collapselab.errors import ConfigError
from collapselab.io import iter_sources


def _gaussian(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)) * np.exp(-np.arange(d) / 6)


def test_frechet_of_commuting_gaussians_is_the_closed_form() -> None:
    # diagonal covariances: F^2 = |m_a - m_b|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    a, b = np.array([4.0, 1.0, 0.25]), np.array([1.0, 9.0, 0.25])
    mean, bures = frechet_terms(np.zeros(3), np.diag(a), np.array([1.0, 2.0, 0.0]), np.diag(b))
    assert mean == 5.0
    assert bures == pytest.approx(((np.sqrt(a) - np.sqrt(b)) ** 2).sum(), rel=1e-12)
    # and the Cholesky path the permutations use agrees
    assert frechet_terms(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b), fast=True)[1] == (
        pytest.approx(bures, rel=1e-9))


def test_frechet_of_non_commuting_covariances_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 8)), rng.standard_normal((5, 12))
    a, b = x @ x.T / 8 + 0.1 * np.eye(5), y @ y.T / 12
    root = sqrtm(a)
    expected = np.trace(a + b - 2 * np.real(sqrtm(root @ b @ root)))
    for fast in (False, True):
        assert frechet_terms(np.zeros(5), a, np.zeros(5), b, fast)[1] == pytest.approx(
            expected, rel=1e-8)
    # a singular covariance (rank 2 of 5) on both paths
    s = x[:, :2] @ x[:, :2].T
    root = np.real(sqrtm(s))
    expected = np.trace(s + b - 2 * np.real(sqrtm(root @ b @ root)))
    for fast in (False, True):
        assert frechet_terms(np.zeros(5), s, np.zeros(5), b, fast)[1] == pytest.approx(
            expected, rel=1e-5)


def test_the_null_holds_its_level_on_one_distribution() -> None:
    flagged = [drift_test(*np.split(_gaussian(1600, 12, seed), 2), permutations=39,
                          seed=seed).drifted for seed in range(100)]  # fmt: skip
    # P(Binomial(100, 0.05) >= 13) < 0.001
    assert sum(flagged) <= 12


def test_a_planted_mean_shift_is_found_and_named() -> None:
    ref, cur = np.split(_gaussian(4000, 12, 7), 2)
    cur = cur.copy()
    cur[:, 2] += 0.25  # a quarter of that direction's sd (0.72)
    r = drift_test(ref, cur, permutations=99)
    assert r.drifted and r.p_value == pytest.approx(0.01) and r.p_mean == pytest.approx(0.01)
    assert r.mean_term == pytest.approx(0.0625, rel=0.4)
    # a rotation of the top two directions moves only the covariance
    cur2 = np.split(_gaussian(4000, 12, 8), 2)[1].copy()
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    cur2[:, :2] = cur2[:, :2] @ np.array([[c, -s], [s, c]])
    r2 = drift_test(ref, cur2, permutations=99)
    assert r2.p_bures == pytest.approx(0.01) and r2.p_mean > 0.05


def test_the_streamed_blocks_are_the_in_memory_test(tmp_path) -> None:
    ref, cur = _gaussian(3000, 10, 2), _gaussian(2200, 10, 3) + 0.02
    np.save(tmp_path / "ref.npy", ref.astype(np.float32))
    np.save(tmp_path / "cur.npy", cur.astype(np.float32))
    streamed = check_files([str(tmp_path / "cur.npy")], baseline=[str(tmp_path / "ref.npy")],
                           chunk_rows=333, permutations=49).drift  # fmt: skip
    memory = drift_test(ref.astype(np.float32), cur.astype(np.float32), permutations=49)
    assert not isinstance(streamed, str) and streamed is not None
    assert streamed.blocks == memory.blocks == (21, 16)  # 2200 // 16 = 137 rows a block
    assert streamed.block_rows == 137
    assert streamed.p_value == memory.p_value and streamed.p_bures == memory.p_bures
    assert streamed.frechet == pytest.approx(memory.frechet, rel=1e-9)


def test_blocks_merge_to_the_one_pass_moments(tmp_path) -> None:
    z = _gaussian(1000, 6, 4).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    sources = iter_sources([str(tmp_path / "z.npy")])
    plan = BlockPlan.of(1000, 700, 6)
    assert not isinstance(plan, str) and plan.rows == 43 and plan.blocks == (23, 16)
    total, blocks = accumulate_blocks(sources, plan, 0, chunk_rows=100, sample_size=64)
    one = accumulate_sources(sources, chunk_rows=100, sample_size=64)
    assert [b.n for b in blocks] == [43] * 23  # the 11 tail rows are in the total only
    assert total.n == 1000 and total.sample_rows.shape == (64, 6)
    np.testing.assert_allclose(total.mean, one.mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(total.scatter, one.scatter, rtol=1e-10)


def test_too_few_rows_and_no_permutations_say_why(tmp_path) -> None:
    # 7 + 500 rows fit the 256 blocks at 2 rows a block: 3 blocks of the smaller set
    assert str(BlockPlan.of(7, 500, 4)).endswith("make 3 blocks of 2 rows; the permutation "
                                                 "test needs 4 in each set")
    np.save(tmp_path / "a.npy", _gaussian(40, 4, 5).astype(np.float32))
    np.save(tmp_path / "b.npy", _gaussian(3, 4, 6).astype(np.float32))
    r = check_files([str(tmp_path / "b.npy")], baseline=[str(tmp_path / "a.npy")])
    assert isinstance(r.drift, str) and r.drift.startswith("no drift test: 3 rows")
    assert r.to_dict()["drift"] == {"skipped": r.drift}
    r0 = check_files([str(tmp_path / "a.npy")], baseline=[str(tmp_path / "a.npy")],
                     permutations=0)  # fmt: skip
    assert r0.drift == "no drift test: --permutations 0"
    with pytest.raises(ConfigError, match="two \\(n, d\\) matrices"):
        drift_test(np.zeros((10, 3)), np.zeros((10, 4)))


def test_the_command_line_reports_the_test(tmp_path) -> None:
    ref, cur = np.split(_gaussian(4000, 8, 9).astype(np.float32), 2)
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "cur.npy", cur + np.float32(0.3))
    run = [sys.executable, "-m", "collapselab", "check", str(tmp_path / "cur.npy"),
           "--baseline", str(tmp_path / "ref.npy")]  # fmt: skip
    out = json.loads(subprocess.run(run + ["--json", "--permutations", "39"], check=True,
                                    capture_output=True, text=True).stdout)  # fmt: skip
    assert out["drift"]["drifted"] is True and out["drift"]["permutations"] == 39
    assert out["drift"]["p_value"] == pytest.approx(0.025)
    text = subprocess.run(run, check=True, capture_output=True, text=True).stdout
    assert "drift: moved beyond sampling noise (p = 0.005, 199 permutations of 32 blocks)" in text
    bad = subprocess.run(run + ["--permutations", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().endswith("--permutations must be >= 0, got -1")


def test_a_far_mean_costs_no_digits() -> None:
    # both sets 1e8 away from the origin, spread about 1: the blocks' second moments are
    # taken about a common origin near the data, so the test is the same as at the origin
    ref, cur = np.split(_gaussian(2000, 6, 11), 2)
    near = drift_test(ref, cur + 0.1, permutations=49)
    far = drift_test(ref + 1e8, cur + 1e8 + 0.1, permutations=49)
    assert (far.p_value, far.p_mean, far.p_bures) == (near.p_value, near.p_mean, near.p_bures)
    assert far.frechet == pytest.approx(near.frechet, rel=1e-6)


def test_the_report_carries_the_test(tmp_path) -> None:
    from collapselab.report.check_report import write_check_report

    ref, cur = np.split(_gaussian(2000, 6, 12).astype(np.float32), 2)
    np.save(tmp_path / "ref.npy", ref)
    np.save(tmp_path / "cur.npy", cur * np.float32(1.5))
    result = check_files([str(tmp_path / "cur.npy")], baseline=[str(tmp_path / "ref.npy")],
                         permutations=39)  # fmt: skip
    page = write_check_report(result, tmp_path / "rep")
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["sections"]["baseline"]["data"]["drift"]["p_bures"] == pytest.approx(0.025)
    assert "Drift: the distribution moved beyond sampling noise (p = 0.025" in page.read_text()
