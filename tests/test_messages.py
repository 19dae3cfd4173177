"""One consistent message: headline, warning and advice never contradict the verdict; one
level ladder; no ratio of two noise-level numbers; a matrix against itself adds nothing."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from collapselab.diagnose import (
    ADVICE,
    LEVEL,
    LEVEL_NAMES,
    Measurement,
    fails,
    measure_array,
)
from collapselab.errors import ConfigError
from collapselab.integrations._record import flat_metrics
from collapselab.metrics import compute_metrics
from collapselab.monitor import CollapseMonitor

D = 64


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def cloud(spread: float, seed: int, n: int = 4000) -> np.ndarray:
    """Rows e_1 + noise of RMS ``spread``: relative variance ~ spread^2 / (1 + spread^2)."""
    c = np.zeros(D)
    c[0] = 1.0
    return c + spread * rng(seed).standard_normal((n, D)) / math.sqrt(D)


def plane(relvar: float, seed: int, n: int = 4000) -> np.ndarray:
    """Rows in one fixed 2-d plane (plus 1e-4 noise), offset so that the relative variance
    is ``relvar``: dimensional on its own."""
    basis = np.linalg.qr(rng(99).standard_normal((D, 3)))[0].T  # 3 orthonormal rows
    g = rng(seed).standard_normal((n, 2)) @ basis[:2]  # centred variance 2
    off = math.sqrt(2.0 * (1.0 - relvar) / relvar) if relvar < 1 else 0.0
    return g + off * basis[2] + 1e-4 * rng(seed + 1).standard_normal((n, D))


Make = Callable[[], np.ndarray]

# (absolute verdict, relative verdict) -> (now, baseline); relative "warning" means the
# relative verdict is healthy with a relative warning
CASES: dict[tuple[str, str], tuple[Make, Make]] = {
    ("healthy", "healthy"): (lambda: cloud(3.0, 1), lambda: cloud(3.0, 2)),
    ("healthy", "warning"): (lambda: cloud(0.5, 1), lambda: cloud(3.0, 2)),
    ("healthy", "collapsed"): (lambda: cloud(0.27, 1), lambda: cloud(3.0, 2)),
    ("dimensional", "healthy"): (lambda: plane(0.9, 1), lambda: plane(0.9, 3)),
    ("dimensional", "warning"): (lambda: plane(0.3, 1), lambda: cloud(3.0, 2)),
    ("dimensional", "collapsed"): (lambda: plane(0.07, 1), lambda: cloud(3.0, 2)),
    ("complete", "healthy"): (lambda: cloud(0.1, 1), lambda: cloud(0.1, 2)),
    ("complete", "warning"): (lambda: cloud(0.1, 1), lambda: cloud(0.2, 2)),
    ("complete", "collapsed"): (lambda: cloud(0.1, 1), lambda: cloud(3.0, 2)),
}


def assert_consistent(ms: Measurement) -> None:
    """The rules every message obeys, whatever the case."""
    texts = {"headline": ms.headline, "warning": ms.warning or "", "advice": ms.advice}
    assert ms.level_name == LEVEL_NAMES[ms.level]
    if ms.collapsed:
        assert ms.level == LEVEL[ms.verdict] >= 2 and ms.severity == 1.0
        assert ms.headline.startswith(f"{ms.verdict} collapse")
        for name, text in texts.items():
            assert "healthy" not in text.lower(), (name, text)
            assert "under way" not in text, (name, text)
            assert "no collapse" not in text, (name, text)
        assert ms.advice.startswith(ADVICE[ms.verdict])
    else:
        assert ms.headline.startswith("healthy")
        for name, text in texts.items():
            assert "complete collapse" not in text and "dimensional collapse" not in text, (
                name,
                text,
            )
        if ms.warning is None:
            assert ms.level == 0
            assert "under way" not in ms.headline + ms.advice
            assert ms.advice.startswith("no collapse")
        else:
            assert ms.level == 1
            assert ms.headline.endswith(ms.warning)  # the headline carries the warning
            if ms.under_way:
                assert "under way" in ms.headline and "under way" in ms.advice
            assert not ms.advice.startswith("no collapse:")


@pytest.mark.parametrize(("absolute", "relative"), list(CASES))
def test_headline_warning_and_advice_never_contradict(absolute: str, relative: str) -> None:
    now, base = (f() for f in CASES[(absolute, relative)])
    ms = measure_array(now, base)
    b = ms.baseline
    assert b is not None
    # the case is what it says
    assert ms.absolute_verdict == absolute, ms.headline
    assert b.verdict == ("complete" if relative == "collapsed" else "healthy")
    assert (b.finding is not None) == (relative != "healthy"), b.ratios
    assert (b.warning is not None) == (relative == "warning")
    want = "complete" if relative == "collapsed" else absolute
    assert ms.verdict == want
    assert ms.level == {"healthy": 0 if relative == "healthy" else 1, "dimensional": 2,
                        "complete": 3}[want]  # fmt: skip
    assert_consistent(ms)
    # the relative finding is in the one line, phrased as the verdict asks
    if relative != "healthy":
        assert b.finding is not None and b.finding in ms.headline
        if ms.collapsed and absolute == ms.verdict:
            assert "; against the baseline too: " in ms.headline
    if relative == "warning" and absolute == "healthy":
        assert ms.headline.startswith("healthy on its own, but collapse under way against "
                                      "the baseline: the spread fell to 0.2")  # fmt: skip
    if relative == "collapsed" and absolute == "healthy":
        assert ms.headline.startswith("complete collapse relative to the baseline (not "
                                      "collapsed on its own, its spread 0.06")  # fmt: skip
    if relative == "collapsed" and absolute == "dimensional":
        assert ms.headline.startswith("complete collapse relative to the baseline "
                                      "(dimensional collapse on its own: ")  # fmt: skip
    if relative == "healthy":
        assert "baseline" not in (ms.warning or "")


def test_the_reported_case_complete_with_a_relative_warning() -> None:
    # `check tuned.npy --baseline ref.npy` printed COMPLETE and "collapse under way"
    ms = measure_array(cloud(0.1, 1), cloud(0.2, 2))
    assert ms.verdict == "complete" and ms.baseline is not None
    assert ms.baseline.warning is not None  # the comparison alone: under way
    assert ms.warning is None  # beside a complete verdict: not a warning any more
    assert ms.headline.startswith("complete collapse: all rows are nearly one vector")
    assert "; against the baseline too: the spread fell to 0.2" in ms.headline


def outliers(scale: float) -> np.ndarray:
    """Isotropic rows, the first 3 of them ``scale`` times longer."""
    z = rng(5).standard_normal((4000, 32))
    z[:3] *= scale
    return z


@pytest.mark.parametrize("kind", ["band", "outliers", "outliers-own", "healthy", "dimensional",
                                  "complete"])  # fmt: skip
def test_messages_without_baseline(kind: str) -> None:
    z = {
        "band": lambda: cloud(0.27, 5),
        "healthy": lambda: cloud(3.0, 5),
        "dimensional": lambda: plane(0.9, 5),
        "complete": lambda: cloud(0.1, 5),
        "outliers": lambda: outliers(10.0),  # a caveat beside a healthy verdict
        "outliers-own": lambda: outliers(1000.0),  # ... beside the collapse they make
    }[kind]()
    ms = measure_array(z)
    assert_consistent(ms)
    assert ms.level == {"band": 1, "outliers": 1, "outliers-own": 2, "healthy": 0,
                        "dimensional": 2, "complete": 3}[kind]  # fmt: skip
    if kind == "band":
        assert ms.under_way
        assert ms.headline.startswith("healthy, but collapse may be under way: spread 0.06")
    if kind.startswith("outliers"):  # a caveat is a warning, but not collapse under way
        assert not ms.under_way and ms.warning is not None and "outlier rows" in ms.warning
        assert ms.headline.endswith(ms.warning)
        assert "under way" not in ms.advice + ms.headline
    if kind == "healthy":
        assert ms.headline.startswith("healthy: effective rank ")


# ------------------------------------------------------------------- one level ladder
def test_one_level_ladder_everywhere() -> None:
    assert LEVEL == {"healthy": 0, "warning": 1, "dimensional": 2, "complete": 3}
    assert LEVEL_NAMES == tuple(LEVEL)
    cases = {0: measure_array(cloud(3.0, 1)), 1: measure_array(cloud(0.27, 1)),
             2: measure_array(plane(0.9, 1)), 3: measure_array(cloud(0.1, 1))}  # fmt: skip
    for level, ms in cases.items():
        assert ms.level == level
        sc = ms.scalars()
        assert sc["level"] == float(level) and "verdict_level" not in sc
        assert ms.to_dict()["level"] == level
        for on in ("warning", "dimensional", "complete"):
            assert fails(ms, on) == (level >= LEVEL[on])
    assert fails(cases[1], "warning") and not fails(cases[1], "dimensional")
    with pytest.raises(ConfigError, match="fail-on level"):
        fails(cases[0], "bad")
    # the monitor's state and every tracker read that same level, once
    mon = CollapseMonitor(every=1, window=1, on_collapse="ignore")
    states = [mon.update(z, i) for i, z in enumerate([cloud(3.0, 1, 512), cloud(0.5, 2, 512),
                                                      cloud(0.1, 3, 512)])]  # fmt: skip
    assert [s.level for s in states if s] == [0, 1, 3]
    for st in states:
        assert st is not None and st.level == st.measurement.level
        flat = flat_metrics(st)
        assert [k for k in flat if k.endswith("level")] == ["collapse/level"]
        assert flat["collapse/level"] == float(st.level)


# --------------------------------------------------------- ratios of noise-level numbers
def test_noise_scale_of_the_mean_cosine_is_its_isotropic_standard_error() -> None:
    from collapselab.diagnose import _cosine_noise, _cosine_se

    n, d = 200, 16
    draws = []
    for seed in range(300):
        u = rng(seed).standard_normal((n, d))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        s = u.sum(axis=0)
        draws.append((float(s @ s) - n) / (n * (n - 1)))
    m = compute_metrics(rng(1000).standard_normal((n, d)))
    sigma = _cosine_se(m)
    # the model: sqrt(2 / (d n (n - 1))) (q = 1 / d); the spread of 300 draws agrees
    assert sigma == pytest.approx(math.sqrt(2.0 / (d * n * (n - 1))), rel=0.1)
    assert float(np.std(draws)) == pytest.approx(sigma, rel=0.15)
    # "zero" is never finer than the -1/(n-1) bias of a centred sample
    assert _cosine_noise(m) == max(sigma, 1.0 / (n - 1))


def test_cosine_ratio_against_an_exactly_centred_baseline_is_not_a_number() -> None:
    base = rng(3).standard_normal((2000, 256))
    base -= base.mean(axis=0)  # mean pairwise cosine ~ -1/(n-1) = -5.0e-4, not noise-free 0
    tuned = 0.3 * base + 2.0  # rows pulled together: cosine ~ 0.98
    ms = measure_array(tuned, base)
    assert ms.baseline is not None
    assert ms.baseline.metrics.mean_cosine == pytest.approx(-1 / 1999, rel=0.2)
    assert ms.baseline.ratios["mean_cosine"] is None
    assert ms.baseline.ratio_notes["mean_cosine"] == "baseline near 0"


def test_ratio_of_two_near_zero_mean_cosines_is_not_a_number() -> None:
    a, b = rng(1).standard_normal((3000, D)), rng(2).standard_normal((3000, D))
    ms = measure_array(a, b)
    base = ms.baseline
    assert base is not None
    assert abs(ms.metrics.mean_cosine) < 1e-3 and abs(base.metrics.mean_cosine) < 1e-3
    assert base.ratios["mean_cosine"] is None
    assert base.ratio_notes == {"mean_cosine": "both near 0"}
    assert base.ratio_text("mean_cosine") == "n/a (both near 0)"
    assert base.to_dict()["ratio_notes"] == {"mean_cosine": "both near 0"}
    # the spread is far from 0: its ratio is a number, near 1
    assert base.ratios["relative_variance"] == pytest.approx(1.0, abs=0.01)
    assert base.ratio_text("relative_variance") == f"{base.ratios['relative_variance']:.3g}"


def test_ratio_of_a_genuine_change_is_the_expected_number() -> None:
    def cap(cos2: float, seed: int, n: int = 4000) -> np.ndarray:
        """Unit rows cos(t) e_1 + sin(t) v, v uniform on e_1's orthogonal sphere: the
        random-pair cosine is cos^2(t) exactly in expectation."""
        v = rng(seed).standard_normal((n, D))
        v[:, 0] = 0.0
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        e = np.zeros(D)
        e[0] = 1.0
        return math.sqrt(cos2) * e + math.sqrt(1.0 - cos2) * v

    now, ref = cap(0.3, 1), cap(0.6, 2)
    ms = measure_array(now, ref)
    assert ms.baseline is not None and "mean_cosine" not in ms.baseline.ratio_notes
    ratio = ms.baseline.ratios["mean_cosine"]
    assert ratio == pytest.approx(0.5, abs=0.005)

    def by_hand(z: np.ndarray) -> float:  # the mean of the off-diagonal cosine matrix
        u = z / np.linalg.norm(z, axis=1, keepdims=True)
        c = u @ u.T
        return float((c.sum() - np.trace(c)) / (len(z) * (len(z) - 1)))

    assert ratio == pytest.approx(by_hand(now) / by_hand(ref), rel=1e-9)


def test_ratio_over_a_near_zero_baseline_is_not_a_number_either() -> None:
    ms = measure_array(cloud(1.0, 1), rng(2).standard_normal((3000, D)))  # cosine 0.5 / ~0
    assert ms.baseline is not None and ms.baseline.ratios["mean_cosine"] is None
    assert ms.baseline.ratio_notes["mean_cosine"] == "baseline near 0"
    assert ms.baseline.ratio_text("mean_cosine") == "n/a (baseline near 0)"


def test_ratio_of_two_rounding_level_spreads_is_not_a_number() -> None:
    c = rng(3).standard_normal(D)

    def one_vector(scale: float, seed: int) -> np.ndarray:
        """100 copies of ``scale * c`` in float32, half the entries one ulp up."""
        z = np.tile(scale * c, (100, 1)).astype(np.float32)
        up = rng(seed).random(z.shape) < 0.5
        return np.where(up, np.nextafter(z, np.float32(np.inf)), z)

    ms = measure_array(one_vector(1.0, 1), one_vector(2.0, 2))
    assert ms.verdict == "complete" and ms.baseline is not None
    # spreads of ~2e-15 on both sides, pure rounding: their ratio (~1) means nothing
    assert 0 < ms.metrics.relative_variance < 1e-13
    assert 0 < ms.baseline.metrics.relative_variance < 1e-13
    assert ms.baseline.ratios["relative_variance"] is None
    assert ms.baseline.ratio_notes["relative_variance"] == "both near 0"
    assert ms.baseline.ratio_notes["effective_rank"] == "undefined"  # no direction at all
    assert ms.baseline.ratio_text("effective_rank") == "n/a (undefined)"
    assert_consistent(ms)


# ------------------------------------------------------- a matrix against itself: nothing
@pytest.mark.parametrize("make", [
    lambda: rng(1).standard_normal((2000, D)),  # isotropic: severity 0
    lambda: rng(1).standard_normal((2000, 128)) * np.arange(1, 129) ** -0.75,  # steep
    lambda: cloud(0.27, 1),  # in the spread's warning band
], ids=["isotropic", "steep", "band"])  # fmt: skip
def test_a_matrix_against_itself_is_judged_as_without_baseline(make: Make) -> None:
    z = make()
    alone, itself = measure_array(z), measure_array(z, z)
    b = itself.baseline
    assert b is not None and b.verdict == "healthy" and b.warning is None and b.finding is None
    assert b.ratios["relative_variance"] == 1.0 and b.severity == 0.0
    assert [e.severity for e in b.evidence] == [0.0, 0.0]
    assert itself.severity == alone.severity
    assert itself.warning == alone.warning and itself.level == alone.level
    assert itself.verdict == alone.verdict == "healthy"


def test_isotropic_against_itself_has_severity_zero_and_no_warning() -> None:
    z = rng(7).standard_normal((1000, 32))
    ms = measure_array(z, z)
    assert ms.severity == 0.0 and ms.warning is None and ms.level == 0
    assert ms.baseline is not None and ms.baseline.verdict == "healthy"


def test_relative_grade_is_zero_at_ratio_one_and_half_at_the_warning_line() -> None:
    from collapselab.diagnose import _grade

    assert _grade(1.0, 0.1, 0.5, healthy=1.0) == 0.0
    assert _grade(0.5, 0.1, 0.5, healthy=1.0) == pytest.approx(0.5)
    assert _grade(0.1, 0.1, 0.5, healthy=1.0) == pytest.approx(1.0)
    assert _grade(math.sqrt(0.5), 0.1, 0.5, healthy=1.0) == pytest.approx(0.25)  # log-mid
    assert _grade(2.0, 0.1, 0.5, healthy=1.0) == 0.0
    # the absolute default keeps its symmetric log scale: 0 at warn^2 / line
    assert _grade(0.2, 0.05, 0.1) == pytest.approx(0.0)
    assert _grade(0.1, 0.05, 0.1) == pytest.approx(0.5)
