"""The validation study's statistics and the trust ``collapselab rank`` draws from them.

alpha-ReQ's fit window and weights (as the authors' library, reptrix), TwoNN's intrinsic
dimension on data of known dimension, the sweep design (settings, seeds, Latin square),
seed averaging, regret, the noise floor, the power calculation, the bootstrap's level and
the trust lines, and the shipped table's consistency with them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from collapselab.experiments import rank as R
from collapselab.experiments import selection as S
from collapselab.metrics import label_free as L

# ---------------------------------------------------------------------- alpha-ReQ's fit


def test_alpha_recovers_an_exact_power_law() -> None:
    k = np.arange(1, 257, dtype=float)
    for alpha in (0.7, 1.0, 1.8):
        assert L.alpha_req_fit(5.0 * k**-alpha) == pytest.approx(alpha, abs=1e-10)


def test_alpha_fits_ranks_6_to_100_only() -> None:
    # the head (ranks 1-5) and the tail (past 100) do not move the fit: reptrix fits
    # np.arange(5, 100) + 1
    k = np.arange(1, 257, dtype=float)
    lam = k**-1.2
    bent = lam.copy()
    bent[:5] *= 50.0  # a dominant head
    bent[100:] *= 1e-3  # a collapsed tail
    assert L.alpha_req_fit(bent) == pytest.approx(1.2, abs=1e-10)
    assert L.ALPHA_RANKS == (6, 100)
    # rank 6 is in: bending it changes alpha
    lam6 = lam.copy()
    lam6[5] *= 10.0
    assert abs(L.alpha_req_fit(lam6) - 1.2) > 1e-3


def test_alpha_weights_each_rank_by_one_over_k() -> None:
    # a spectrum with a kink: the weighted fit (weight 1/k on each squared residual) differs
    # from the unweighted one, and equals numpy's weighted polyfit (w = sqrt(1/k))
    k = np.arange(1, 257, dtype=float)
    lam = np.where(k < 40, k**-0.8, 40**-0.8 * (k / 40) ** -2.0)
    kk = np.arange(6, 101, dtype=float)
    x, y = np.log(kk), np.log(lam[5:100])
    weighted = -np.polyfit(x, y, 1, w=np.sqrt(1 / kk))[0]
    plain = -np.polyfit(x, y, 1)[0]
    assert abs(weighted - plain) > 0.05
    assert L.alpha_req_fit(lam) == pytest.approx(weighted, rel=1e-10)
    # order of the input does not matter; too few positive eigenvalues: nan
    assert L.alpha_req_fit(lam[::-1]) == pytest.approx(weighted, rel=1e-10)
    assert math.isnan(L.alpha_req_fit(np.r_[np.ones(7), np.zeros(100)]))


# ---------------------------------------------------------------------------- TwoNN


@pytest.mark.parametrize("dim", [2, 5, 10])
def test_twonn_finds_the_dimension_of_a_linear_subspace(dim: int) -> None:
    rng = np.random.default_rng(dim)
    x = rng.normal(size=(2000, dim)) @ rng.normal(size=(dim, 64))
    est = L.twonn(x)
    assert est == pytest.approx(dim, rel=0.12)
    # rotation- and scale-free; duplicated rows (r1 = 0) are left out, not infinite
    q, _ = np.linalg.qr(rng.normal(size=(64, 64)))
    assert L.twonn(1e3 * x @ q) == pytest.approx(est, rel=1e-6)
    assert math.isfinite(L.twonn(np.concatenate([x[:500], x[:50]])))


def test_twonn_subsamples_large_inputs_reproducibly() -> None:
    x = np.random.default_rng(0).normal(size=(3000, 4))
    assert L.twonn(x, max_points=1000) == L.twonn(x, max_points=1000)
    assert L.twonn(x, max_points=1000) == pytest.approx(4.0, rel=0.15)
    assert math.isnan(L.twonn(np.zeros((10, 3))))  # all duplicates


def test_twonn_is_a_metric_with_the_idest_direction() -> None:
    spec = L.metric_spec("twonn")
    assert spec.sign == -1 and not spec.needs_views  # lower intrinsic dimension: better
    z = np.random.default_rng(0).normal(size=(500, 16))
    assert L.label_free_metrics(z)["twonn"] == pytest.approx(L.twonn(z))


def test_lidar_needs_more_surrogate_classes_than_dimensions() -> None:
    # S_b of n classes has rank n - 1: with n < d LiDAR cannot exceed n - 1, whatever the
    # representation; the sweep uses n = 1000 images for d = 256
    rng = np.random.default_rng(0)
    views = rng.normal(size=(20, 5, 64)) + 3 * rng.normal(size=(20, 1, 64))
    assert L.lidar(views) <= 19.0 + 1e-6
    assert S.LIDAR_IMAGES > 256


# ---------------------------------------------------------------------- the design


def test_sweep_design_has_power() -> None:
    runs = S.sweep_runs()
    settings = S.sweep_settings()
    assert len(runs) == 108 and len({r.key() for r in runs}) == 108
    assert len(settings) == 36 and len({S.setting_key(dataclasses_dict(r)) for r in runs}) == 36
    # seeds in the outer loop: the first 36 runs are every setting once
    assert {S.setting_key(dataclasses_dict(r)) for r in runs[:36]} == {
        S.setting_key(dataclasses_dict(r)) for r in settings
    }
    for method in S.SWEEP_METHODS:
        mine = [r for r in settings if r.method == method]
        assert len(mine) == 9
        knob = [r.temperature if method == "simclr" else r.lr for r in mine]
        # Latin square: each width once per augmentation strength and once per knob level
        for level in set(knob):
            assert sorted(r.proj_width for r, k in zip(mine, knob, strict=True)
                          if k == level) == [32, 128, 512]  # fmt: skip
        for a in S.SWEEP_AUGMENT:
            assert sorted(r.proj_width for r in mine if r.augment == a) == [32, 128, 512]
    assert S.power_fisher(len(settings), 0.5, 0.05) >= 0.8


def dataclasses_dict(run: S.SweepRun) -> dict:
    import dataclasses

    return dataclasses.asdict(run)


def test_power_matches_known_values_and_simulation() -> None:
    # Fisher z with Spearman's variance 1.06 / (n - 3): n = 36 -> z shift = atanh(0.5) *
    # sqrt(33 / 1.06) = 3.066, power = Phi(3.066 - 1.960) + Phi(-3.066 - 1.960) = 0.8655
    assert S.power_fisher(36) == pytest.approx(0.8655, abs=5e-4)
    assert S.power_fisher(27) < 0.8 < S.power_fisher(34)
    assert S.power_simulated(36, sims=4000) == pytest.approx(S.power_fisher(36), abs=0.04)
    # no effect: the rejection rate is the level
    assert S.power_simulated(30, rho=0.0, sims=8000) == pytest.approx(0.05, abs=0.012)


# ---------------------------------------------------------------- seeds, regret, noise


def _run(method: str, seed: int, acc: float, setting: int, **metrics: float) -> S.RunResult:
    run = {"data": "d", "method": method, "seed": seed, "setting": setting}
    return S.RunResult(run, {m: 0.0 for m in L.METRIC_NAMES} | metrics, acc, acc - 0.1, 1.0)


def test_setting_means_average_the_seeds_only() -> None:
    runs = [_run("a", s, 0.80 + 0.01 * s, 0, rankme=10.0 + s) for s in range(3)]
    runs += [_run("a", s, 0.70, 1, rankme=5.0) for s in range(3)]
    runs.append(_run("a", 0, 0.75, 2, rankme=math.nan))
    means = {m.run["setting"]: m for m in S.setting_means(runs)}
    assert len(means) == 3
    assert means[0].linear == pytest.approx(0.81)
    assert means[0].metrics["rankme"] == pytest.approx(11.0)
    assert means[0].run["seed"] == [0, 1, 2] and means[0].seconds == 3.0
    assert math.isnan(means[2].metrics["rankme"])


def test_regret_is_the_accuracy_lost_by_the_pick() -> None:
    assert S.pick_regret([3.0, 1.0, 2.0], [0.7, 0.9, 0.8]) == pytest.approx(0.2)
    assert S.pick_regret([1.0, 3.0, 2.0], [0.7, 0.9, 0.8]) == 0.0
    assert S.pick_regret([math.nan, 1.0, 2.0], [0.95, 0.9, 0.8]) == pytest.approx(0.15)
    assert math.isnan(S.pick_regret([math.nan, math.nan], [0.5, 0.6]))
    # uniformity is oriented (lower is better): the lowest value is picked
    runs = [_run(m, s, acc, i, uniformity=u)
            for i, (m, acc, u) in enumerate([("a", 0.9, -3.0), ("a", 0.8, -1.0),
                                             ("b", 0.85, -2.0), ("b", 0.6, -4.0)])
            for s in range(2)]  # fmt: skip
    reg = S.regrets(runs)["d"]
    assert reg["uniformity"]["all"] == pytest.approx(30.0)  # picks b at 0.6, best 0.9
    assert reg["uniformity"]["a"] == 0.0
    assert reg["uniformity"]["b"] == pytest.approx(25.0)
    assert reg["uniformity"]["per_seed"] == pytest.approx([30.0, 30.0])
    assert reg["random"]["all"] == pytest.approx(
        100 * np.mean(0.9 - np.array([0.9, 0.8, 0.85, 0.6]))
    )


def test_noise_floor_separates_seed_noise_from_spread() -> None:
    runs = [_run("a", s, base + d, i)
            for i, base in enumerate([0.70, 0.75, 0.80, 0.85])
            for s, d in enumerate([-0.01, 0.0, 0.01])]  # fmt: skip
    nf = S.noise_floor(runs)["d"]
    assert nf["seed_sd"] == pytest.approx(1.0)  # points
    assert nf["between_sd"] == pytest.approx(100 * np.std([0.70, 0.75, 0.80, 0.85], ddof=1))
    assert nf["reliability"] == pytest.approx(1 - 1.0 / (3 * nf["between_sd"] ** 2))
    assert nf["range"] == pytest.approx([70.0, 85.0]) and nf["distinct"] == 12


# -------------------------------------------------------------- bootstrap level, trust


def test_bootstrap_interval_is_the_central_95_percent_of_resamples() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=25)
    y = 0.5 * x + rng.normal(size=25)
    rho, tau = S.bootstrap_correlation(x, y, n_boot=400, seed=7)
    idx = np.random.default_rng(7).integers(0, 25, size=(400, 25))
    boot_rho = [stats.spearmanr(x[i], y[i])[0] for i in idx]
    boot_tau = [stats.kendalltau(x[i], y[i])[0] for i in idx]
    assert S.LEVEL == 0.95
    assert (rho.lo, rho.hi) == pytest.approx(tuple(np.percentile(boot_rho, [2.5, 97.5])))
    assert (tau.lo, tau.hi) == pytest.approx(tuple(np.percentile(boot_tau, [2.5, 97.5])))


@pytest.mark.parametrize(
    ("worst_lo", "trust"),
    [(0.95, "high"), (0.7, "high"), (0.6999, "moderate"), (0.4, "moderate"),
     (0.3999, "low"), (1e-6, "low"), (0.0, "none"), (-0.3, "none"), (math.nan, "none"),
     (None, "none")],
)  # fmt: skip
def test_trust_lines(worst_lo: float | None, trust: str) -> None:
    assert R.trust_level(worst_lo) == trust


def _table(worst: dict[str, float], **extra: object) -> dict:
    metrics = {
        m: {"sign": L.metric_spec(m).sign, "needs_views": L.metric_spec(m).needs_views,
            "worst_lo": lo,
            "data": {"d": {"n": 36, "spearman": {"value": lo + 0.2, "lo": lo, "hi": lo + 0.4},
                           "within": {}, "kendall_within": {
                               "a": {"value": 0.5, "lo": 0.1, "hi": 0.8},
                               "b": {"value": 0.1, "lo": -0.3, "hi": 0.5}},
                           "regret": {"all": 1.25}, "regret_random": {"all": 4.5}}}}
        for m, lo in worst.items()
    }  # fmt: skip
    order = sorted(worst, key=lambda m: -worst[m])
    return {"target": "linear", **extra, "order": order, "metrics": metrics}


def _two_files(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for name, rank in (("low", 2), ("full", 16)):
        z = rng.normal(size=(200, rank)) @ rng.normal(size=(rank, 16))
        np.save(tmp_path / f"{name}.npy", z)
        paths.append(str(tmp_path / f"{name}.npy"))
    return paths


@pytest.mark.parametrize(("lo", "trust"), [(0.72, "high"), (0.45, "moderate"), (0.1, "low"),
                                           (-0.2, "none")])  # fmt: skip
def test_rank_trust_follows_the_tables_worst_lower_bound(
    tmp_path: Path, lo: float, trust: str
) -> None:
    v = tmp_path / "v.json"
    design = {"unit": "settings", "settings": 36, "seeds": [0, 1, 2], "runs": 108}
    v.write_text(json.dumps(_table({"rankme": lo, "uniformity": lo - 0.5}, design=design)))
    r = R.rank_runs(_two_files(tmp_path), validation=v)
    assert r.metric == "rankme" and r.trust == trust
    assert [Path(x.path).stem for x in r.runs] == ["full", "low"]
    text = "\n".join(r.notes)
    assert "36 settings x 3 seeds (108 runs)" in text
    assert "lost 1.25 points" in text and "random pick: 4.50" in text
    assert "within b the Kendall tau" in text  # a's interval excludes 0, b's does not
    assert ("not to be trusted" in text) == (trust == "none")


def test_shipped_table_is_consistent_with_rank(tmp_path: Path) -> None:
    table, _ = R.load_validation()
    assert table["level"] == S.LEVEL and table["bootstrap"] >= 1000
    assert table["design"]["unit"] == "settings"
    assert table["design"]["runs"] >= 100 and len(table["design"]["seeds"]) >= 3
    assert table["power"]["fisher_z"] >= 0.8 and table["power"]["simulated"] >= 0.8
    assert set(table["order"]) == set(L.METRIC_NAMES)
    lows = [table["metrics"][m]["worst_lo"] for m in table["order"]]
    lows = [-math.inf if v is None else v for v in lows]
    assert lows == sorted(lows, reverse=True)  # best first
    # rank on embedding files: the best metric that needs no views, and its trust line
    r = R.rank_runs(_two_files(tmp_path))
    best = next(m for m in table["order"] if not L.metric_spec(m).needs_views)
    assert r.metric == best
    assert r.trust == R.trust_level(table["metrics"][best]["worst_lo"])
    if all(R.trust_level(table["metrics"][m]["worst_lo"]) == "none" for m in table["order"]):
        assert any("not to be trusted" in n for n in r.notes)
