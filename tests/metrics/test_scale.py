"""Rows far from unit scale (1e200, 1e-200) are accumulated in units of a power of two:
every scale-free metric and the verdict come out as for the same rows at unit scale,
scale-dependent ones are reported in those units (``scale_exp``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from collapselab.diagnose import judge
from collapselab.metrics import Moments, compute_metrics, summarize

SCALE_FREE = (
    "effective_rank", "rankme", "effective_rank_normalized", "numerical_rank",
    "participation_ratio", "dims_90", "dims_99", "power_law_alpha", "relative_variance",
    "std_of_l2_normalized", "mean_cosine", "max_cosine", "uniformity",
)  # fmt: skip


def _z(n: int = 3000, d: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.standard_normal((n, d)) * np.array([5.0, 3, 2, 1, 0.5, 0.1])[:d] + 2.0


@pytest.mark.parametrize("scale", [1e200, 1e-200, 2.0**-700, 1e120])
@pytest.mark.parametrize("n", [50, 3000])  # one block / parallel workers
def test_scale_free_metrics_and_verdict_do_not_depend_on_scale(scale: float, n: int) -> None:
    z = _z(n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref, big = compute_metrics(z), compute_metrics(z * scale)
    for k in SCALE_FREE:
        assert getattr(big, k) == pytest.approx(getattr(ref, k), rel=1e-9, abs=1e-12), k
    assert judge(big).verdict == judge(ref).verdict
    # scale-dependent ones are of z * 2**-scale_exp
    unit = 2.0 ** big.scale_exp
    assert (big.scale_exp != 0) == (not 2.0**-100 <= scale <= 2.0**100)
    for k in ("mean_norm", "max_norm", "min_norm", "std_norm"):
        assert getattr(big, k) * unit == pytest.approx(getattr(ref, k) * scale, rel=1e-9), k
    np.testing.assert_allclose(big.per_dim_std * unit, ref.per_dim_std * scale, rtol=1e-9)
    np.testing.assert_allclose(
        big.eigenvalues * (unit / scale) ** 2, ref.eigenvalues, rtol=1e-8, atol=1e-12
    )
    assert big.to_dict()["scale_exp"] == big.scale_exp


def test_rows_at_unit_scale_keep_scale_exp_zero() -> None:
    m = Moments.of(_z())
    assert m.scale_exp == 0
    assert m.to_array().size == Moments.of(_z() * 1e200).to_array().size - 1


def test_a_huge_chunk_after_normal_ones_rescales_the_state() -> None:
    z = _z(400)
    z[200:] *= 1e250
    m = Moments(6)
    m.update(z[:200]).update(z[200:])
    ref = Moments.of(z * 1e-250)
    assert m.scale_exp > 800
    a, b = summarize(m), summarize(ref)
    assert a.effective_rank == pytest.approx(b.effective_rank, rel=1e-9)
    assert a.relative_variance == pytest.approx(b.relative_variance, rel=1e-9)
    # the 200 unit-scale rows survive as (nearly) zero rows, not as NaN
    assert np.isfinite(a.std_of_l2_normalized)


def test_merge_pack_and_unpack_keep_the_units() -> None:
    z = _z(600)
    a, b = Moments.of(z[:300] * 1e200, seed=1), Moments.of(z[300:], seed=2)
    merged = Moments.from_array(a.copy().merge(b).to_array(), 6)
    assert merged.scale_exp == a.scale_exp
    whole = summarize(Moments.of(np.r_[z[:300] * 1e200, z[300:]]))
    assert summarize(merged).effective_rank == pytest.approx(whole.effective_rank, rel=1e-9)


def test_values_near_float64_max_overflow_nothing() -> None:
    z = np.full((5, 3), 1.7e308)
    z[:, 1] = -1.7e308
    z[0, 0] = 1e308
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        met = compute_metrics(z)
    assert met.n == 5 and met.scale_exp > 1000 and met.relative_variance < 0.05
    assert judge(met).verdict == "complete"


def test_all_non_finite_rows_leave_an_empty_accumulator() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = Moments.of(np.full((4, 3), np.inf, np.float16))
    assert (m.n, m.nonfinite_rows, m.first_nonfinite) == (0, 4, 0)
