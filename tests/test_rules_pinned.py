"""Verdict rules pinned by exact cases (issue 28): each test below fails under a plausible
mutant of the rule it names (the mutants tried are listed in each test's docstring).

The matrices are built so that the numbers the rules read are known exactly: an exactly
whitened Gaussian (covariance I, effective rank d) plus a mean vector sized so that the
spread ``relative_variance = trace(C) / E||z||^2`` is a chosen value; unit rows plus one
long row so that ``max ||z||^2 / mean ||z||^2`` is a chosen value.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from collapselab.cli import main
from collapselab.diagnose import Thresholds, fails, judge, measure_array
from collapselab.metrics import spectral
from collapselab.metrics.summary import EmbeddingMetrics


def white(n: int, d: int, seed: int, k: int | None = None) -> np.ndarray:
    """``(n, d)`` rows with mean 0 whose covariance (1/n convention) has exactly ``k``
    eigenvalues 1 and the rest 0 (default: all ``min(n - 1, d)`` that centred rows have):
    effective rank exactly ``k``."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    u, _, vt = np.linalg.svd(x - x.mean(0), full_matrices=False)
    k = min(n - 1, d) if k is None else k  # the left vectors kept are orthogonal to ones
    return u[:, :k] @ vt[:k] * math.sqrt(n)


def with_spread(c: np.ndarray, s: float) -> np.ndarray:
    """Centred rows ``c`` shifted by a mean so that the spread is exactly ``s``:
    ``trace(C) / (||mu||^2 + trace(C)) = s``."""
    t = float((c**2).sum()) / len(c)
    d = c.shape[1]
    return c + np.full(d, math.sqrt(t * (1.0 / s - 1.0) / d))


def with_outlier(ratio: float, n: int = 1000, d: int = 16, seed: int = 0) -> np.ndarray:
    """``n - 1`` unit rows and one row of squared norm ``r2`` with
    ``r2 / mean ||z||^2 = r2 n / (n - 1 + r2) = ratio``."""
    x = np.random.default_rng(seed).standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    r2 = ratio * (n - 1) / (n - ratio)
    x[0] = 0.0
    x[0, 0] = math.sqrt(r2)
    return x


# --------------------------------------------- 1. the "spread grew" exemption (absolute)
BAND = with_spread(white(500, 16, 0), 0.08)  # in the warning band [0.05, 0.1), isotropic


def test_spread_in_band_warns_without_baseline_and_against_itself() -> None:
    """Mutants: diagnose.py judge ``grown = ... metrics.relative_variance >
    baseline.relative_variance`` -> ``>=`` (a matrix against itself would be exempt);
    ``grown = baseline is not None`` (any baseline exempts)."""
    alone = measure_array(BAND)
    assert alone.metrics.relative_variance == pytest.approx(0.08, rel=1e-12)
    assert alone.verdict == "healthy" and alone.level == 1
    assert alone.evidence[0].name == "relative_variance" and alone.evidence[0].warned
    assert alone.warning is not None and "in the warning band" in alone.warning
    assert alone.severity == pytest.approx(1 - 0.5 * math.log(0.08 / 0.05) / math.log(2))
    itself = measure_array(BAND, BAND)  # not wider than its baseline: judged as alone
    assert itself.level == 1 and itself.warning == alone.warning
    assert itself.evidence[0].warned and itself.severity == alone.severity


def test_spread_in_band_wider_than_baseline_is_exempt_from_the_warning() -> None:
    """Mutants: diagnose.py _absolute ``if spread_grew and ev[0].warned and not
    ev[0].crossed`` -> ``if False and ...`` (exemption dropped); ``min(e.severity, 0.49)``
    -> ``e.severity`` (a grade at the warning line without a warning); judge's ``>`` -> ``<``
    (exemption applied when the spread shrank)."""
    narrower = with_spread(white(500, 16, 1), 0.06)
    ms = measure_array(BAND, narrower)
    assert ms.baseline is not None and ms.baseline.ratios["relative_variance"] == (
        pytest.approx(0.08 / 0.06, rel=1e-9))  # fmt: skip
    assert ms.verdict == "healthy" and ms.level == 0 and ms.warning is None
    e = ms.evidence[0]
    assert not e.warned and not e.crossed and e.meaning.endswith("wider than at the baseline")
    assert e.severity == 0.49 and ms.severity == 0.49
    assert not fails(ms, "warning")
    # shrinking from a wider baseline keeps the warning (0.08 / 0.09 > 0.5: no relative one)
    wider = with_spread(white(500, 16, 2), 0.09)
    shrank = measure_array(BAND, wider)
    assert shrank.level == 1 and shrank.evidence[0].warned
    assert shrank.baseline is not None and shrank.baseline.warning is None
    assert shrank.warning is not None and "in the warning band" in shrank.warning


def test_the_same_rows_in_another_order_did_not_grow() -> None:
    """Rounding is not growth: the rows reversed, or moved by 1e-9, are judged as against
    themselves (the exemption once fired on a 1e-17 difference of the spread)."""
    rng = np.random.default_rng(5)
    itself = measure_array(BAND, BAND)
    for other in (BAND[::-1], BAND + 1e-9 * rng.standard_normal(BAND.shape)):
        ms = measure_array(BAND, other)
        assert ms.level == itself.level == 1 and ms.warning == itself.warning


def test_spread_grew_never_lifts_a_complete_verdict() -> None:
    """Mutant: diagnose.py _absolute drop ``and not ev[0].crossed`` (the exemption would
    also clear the crossed complete line in the evidence)."""
    now = with_spread(white(500, 16, 3), 0.03)
    ms = measure_array(now, with_spread(white(500, 16, 4), 0.02))
    assert ms.verdict == "complete" and ms.absolute_verdict == "complete" and ms.level == 3
    assert ms.evidence[0].crossed and ms.evidence[0].severity == 1.0
    assert "wider than at the baseline" not in ms.evidence[0].meaning


# ------------------------------------------- 2. the relative effective-rank warning
BASE = with_spread(white(600, 32, 5), 0.9)  # effective rank exactly 32
LOW = white(600, 32, 6, k=12)  # effective rank exactly 12


def test_effective_rank_fallen_against_baseline_warns() -> None:
    """Mutants: diagnose.py _relative warn line ``th.baseline_rank_ratio`` ->
    ``th.baseline_rank_ratio ** 2`` (0.375 would pass); delete the ``if rank.warned:``
    finding; ``if grew:`` -> ``if True:``; Measurement.level ``1 if self.warning`` ->
    ``1 if any(e.warned for e in self.evidence)`` (the relative warning not counted)."""
    ms = measure_array(with_spread(LOW, 0.8), BASE)  # spread 0.8 / 0.9: not grown, > 0.5
    b = ms.baseline
    assert b is not None
    assert ms.metrics.effective_rank == pytest.approx(12.0, rel=1e-9)
    assert b.metrics.effective_rank == pytest.approx(32.0, rel=1e-9)
    assert b.ratios["effective_rank"] == pytest.approx(12 / 32, rel=1e-9)
    assert b.ratios["relative_variance"] == pytest.approx(0.8 / 0.9, rel=1e-9)
    assert ms.absolute_verdict == "healthy" and not any(e.warned for e in ms.evidence)
    assert ms.verdict == "healthy" and b.verdict == "healthy" and ms.level == 1
    assert b.warning == ("collapse under way against the baseline: the effective rank fell "
                         "to 0.38 of the baseline's (32 -> 12)")  # fmt: skip
    assert ms.warning == b.warning and ms.under_way
    rank = b.evidence[1]
    assert rank.name == "effective_rank_vs_baseline" and rank.warned and not rank.crossed
    assert rank.warn_threshold == 0.5
    assert fails(ms, "warning") and not fails(ms, "dimensional")


def test_effective_rank_fall_is_exempt_while_the_spread_grows() -> None:
    """Mutants: diagnose.py _relative ``if grew:`` block deleted; ``grew = ... >`` ->
    ``<``."""
    ms = measure_array(with_spread(LOW, 0.95), BASE)  # spread 0.95 > 0.9: learning
    b = ms.baseline
    assert b is not None and b.ratios["effective_rank"] == pytest.approx(0.375, rel=1e-9)
    assert not b.evidence[1].warned and b.evidence[1].severity == 0.0
    assert b.warning is None and b.finding is None and ms.level == 0


def test_effective_rank_ratio_is_against_each_isotropic_reference() -> None:
    """Mutant: diagnose.py _relative ``_ratio(m.effective_rank / m.isotropic_effective_rank,
    base.effective_rank / base.isotropic_effective_rank)`` -> ``_ratio(m.effective_rank,
    base.effective_rank)``: 20 isotropic rows have effective rank ~14 against 32 for 600
    rows (raw ratio < 0.5), yet are as spread as the reference allows."""
    few = with_spread(np.random.default_rng(7).standard_normal((20, 32)), 0.85)
    ms = measure_array(few, BASE)
    b = ms.baseline
    assert b is not None
    assert ms.metrics.effective_rank / b.metrics.effective_rank < 0.5  # raw ratio
    assert b.ratios["effective_rank"] == pytest.approx(
        ms.metrics.effective_rank / ms.metrics.isotropic_effective_rank / (32 / (32 * math.exp(
            -32 / (2 * 599)))), rel=1e-9)  # fmt: skip
    assert b.ratios["effective_rank"] > 0.5
    assert not b.evidence[1].warned and b.warning is None and ms.level == 0


def test_effective_rank_warning_boundaries_exact() -> None:
    """On exact metrics (``judge``): at the same spread (rho == 1, "did not grow") the rank
    warning counts; at exactly half of the baseline it does not (below half does).
    Mutants: diagnose.py _relative ``grew = m.relative_variance >
    base.relative_variance`` -> ``>=``; (_evidence ``not (value >= warn)`` ->
    ``value <= warn`` fires at exactly 0.5)."""
    base = measure_array(BASE).metrics

    def now(rank_ratio: float) -> EmbeddingMetrics:
        return dataclasses.replace(base, effective_rank=base.effective_rank * rank_ratio)

    below = judge(now(0.25 + 0.2), baseline=base)  # same spread, rank 0.45
    assert below.baseline is not None and below.baseline.ratios["relative_variance"] == 1.0
    assert below.baseline.evidence[1].warned and below.level == 1
    assert below.warning is not None and "effective rank fell to 0.45" in below.warning
    half = judge(now(0.5), baseline=base)
    assert half.baseline is not None and half.baseline.ratios["effective_rank"] == 0.5
    assert not half.baseline.evidence[1].warned and half.level == 0


# ------------------------------------------------------------ 3. --fail-on warning
def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(argv)
    return rc, capsys.readouterr().err


def test_fail_on_warning_exits_1_on_every_kind_of_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A healthy verdict with a warning (the spread's band, a relative warning, a caveat)
    fails ``--fail-on warning`` and passes ``--fail-on dimensional``.
    Mutants: cli.py _cmd_check ``failed = args.fail_on is not None and fails(dg,
    args.fail_on)`` -> ``... and dg.collapsed and fails(...)``; diagnose.py fails()
    ``measurement.level >= LEVEL[on]`` -> ``measurement.level >= max(LEVEL[on], 2)``;
    Measurement.level ``1 if self.warning else 0`` -> ``1 if self.under_way else 0``
    (caveats not counted)."""
    paths = {}
    for name, z in (("band", BAND), ("low", with_spread(LOW, 0.8)), ("base", BASE),
                    ("outlier", with_outlier(60.0)), ("iso", white(500, 16, 8))):  # fmt: skip
        paths[name] = str(tmp_path / f"{name}.npy")
        np.save(paths[name], z)
    cases = {"band": [paths["band"]], "relative": [paths["low"], "--baseline", paths["base"]],
             "outlier": [paths["outlier"]]}  # fmt: skip
    for name, args in cases.items():
        ms = measure_array(np.load(args[0]), None if len(args) == 1 else np.load(args[2]))
        assert ms.verdict == "healthy" and ms.level == 1, name
        assert fails(ms, "warning") and not fails(ms, "dimensional"), name
        rc, err = _cli(["check", *args, "--fail-on", "warning"], capsys)
        assert rc == 1, name
        assert err == (f"collapselab check: --fail-on warning triggered: warning (level 1, "
                       f"severity {ms.severity:.2f})\n"), name  # fmt: skip
        assert _cli(["check", *args, "--fail-on", "dimensional"], capsys) == (0, ""), name
    assert _cli(["check", paths["iso"], "--fail-on", "warning"], capsys) == (0, "")


# --------------------------------------------------------------- 4. the outlier ratio
def test_outlier_caveat_fires_above_fifty_times_the_mean_squared_norm() -> None:
    """Mutants: diagnose.py _absolute ``m.max_norm**2 / m.mean_sq_norm`` ->
    ``m.max_norm / m.mean_sq_norm`` (no caveat at 50.5); -> ``m.max_norm**2 /
    m.mean_norm**2`` (about 51.4 at 49.5: a caveat); Thresholds.outlier_norm_ratio 50.0 ->
    40.0 / 100.0."""
    over = measure_array(with_outlier(50.5))
    assert over.metrics.max_norm**2 / over.metrics.mean_sq_norm == pytest.approx(50.5)
    assert over.verdict == "healthy" and over.level == 1 and not over.under_way
    assert over.warning == ("the longest row has 50.5x the mean squared norm: a few outlier "
                            "rows own the spectrum; drop or clip them and check again")  # fmt: skip
    under = measure_array(with_outlier(49.5))
    assert under.metrics.max_norm**2 / under.metrics.mean_sq_norm == pytest.approx(49.5)
    assert under.verdict == "healthy" and under.warning is None and under.level == 0


def test_outlier_ratio_boundary_is_strict() -> None:
    """Exactly 50x is not "more than 50 times" (``judge`` on exact metrics: 10^2 / 2).
    Mutant: diagnose.py _absolute ``if ratio > th.outlier_norm_ratio`` -> ``>=``."""
    m = measure_array(white(500, 16, 9)).metrics
    at = judge(dataclasses.replace(m, max_norm=10.0, mean_sq_norm=2.0))
    assert at.warning is None and at.level == 0
    above = judge(dataclasses.replace(m, max_norm=10.0, mean_sq_norm=1.99))
    assert above.warning is not None and "50.3x the mean squared norm" in above.warning
    assert Thresholds().outlier_norm_ratio == 50.0


# ------------------------------------------- 5. the isotropic reference's n - 1
def _mp_erank(n: int, d: int) -> float:
    """Closed form: the Marchenko-Pastur law of ratio g (mean 1) has E[x log x] = g / 2, so
    ``exp(H) = m exp(-g / 2)`` with ``m = min(n - 1, d)`` non-zero eigenvalues (centring
    removes one of n) and ``g = m / max(n - 1, d)``."""
    m, big = min(n - 1, d), max(n - 1, d)
    return m * math.exp(-m / (2 * big))


@pytest.mark.parametrize(
    ("n", "d", "value"),
    [
        (65, 64, 64 * math.exp(-0.5)),  # n - 1 = d: g = 1, the quarter circle
        (64, 64, 63 * math.exp(-63 / 128)),  # n = d: only n - 1 = 63 directions
        (33, 64, 32 * math.exp(-0.25)),
        (65, 32, 32 * math.exp(-0.25)),  # (n - 1, d) transposed: the same spectrum
        (1001, 16, 16 * math.exp(-0.008)),
        (3, 1000, 2 * math.exp(-0.001)),  # 3 rows centred span 2 directions
    ],
)
def test_isotropic_reference_exact(n: int, d: int, value: float) -> None:
    """Mutants: metrics/spectral.py isotropic_effective_rank ``m = max(1, min(n - 1, d))``
    -> ``min(n, d)`` (fails at (64, 64), (33, 64), (3, 1000)); ``big = max(n - 1, d)`` ->
    ``max(n, d)`` (fails at (65, 32), (1001, 16)); ``m = d`` (fails at (33, 64), (3, 1000))."""
    assert _mp_erank(n, d) == pytest.approx(value, rel=1e-15)
    assert spectral.isotropic_effective_rank(n, d) == pytest.approx(value, rel=1e-9)


def test_measured_reference_uses_the_row_count() -> None:
    """Mutant: metrics/summary.py ``isotropic_effective_rank(n, d)`` -> ``(n + 1, d)`` /
    ``(d, n)``; and the verdict's fraction is erank / that reference."""
    ms = measure_array(white(40, 64, 10))  # 40 centred rows: 39 directions, erank exactly 39
    assert ms.metrics.effective_rank == pytest.approx(39.0, rel=1e-9)
    ref = 39 * math.exp(-39 / 128)
    assert ms.metrics.isotropic_effective_rank == pytest.approx(ref, rel=1e-9)
    assert ms.effective_rank_fraction == pytest.approx(39.0 / ref, rel=1e-9)
    frac = next(e for e in ms.evidence if e.name == "effective_rank_fraction")
    assert frac.value == pytest.approx(39.0 / ref, rel=1e-9)
