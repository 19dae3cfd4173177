"""The graded verdict: severity, warning, baseline comparison, classes, outliers, and the
one AlarmPolicy every monitor shares."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from collapselab.diagnose import Thresholds, measure, measure_array
from collapselab.errors import CollapseDetected, ConfigError, InputError
from collapselab.metrics import Moments
from collapselab.monitor import AlarmPolicy, CollapseMonitor

RNG = np.random.default_rng(11)


def unit_cloud(spread: float, n: int = 4000, d: int = 64) -> np.ndarray:
    """Rows c + noise of RMS ``spread`` (|c| = 1): random-pair cosine 1 / (1 + spread^2)."""
    c = np.zeros(d)
    c[0] = 1.0
    return c + spread * RNG.standard_normal((n, d)) / math.sqrt(d)


def test_severity_is_graded_on_the_spread_and_exact_at_its_lines() -> None:
    th = Thresholds()
    sev = []
    for s in (1.0, 0.5, 0.3, 0.25, 0.1):
        ms = measure_array(unit_cloud(s))
        sev.append(ms.severity)
    assert sev == sorted(sev)  # monotone as the rows converge
    assert sev[0] == 0.0 and sev[-1] == 1.0
    # exactly 0.5 at the warning line, 1 at the verdict line (log-linear in between)
    rv = th.warn_relative_variance
    ms = measure_array(unit_cloud(math.sqrt(rv / (1 - rv)), n=200000))
    assert ms.metrics.relative_variance == pytest.approx(rv, rel=0.02)
    assert ms.severity == pytest.approx(0.5, abs=0.02)


def test_warning_band_between_healthy_and_complete() -> None:
    onset = measure_array(unit_cloud(0.3))  # random-pair cosine 0.92
    assert onset.verdict == "healthy" and onset.warning is not None
    assert "converging towards one vector" in onset.warning
    assert "collapse may be under way" in onset.advice
    assert measure_array(unit_cloud(0.6)).warning is None  # cosine 0.74: anisotropic, fine
    assert measure_array(unit_cloud(0.1)).verdict == "complete"


def test_jing_dimensional_collapse_and_rank4_are_dimensional() -> None:
    # L2-normalised outputs with 99% of the variance in 6 of 64 directions (Jing et al.)
    basis = np.linalg.qr(RNG.standard_normal((64, 64)))[0]
    lam = np.r_[np.ones(6), np.full(58, 1e-5)]
    z = (RNG.standard_normal((4000, 64)) * np.sqrt(lam)) @ basis.T
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    ms = measure_array(z)
    assert ms.metrics.dims_99 == 6 and ms.effective_rank_fraction > 0.05  # not steep alone
    assert ms.verdict == "dimensional"
    assert next(e for e in ms.evidence if e.name == "dims_99_fraction").crossed
    rank4 = RNG.standard_normal((3000, 4)) @ RNG.standard_normal((4, 64))
    assert measure_array(rank4).verdict == "dimensional"


def test_steep_spectrum_with_a_long_tail_is_not_dimensional() -> None:
    # effective rank 0.1 of the reference, but variance in every direction: healthy SSL
    # representations and random encoders look like this
    lam = np.arange(1, 129, dtype=float) ** -1.5
    z = RNG.standard_normal((2000, 128)) * np.sqrt(lam)
    ms = measure_array(z)
    assert 0.05 < ms.effective_rank_fraction < 0.15 and ms.metrics.dims_99 > 64
    assert ms.verdict == "healthy"


def test_classes_make_rank_c_minus_1_expected() -> None:
    means = RNG.standard_normal((10, 64)) * 5
    y = RNG.integers(0, 10, 3000)
    z = means[y] + 0.05 * RNG.standard_normal((3000, 64))  # neural collapse: rank 9
    plain = measure_array(z)
    assert plain.verdict == "dimensional" and "--classes C" in plain.advice
    nc = measure_array(z, classes=10)
    assert nc.verdict == "healthy" and "C - 1 = 9" in nc.advice
    squashed = means[y % 2] + 0.05 * RNG.standard_normal((3000, 64))  # 10 classes, rank 1
    assert measure_array(squashed, classes=10).verdict == "dimensional"
    with pytest.raises(ConfigError):
        measure_array(z, classes=1)


def test_outliers_owning_the_spectrum_are_named() -> None:
    z = RNG.standard_normal((4000, 32))
    assert measure_array(z).warning is None
    z[:3] *= 1000.0
    ms = measure_array(z)
    assert ms.warning is not None and "outlier rows" in ms.warning


def test_baseline_ratios_overlap_and_relative_verdict() -> None:
    ref = unit_cloud(3.0)  # random-pair cosine 0.1 (a healthy text model's)
    same = measure_array(unit_cloud(3.0), ref)
    b = same.baseline
    assert b is not None and same.verdict == "healthy" and same.warning is None
    assert b.ratios["relative_variance"] == pytest.approx(1.0, abs=0.03)
    assert b.ratios["effective_rank"] == pytest.approx(1.0, abs=0.03)
    # spread down to 0.22 of it: not yet near one vector (cos 0.8), but clearly under way
    shrunk = measure_array(unit_cloud(0.5), ref)
    assert shrunk.verdict == "healthy" and shrunk.absolute_verdict == "healthy"
    assert shrunk.warning is not None and "against the baseline" in shrunk.warning
    assert shrunk.baseline is not None and shrunk.baseline.ratios["relative_variance"] < 0.5
    # lost > 90% of the spread and in the warning band: complete relative to the baseline
    gone = measure_array(unit_cloud(0.27), ref)  # cos 0.93
    assert gone.absolute_verdict == "healthy" and gone.verdict == "complete"
    # a rotated copy keeps the ratios but not the principal subspace
    q = np.linalg.qr(RNG.standard_normal((64, 64)))[0]
    lr = RNG.standard_normal((4000, 8)) @ RNG.standard_normal((8, 64))
    lr += 0.01 * RNG.standard_normal((4000, 64))
    ident = measure_array(lr, lr).baseline
    assert ident is not None and ident.subspace_overlap == pytest.approx(1.0, abs=1e-9)
    rot = measure_array(lr @ q, lr).baseline
    assert rot is not None and rot.subspace_overlap < 0.5
    with pytest.raises(InputError, match="columns"):
        measure_array(ref, ref[:, :10])


def test_measurement_json_has_the_contract_keys() -> None:
    ms = measure_array(unit_cloud(0.5), unit_cloud(1.0))
    out = json.loads(json.dumps(ms.to_dict()))
    assert {"verdict", "level", "headline", "severity", "warning", "absolute_verdict",
            "evidence", "baseline", "advice", "effective_rank"} <= out.keys()  # fmt: skip
    assert {"ratios", "ratio_notes", "finding", "subspace_overlap", "verdict",
            "warning"} <= out["baseline"].keys()  # fmt: skip
    assert out["level"] == ms.level == 1 and out["headline"] == ms.headline
    assert out["headline"].startswith("healthy on its own, but collapse under way against")


def test_measure_takes_a_measurement_as_baseline() -> None:
    ref = measure(Moments.of(unit_cloud(1.0)))
    ms = measure(Moments.of(unit_cloud(0.5)), baseline=ref)
    assert ms.baseline is not None and ms.baseline.ratios["relative_variance"] < 0.5


def test_alarm_policy_levels_patience_and_stop() -> None:
    healthy = torch.from_numpy(unit_cloud(1.0, n=256)).float()
    shrinking = [torch.from_numpy(unit_cloud(s, n=256)).float() for s in (0.9, 0.5, 0.45, 0.1)]
    seen: list[tuple[int, int]] = []
    policy = AlarmPolicy(lambda s: seen.append((s.step, s.level)), patience=2)
    mon = CollapseMonitor(every=1, window=1, alarm=policy)
    mon.update(healthy, 0)  # the baseline
    states = [mon.update(z, i + 1) for i, z in enumerate(shrinking)]
    assert [s.level for s in states if s] == [0, 1, 1, 3]  # healthy, warning x2, complete
    assert seen == [(3, 1), (4, 3)]  # warning twice in a row, then once per level reached
    assert mon.first_collapse_step == 3
    # level="complete" ignores warnings; "stop" sets should_stop instead of raising
    mon = CollapseMonitor(every=1, window=1, alarm=AlarmPolicy("stop", 1, level="complete"))
    mon.update(healthy, 0)
    for i, z in enumerate(shrinking):
        mon.update(z, i + 1)
        assert mon.should_stop == (i == 3)
    mon = CollapseMonitor(every=1, window=1, alarm=AlarmPolicy("raise", 1))
    mon.update(healthy, 0)
    mon.update(shrinking[0], 1)
    with pytest.raises(CollapseDetected, match="collapse under way"):
        mon.update(shrinking[1], 2)
    with pytest.raises(ConfigError):
        AlarmPolicy(level="bad")


def test_monitor_without_baseline_judges_absolutely() -> None:
    mon = CollapseMonitor(every=1, window=1, baseline=None, on_collapse="ignore")
    mon.update(torch.from_numpy(unit_cloud(1.0, n=256)).float(), 0)
    st = mon.update(torch.from_numpy(unit_cloud(0.5, n=256)).float(), 1)
    assert st is not None and st.measurement.baseline is None and st.warning is None
