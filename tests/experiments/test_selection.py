"""Label-free model selection: LiDAR's exact values, the correlation / bootstrap machinery
against scipy, the run cache (hit, no retraining; no entry after an interruption) on the
6-run digits subset, and ``collapselab rank`` end to end on real files.

The full sweep is ``python benchmarks/bench_selection.py`` (benchmarks/results/selection.md).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from collapselab.errors import ConfigError, InputError
from collapselab.experiments import rank as R
from collapselab.experiments import selection as S
from collapselab.metrics import label_free as L

# ----------------------------------------------------------------------------- LiDAR


def _lda_views(means: np.ndarray, within_scale: np.ndarray, a: float = 0.1) -> np.ndarray:
    """``(n, 2d, d)``: each class mean plus the offsets ``+-a * s_k e_k``; the within-class
    scatter is then exactly ``diag(2 a^2 s_k^2 / (2d - 1))``."""
    offsets = np.concatenate([np.diag(a * within_scale), -np.diag(a * within_scale)])  # (2d, d)
    return means[:, None, :] + offsets[None, :, :]


def test_lidar_counts_discriminable_directions_exactly() -> None:
    # between-class scatter diag(2, 2, 0) / 3 with isotropic within-class scatter: the LDA
    # matrix has eigenvalues (c, c, 0), so LiDAR = 2 up to eps (1e-8 on each p_k: the
    # entropy moves by ~d * eps * |log eps| < 1e-6)
    means = np.array([[1.0, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]])
    views = _lda_views(means, np.ones(3))
    assert L.lidar(views) == pytest.approx(2.0, abs=1e-6)
    # a common offset of every view changes nothing (the class means are centred)
    assert L.lidar(views + np.array([5.0, -3.0, 4.0])) == pytest.approx(2.0, abs=1e-6)
    # one discriminable direction only
    means1 = np.array([[1.0, 0, 0], [-1, 0, 0], [2, 0, 0], [-2, 0, 0]])
    assert L.lidar(_lda_views(means1, np.ones(3))) == pytest.approx(1.0, abs=1e-6)


def test_lidar_whitens_by_the_within_class_scatter() -> None:
    # between-class spread 3:1 along e1:e2 and within-class spread 3:1 too: after whitening
    # by S_w both directions are equally discriminable (LiDAR 2); the plain effective rank of
    # the class means would be below 2 (p = 0.9, 0.1)
    means = np.array([[3.0, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]])
    views = _lda_views(means, np.array([3.0, 1.0, 1.0]))
    assert L.lidar(views, delta=1e-12) == pytest.approx(2.0, abs=1e-6)


def test_lidar_is_scale_and_rotation_invariant() -> None:
    rng = np.random.default_rng(0)
    views = rng.normal(size=(30, 4, 8)) + rng.normal(size=(30, 1, 8)) * np.linspace(0.1, 3, 8)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    ref = L.lidar(views)
    assert 1.0 < ref < 8.0
    # relative ridge: exact invariance up to float64 rounding of the eigensolves
    assert L.lidar(1e4 * views) == pytest.approx(ref, rel=1e-9)
    assert L.lidar(views @ q) == pytest.approx(ref, rel=1e-9)


def test_lidar_rejects_a_single_view() -> None:
    with pytest.raises(InputError, match="expected"):
        L.lidar(np.zeros((5, 1, 3)))


# ------------------------------------------------------------------- correlation machinery


def test_point_estimates_equal_scipy_and_interval_contains_them() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    y = 0.6 * x + rng.normal(size=40)
    rho, tau = S.bootstrap_correlation(x, y, n_boot=400)
    assert rho.value == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert tau.value == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
    for c in (rho, tau):
        assert c.lo < c.value < c.hi
        assert -1 <= c.lo and c.hi <= 1
    # the interval narrows with more runs (sampling error ~ 1/sqrt(n))
    x2 = rng.normal(size=200)
    r2, _ = S.bootstrap_correlation(x2, 0.6 * x2 + rng.normal(size=200), n_boot=400)
    assert r2.hi - r2.lo < 0.7 * (rho.hi - rho.lo)  # expected ratio sqrt(40 / 200) = 0.45


def test_monotone_relation_gives_one_and_a_degenerate_interval() -> None:
    x = np.arange(12.0)
    rho, tau = S.bootstrap_correlation(x, np.exp(x), n_boot=200)
    # every resample keeps the order: 1 up to the rounding of scipy's rank arithmetic
    assert (rho.value, rho.lo, rho.hi) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    assert (tau.value, tau.lo, tau.hi) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    rho, _ = S.bootstrap_correlation(x, -x, n_boot=200)
    assert rho.value == -1.0


def _fake(method: str, acc: float, **metrics: float) -> S.RunResult:
    full = {m: 0.0 for m in L.METRIC_NAMES} | metrics
    return S.RunResult({"data": "digits", "method": method}, full, acc, acc, 0.0)


def test_correlations_orient_each_metric_by_its_papers_claim() -> None:
    # uniformity: lower is better (sign -1); a run set where accuracy falls as uniformity
    # rises must score +1 for uniformity, and a rank metric growing with accuracy +1
    accs = np.linspace(0.5, 0.9, 6)
    runs = [_fake("a" if i % 2 else "b", a, uniformity=-a, effective_rank=10 * a,
                  alignment=a) for i, a in enumerate(accs)]  # fmt: skip
    corrs = {(c.metric, c.scope): c for c in S.correlations(runs, n_boot=50, min_runs=3)
             if c.target == "linear"}  # fmt: skip
    assert corrs["uniformity", "all"].spearman.value == pytest.approx(1.0)
    assert corrs["effective_rank", "all"].spearman.value == pytest.approx(1.0)
    assert corrs["alignment", "all"].spearman.value == pytest.approx(-1.0)  # claim fails
    assert corrs["uniformity", "a"].n == 3  # within-method scopes exist
    table = S.validation_table(list(corrs.values()))
    # best first; constant metrics (no correlation defined) after every validated one
    assert set(table["order"][:2]) == {"uniformity", "effective_rank"}
    assert table["order"][2] == "alignment"
    assert table["metrics"]["alignment"]["worst_lo"] == pytest.approx(-1.0)


# ---------------------------------------------------------------------- the tiny sweep


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[S.RunResult]]:
    cache = tmp_path_factory.mktemp("selection")
    return cache, S.run_sweep(S.sweep_runs(full=False), cache)


def test_tiny_sweep_measures_every_metric(tiny: tuple[Path, list[S.RunResult]]) -> None:
    cache, results = tiny
    assert len(results) == 6
    for r in results:
        assert set(r.metrics) == set(L.METRIC_NAMES)
        assert all(math.isfinite(v) for v in r.metrics.values()), r.metrics
        assert 0.1 < r.linear <= 1.0 and 0.1 < r.knn <= 1.0  # above chance (10 classes)
        assert 1.0 <= r.metrics["effective_rank"] <= 256.0
        assert -4.0 <= r.metrics["uniformity"] <= 0.0
        assert 0.0 <= r.metrics["alignment"] <= 4.0
        assert r.metrics["alpha_req"] == pytest.approx(-abs(r.metrics["alpha"] - 1.0))
    # the metrics come from the trained checkpoint: measured again, the same numbers
    method, data = S.load_trained(cache / S.sweep_runs(False)[0].key() / "train/checkpoint.pt")
    again = S.measure_method(method, data)
    assert again == pytest.approx(results[0].metrics, rel=1e-9)
    corrs = S.correlations(results, n_boot=100, min_runs=3)
    assert {c.scope for c in corrs} == {"all", "simclr"}  # vicreg (2), alignment (1) < 3 runs
    for c in corrs:
        x = [L.metric_spec(c.metric).sign * r.metrics[c.metric] for r in results
             if c.scope in ("all", r.method)]  # fmt: skip
        y = [getattr(r, c.target) for r in results if c.scope in ("all", r.method)]
        assert c.spearman.value == pytest.approx(stats.spearmanr(x, y)[0], nan_ok=True)


def test_cache_hit_does_not_retrain(
    tiny: tuple[Path, list[S.RunResult]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, results = tiny
    import collapselab.train.trainer as trainer

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("retrained a cached run")

    monkeypatch.setattr(trainer, "train", boom)
    assert S.run_sweep(S.sweep_runs(full=False), cache) == results


def test_changed_metric_definitions_remeasure_without_retraining(
    tiny: tuple[Path, list[S.RunResult]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import collapselab.train.trainer as trainer

    cache, results = tiny
    run = S.sweep_runs(full=False)[0]
    shutil.copytree(cache / run.key(), tmp_path / run.key())
    path = tmp_path / run.key() / "result.json"
    stale = json.loads(path.read_text()) | {"metrics": {"rankme": -1.0}, "metrics_version": 0}
    path.write_text(json.dumps(stale))

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("retrained a cached run")

    monkeypatch.setattr(trainer, "train", boom)
    again = S.run_one(run, tmp_path)
    assert again.metrics == pytest.approx(results[0].metrics, rel=1e-9)
    assert again.metrics_version == S.METRICS_VERSION
    assert (again.linear, again.knn) == (results[0].linear, results[0].knn)  # kept
    assert json.loads(path.read_text())["metrics_version"] == S.METRICS_VERSION


def test_interrupted_run_leaves_no_cache_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import collapselab.train.evaluate as evaluate

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    run = S.sweep_runs(full=False)[0]
    monkeypatch.setattr(evaluate, "evaluate_features", interrupted)
    with pytest.raises(KeyboardInterrupt):
        S.run_one(run, tmp_path)
    folder = tmp_path / run.key()
    assert (folder / "train/checkpoint.pt").is_file()  # trained ...
    assert not (folder / "result.json").exists()  # ... but not finished: no entry
    assert not list(folder.glob(".result.json.*"))  # nor a temporary one


def test_rank_checkpoints_orders_by_metric(
    tiny: tuple[Path, list[S.RunResult]], tmp_path: Path
) -> None:
    cache, results = tiny
    table = S.validation_table(S.correlations(results, n_boot=100))
    vpath = tmp_path / "v.json"
    vpath.write_text(json.dumps(table))
    cks = [str(cache / r.key() / "train") for r in S.sweep_runs(False)[:3]]
    ranking = R.rank_runs(cks, metric="lidar", validation=vpath)
    expect = sorted(results[:3], key=lambda r: -r.metrics["lidar"])
    assert [r.value for r in ranking.runs] == pytest.approx([r.metrics["lidar"] for r in expect])
    assert ranking.why == "chosen with --metric"


# ----------------------------------------------------------------- collapselab rank (CLI)


def _validation(tmp_path: Path) -> Path:
    """A validation table in which effective rank validated best, RankMe second."""
    accs = np.linspace(0.5, 0.9, 8)
    runs = [_fake("m", a, effective_rank=a, rankme=a + 0.1 * np.sin(9 * a), lidar=-a)
            for a in accs]  # fmt: skip
    path = tmp_path / "validated.json"
    path.write_text(json.dumps(S.validation_table(S.correlations(runs, n_boot=100))))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    probe = ("import sys\nfrom collapselab.cli import main\nrc = main(sys.argv[1:])\n"
             "print('TORCH', 'torch' in sys.modules)\nsys.exit(rc)")  # fmt: skip
    return subprocess.run([sys.executable, "-c", probe, *args], capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def test_cli_rank_embedding_files_without_torch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    files = {
        "low": rng.normal(size=(300, 2)) @ rng.normal(size=(2, 32)),  # rank 2
        "full": rng.normal(size=(300, 32)),  # isotropic
        "mid": rng.normal(size=(300, 8)) @ rng.normal(size=(8, 32)),  # rank 8
    }
    paths = []
    for name, z in files.items():
        np.save(tmp_path / f"{name}.npy", z.astype(np.float32))
        paths.append(str(tmp_path / f"{name}.npy"))
    v = str(_validation(tmp_path))
    out = _cli("rank", *paths, "--validation", v, "--json")
    assert out.returncode == 0, out.stderr
    body, torch_line = out.stdout.strip().splitlines()
    assert torch_line == "TORCH False"
    r = json.loads(body)
    assert r["metric"] == "effective_rank" and r["why"] == "best validated"
    assert [Path(x["path"]).stem for x in r["runs"]] == ["full", "mid", "low"]
    assert r["runs"][2]["value"] == pytest.approx(
        L.label_free_metrics(np.load(paths[0]).astype(np.float64))["effective_rank"]
    )
    assert r["trust"] == "high"  # rho = 1 with a degenerate interval in this table
    text = _cli("rank", *paths, "--validation", v)
    assert text.returncode == 0
    assert "metric: effective_rank (best validated); trust: high" in text.stdout
    assert "digits: Spearman +1.00 [+1.00, +1.00]" in text.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["one.npy"], "at least 2"),
        (["one.npy", "missing.npy"], "missing.npy"),
        (["one.npy", "one.npy", "--metric", "lidar"], "needs augmented views"),
        (["one.npy", "one.npy", "--metric", "nope"], "invalid choice: 'nope'"),
        (["one.npy", "one.npy", "--validation", "one.npy"], "one.npy"),
    ],
)
def test_cli_rank_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    np.save(tmp_path / "one.npy", np.random.default_rng(0).normal(size=(20, 4)))
    v = [] if "--validation" in args else ["--validation", str(_validation(tmp_path))]
    out = _cli("rank", *[str(tmp_path / a) if a.endswith(".npy") else a for a in args], *v)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith("collapselab rank: error:") and message in out.stderr


def test_rank_library_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.eye(4))
    with pytest.raises(ConfigError, match="at least 2"):
        R.rank_runs([str(tmp_path / "a.npy")])
    with pytest.raises(InputError, match="no such file"):
        R.rank_runs([str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    bad = tmp_path / "v.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="not a selection validation table"):
        R.load_validation(bad)


def test_vectorised_rank_correlations_equal_scipy_with_ties() -> None:
    # resamples are full of ties (repeated runs): both statistics must treat them as scipy
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=(50, 15)).astype(float)
    y = x + rng.integers(0, 3, size=(50, 15))
    rho, tau = S.rank_correlations(x, y, block=1000)  # several blocks
    for i in range(50):
        assert rho[i] == pytest.approx(stats.spearmanr(x[i], y[i])[0], abs=1e-12)
        assert tau[i] == pytest.approx(stats.kendalltau(x[i], y[i])[0], abs=1e-12)
    r, t = S.rank_correlations(np.ones((1, 4)), np.arange(4.0)[None])
    assert np.isnan(r[0]) and np.isnan(t[0])
