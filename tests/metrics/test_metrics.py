"""Exact-value and property tests of the metrics room.

Tolerances: float64 accumulation of float64 data is exact to ~1e-12 relative; we use
1e-9 where the reference is another float64 computation (different summation order),
and state a wider bound where sampling or finite-size fluctuations enter.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from collapselab.errors import InputError
from collapselab.metrics import Moments, compute_metrics, summarize
from collapselab.metrics import spectral as sp
from collapselab.metrics.geometry import alignment, std_of_l2_normalized, uniformity

RNG = np.random.default_rng(1234)


def _entropy_rank(w: np.ndarray) -> float:
    p = w / w.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


# ----------------------------------------------------------------------------- exact values
def test_collapsed_batch_is_exactly_degenerate() -> None:
    c = RNG.standard_normal(16)
    z = np.tile(c, (100, 1))
    m = compute_metrics(z)
    assert m.total_variance == pytest.approx(0.0, abs=1e-24)
    assert m.relative_variance == pytest.approx(0.0, abs=1e-24)
    assert m.std_of_l2_normalized == pytest.approx(0.0, abs=1e-7)
    assert m.mean_cosine == pytest.approx(1.0, abs=1e-12)
    assert m.uniformity == pytest.approx(0.0, abs=1e-6)  # every pair at distance 0 (float32)
    # uncentred second moment: rank 1 with lambda_1 = |c|^2 (the article's rank(Z) = 1)
    assert m.uncentered_eigenvalues[0] == pytest.approx(float(c @ c), rel=1e-12)
    assert m.numerical_rank_uncentered == 1
    assert m.numerical_rank == 0  # centred covariance C = 0: no direction of variance
    assert math.isnan(m.effective_rank)


def test_eye_gives_one_over_sqrt_d() -> None:
    d = 32
    m = compute_metrics(np.eye(d))
    assert m.std_of_l2_normalized == pytest.approx(1 / math.sqrt(d), rel=1e-12)
    assert std_of_l2_normalized(torch.eye(d)) == pytest.approx(1 / math.sqrt(d), rel=1e-12)
    assert m.mean_cosine == pytest.approx(0.0, abs=1e-15)
    assert m.max_cosine == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("n,d", [(20000, 50), (4000, 200), (3000, 1000)])
def test_isotropic_gaussian_within_marchenko_pastur_edges(n: int, d: int) -> None:
    z = RNG.standard_normal((n, d)).astype(np.float32) * 3.0
    m = compute_metrics(z)
    lo, hi = sp.marchenko_pastur_edges(n, d, variance=9.0)
    # finite-size edge fluctuations are O(n^{-2/3}) (Tracy-Widom); 5% covers them at these n
    assert m.eigenvalues[0] <= hi * 1.05
    assert m.eigenvalues[0] >= hi * 0.9
    assert m.eigenvalues[-1] >= lo * 0.9
    assert m.eigenvalues[-1] <= lo * 1.2 + 1e-9
    # MP reference of the effective rank: within 1%
    assert m.effective_rank == pytest.approx(m.isotropic_effective_rank, rel=0.01)
    assert m.std_of_l2_normalized == pytest.approx(1 / math.sqrt(d), rel=0.02)
    assert abs(m.mean_cosine) < 5e-3


@pytest.mark.parametrize("r", [1, 3, 17])
def test_rank_r_construction_gives_numerical_rank_r(r: int) -> None:
    n, d = 3000, 64
    a = RNG.standard_normal((n, r))
    b = RNG.standard_normal((r, d))
    z = (a @ b).astype(np.float32)  # rank r up to float32 rounding
    m = compute_metrics(z)
    assert m.numerical_rank == r
    assert m.numerical_rank_uncentered == r


@pytest.mark.parametrize("offset", [1e2, 1e4])
def test_nearly_collapsed_matches_float64_svd(offset: float) -> None:
    # z_i = c + eps_i, |c| >> |eps|, half the directions 3e-3 smaller, rotated so no axis
    # is special: the case where float32 Z^T Z loses every small eigenvalue.
    n, d = 10000, 128
    c = RNG.standard_normal(d) * offset
    q, _ = np.linalg.qr(RNG.standard_normal((d, d)))
    scales = np.r_[np.ones(d // 2), np.full(d // 2, 3e-3)]  # variance ratio 1e-5
    z = (c + (RNG.standard_normal((n, d)) * scales) @ q.T).astype(np.float32)
    z64 = z.astype(np.float64)
    ref = np.linalg.svd(z64 - z64.mean(0), compute_uv=False) ** 2 / n
    m = compute_metrics(z)
    keep = ref > 1e-6 * ref[0]
    rel = np.abs(m.eigenvalues[keep] - ref[keep]) / ref[keep]
    assert rel.max() < 1e-5  # the accuracy target
    assert m.clipped_eigenvalues == 0
    # the naive float32 uncentred computation really fails here (the bug we guard against)
    zt = torch.from_numpy(z)
    naive = torch.linalg.eigvalsh(zt.T @ zt / n - torch.outer(zt.mean(0), zt.mean(0)))
    naive = naive.flip(0).double().numpy()
    assert np.max(np.abs(naive[keep] - ref[keep]) / ref[keep]) > 1.0


def test_rankme_matches_paper_definition_on_singular_values() -> None:
    z = RNG.standard_normal((500, 40)) @ np.diag(np.linspace(0.1, 3, 40)) + 0.5
    m = compute_metrics(z)
    s = np.linalg.svd(z, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert m.rankme == pytest.approx(float(np.exp(-(p * np.log(p)).sum())), rel=1e-9)


def test_centred_sigma2_and_normalized_adapters() -> None:
    n = 300
    z = RNG.standard_normal((n, 20)) @ RNG.standard_normal((20, 20)) + 2.0
    m = compute_metrics(z)
    sc = np.linalg.svd(z - z.mean(0), compute_uv=False)
    # reptrix: entropy of sklearn's explained_variance_ratio_ = sigma^2 of centred data
    evr = sc**2 / (sc**2).sum()
    assert sp.effective_rank_centered_sigma2(m.eigenvalues) == pytest.approx(
        _entropy_rank(evr), rel=1e-9
    )
    assert m.effective_rank == pytest.approx(_entropy_rank(sc**2), rel=1e-9)
    # MONAI: entropy rank of centred singular values / min(N - 1, d)
    assert m.effective_rank_normalized == pytest.approx(_entropy_rank(sc) / 20, rel=1e-9)


def test_participation_ratio_dims_and_power_law() -> None:
    assert sp.participation_ratio(np.ones(10)) == pytest.approx(10.0)
    assert sp.participation_ratio(np.r_[5.0, np.zeros(9)]) == pytest.approx(1.0)
    lam = np.arange(1, 101, dtype=float) ** -2.0
    fit = sp.power_law_alpha(lam)
    assert fit.alpha == pytest.approx(2.0, rel=1e-9) and fit.r2 == pytest.approx(1.0)
    assert sp.dims_for_variance(np.array([6.0, 3.0, 1.0]), 0.9) == 2
    assert sp.dims_for_variance(np.array([6.0, 3.0, 1.0]), 0.99) == 3
    assert sp.effective_rank(np.ones(7)) == pytest.approx(7.0)


def test_pairwise_statistics_against_brute_force() -> None:
    z = RNG.standard_normal((300, 8)) + 0.7
    z2 = z + 0.1 * RNG.standard_normal(z.shape)
    m = compute_metrics(z, z2, sample_size=1000)  # sample holds every row
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    u2 = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    cos = u @ u.T
    iu = np.triu_indices(300, 1)
    assert m.mean_cosine == pytest.approx(cos[iu].mean(), rel=1e-10)
    assert m.max_cosine == pytest.approx(cos[iu].max(), rel=1e-12)
    d2 = 2 - 2 * cos[iu]
    # float32 cosine tiles (see pair_tiles): within 1e-7 of the float64 brute force
    assert m.uniformity == pytest.approx(math.log(np.exp(-2 * d2).mean()), abs=1e-7)
    assert uniformity(torch.from_numpy(z), block=37) == pytest.approx(
        math.log(np.exp(-2 * d2).mean()), rel=1e-10)  # fmt: skip
    ref_align = float((np.linalg.norm(u - u2, axis=1) ** 2).mean())
    assert m.alignment == pytest.approx(ref_align, rel=1e-10)
    assert alignment(z, z2) == pytest.approx(ref_align, rel=1e-10)


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
@pytest.mark.parametrize(("n", "block"), [(300, 37), (257, 256), (64, 256)])
def test_pair_tiles_in_parts_cover_every_pair_once(parts: int, n: int, block: int) -> None:
    """The parts summarize runs side by side deal out the triangle's tiles: together they
    must give the brute-force sum over every pair i < j exactly once."""
    from collapselab.metrics.geometry import combine_pair_tiles, pair_tiles, unit_sample

    u = unit_sample(RNG.standard_normal((n, 6)) + 0.3)
    assert u is not None
    cos = (u @ u.T)[np.triu_indices(n, 1)]
    unif, best = combine_pair_tiles(
        [pair_tiles(u, k, parts, block=block) for k in range(parts)], n)  # fmt: skip
    assert unif == pytest.approx(math.log(np.exp(-4 + 4 * cos).mean()), abs=1e-7)
    assert best == pytest.approx(cos.max(), rel=1e-14)


@pytest.mark.parametrize("case", ["isotropic", "nearly_collapsed", "anisotropic", "d4096"])
def test_float32_pair_tiles_stay_within_their_documented_error(case: str) -> None:
    """pair_tiles forms cosines in float32: at d = 768 (and 4096) the uniformity stays
    within 1e-7 of float64 brute force and the max cosine within 1e-6 (it is recomputed
    in float64; only a near-tie can pick another pair), near collapse too."""
    from collapselab.metrics.geometry import combine_pair_tiles, pair_tiles, unit_sample

    rng = np.random.default_rng(1)
    n, d = (1024, 4096) if case == "d4096" else (2048, 768)
    z = {
        "isotropic": lambda: rng.standard_normal((n, d)),
        "nearly_collapsed": lambda: 1 + 1e-3 * rng.standard_normal((n, d)),
        "anisotropic": lambda: rng.standard_normal((n, d)) * np.logspace(0, -4, d) + 0.2,
        "d4096": lambda: rng.standard_normal((n, d)),
    }[case]()
    u = unit_sample(z)
    assert u is not None
    cos = (u @ u.T)[np.triu_indices(n, 1)]
    unif, best = combine_pair_tiles([pair_tiles(u, k, 2) for k in range(2)], n)
    assert unif == pytest.approx(math.log(np.exp(-4 + 4 * cos).mean()), abs=1e-7)
    assert best == pytest.approx(cos.max(), abs=1e-6)


def test_uniformity_never_minus_inf_for_spread_small_batches() -> None:
    # two antipodal points at t=2: exp(-8) ... fine; at t=200 a naive exp underflows to 0
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert uniformity(z, t=200) == pytest.approx(-800.0)


# ----------------------------------------------------------------------------- streaming
def test_merge_equals_whole_and_chunking_is_irrelevant() -> None:
    z = RNG.standard_normal((9001, 24)) * RNG.uniform(0.1, 5, 24) + 3.0
    whole = Moments.of(z)
    parts = [
        Moments(24, seed=i).update(z[a:b])
        for i, (a, b) in enumerate([(0, 1), (1, 4000), (4000, 9001)])
    ]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.n == whole.n == 9001
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.scatter, whole.scatter, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(merged.unit_sum, whole.unit_sum, rtol=1e-10)
    np.testing.assert_allclose(merged.unit_sq_sum, whole.unit_sq_sum, rtol=1e-10)
    a, b = summarize(merged), summarize(whole)
    for key in ("effective_rank", "std_of_l2_normalized", "mean_cosine", "total_variance"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-9)
    ref = np.cov(z.T, bias=True)
    np.testing.assert_allclose(whole.covariance(), ref, rtol=1e-9, atol=1e-10)


def test_nonfinite_rows_are_counted_and_excluded() -> None:
    z = RNG.standard_normal((50, 4))
    z[7, 2] = np.nan
    z[30, 0] = np.inf
    m = Moments.of(z)
    assert (m.nonfinite_rows, m.first_nonfinite, m.n) == (2, 7, 48)
    clean = Moments.of(np.delete(z, [7, 30], axis=0))
    np.testing.assert_allclose(m.scatter, clean.scatter, rtol=1e-12)
    # the row sample holds every finite row (48 < 2048) and no NaN/Inf row
    assert m.sample_rows.shape == (48, 4) and np.isfinite(m.sample_rows).all()


def test_nonfinite_rows_in_parallel_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    import collapselab.metrics.moments as mom

    monkeypatch.setattr(mom, "_WORKERS", 2)  # two row ranges: 0:2500 and 2500:5000
    z = RNG.standard_normal((5000, 8)).astype(np.float32)
    z[[2600, 4100], [1, 5]] = np.nan
    m = Moments.of(z, sample_size=4000)
    assert (m.nonfinite_rows, m.first_nonfinite, m.n, m.rows_seen) == (2, 2600, 4998, 5000)
    clean = Moments.of(np.delete(z, [2600, 4100], axis=0))
    np.testing.assert_allclose(m.scatter, clean.scatter, rtol=1e-9)
    assert m.sample_rows.shape == (4000, 8) and np.isfinite(m.sample_rows).all()


def test_torch_and_low_precision_inputs() -> None:
    z = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    for t in (z, z.half(), z.bfloat16(), z.to(torch.float64)):
        m = compute_metrics(t)
        ref = compute_metrics(t.double().numpy())
        assert m.effective_rank == pytest.approx(ref.effective_rank, rel=1e-6)
    assert compute_metrics(np.arange(40).reshape(10, 4)).n == 10  # ints


def test_sample_is_uniform_bottom_k() -> None:
    m = Moments(1, sample_size=500, seed=3)
    for start in range(0, 100000, 7000):
        m.update(np.arange(start, min(start + 7000, 100000), dtype=float)[:, None])
    s = m.sample_rows[:, 0]
    assert s.size == 500 and np.unique(s).size == 500
    assert abs(s.mean() - 50000) < 4 * 100000 / math.sqrt(12 * 500)  # 4 sigma


def test_sample_keys_depend_on_the_row_position_only() -> None:
    """Counter-based keys: one feed, the same rows in other chunks, and a feed stopped,
    saved to bytes and resumed all keep the same sample (and so the same pair metrics);
    another seed keeps another one."""
    z = RNG.standard_normal((5000, 3))
    whole = Moments(3, sample_size=300, seed=7).update(z)
    parts = Moments(3, sample_size=300, seed=7)
    for a, b in ((0, 1), (1, 999), (999, 3100), (3100, 5000)):
        parts.update(z[a:b])
    half = Moments(3, sample_size=300, seed=7).update(z[:2500])
    resumed = Moments.from_bytes(half.to_bytes()).update(z[2500:])
    order = np.argsort(whole.sample_keys)
    for other in (parts, resumed):
        o = np.argsort(other.sample_keys)
        np.testing.assert_array_equal(other.sample_keys[o], whole.sample_keys[order])
        np.testing.assert_array_equal(other.sample_rows[o], whole.sample_rows[order])
    other_seed = Moments(3, sample_size=300, seed=8).update(z)
    assert len(set(other_seed.sample_keys) & set(whole.sample_keys)) < 10


# ----------------------------------------------------------------------------- properties
mats = st.tuples(st.integers(3, 40), st.integers(1, 8), st.integers(0, 2**31 - 1))


@settings(max_examples=30, deadline=None)
@given(mats)
def test_invariances(spec: tuple[int, int, int]) -> None:
    n, d, seed = spec
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d)) * rng.uniform(0.1, 3, d) + rng.standard_normal(d)
    base = compute_metrics(z)
    # row order
    perm = compute_metrics(z[rng.permutation(n)])
    np.testing.assert_allclose(perm.eigenvalues, base.eigenvalues, rtol=1e-9, atol=1e-12)
    # rotation of the space leaves the spectrum unchanged
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    rot = compute_metrics(z @ q)
    np.testing.assert_allclose(rot.eigenvalues, base.eigenvalues, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        rot.uncentered_eigenvalues, base.uncentered_eigenvalues, rtol=1e-8, atol=1e-10
    )
    # scaling by s scales eigenvalues by s^2, leaves ranks and cosines unchanged
    s = 7.5
    sc = compute_metrics(z * s)
    np.testing.assert_allclose(sc.eigenvalues, base.eigenvalues * s**2, rtol=1e-9, atol=1e-10)
    assert sc.mean_cosine == pytest.approx(base.mean_cosine, rel=1e-9, abs=1e-12)
    if base.total_variance > 1e-9 * base.mean_sq_norm:
        assert sc.effective_rank == pytest.approx(base.effective_rank, rel=1e-8)
    # translation leaves the centred spectrum unchanged
    tr = compute_metrics(z + 10.0)
    np.testing.assert_allclose(tr.eigenvalues, base.eigenvalues, rtol=1e-7, atol=1e-9)


def test_state_roundtrips_through_an_array() -> None:
    z = RNG.standard_normal((500, 6)) + 2.0
    z[10] = np.nan
    m = Moments(6, sample_size=64).update(z, paired=z + 0.1)
    back = Moments.from_array(m.to_array(), 6, 64)
    a, b = summarize(m), summarize(back)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    assert (a.uniformity, a.alignment, a.nonfinite_rows) == (b.uniformity, b.alignment, 1)
    assert back.first_nonfinite == 10 and back.rows_seen == 500


def test_state_bytes_roundtrip_and_refuse_other_versions_and_shapes() -> None:
    import struct

    z = RNG.standard_normal((500, 6)) + 2.0
    z[10] = np.nan
    m = Moments(6, sample_size=64, seed=3).update(z, paired=z + 0.1)
    data = m.to_bytes()
    # the documented size: 36-byte header + 8 * (d^2 + 3d + 13 + m (d + 1)) bytes
    assert len(data) == 36 + 8 * (36 + 18 + 13 + 64 * 7)
    back = Moments.from_bytes(data, d=6)
    a, b = summarize(m), summarize(back)
    np.testing.assert_array_equal(a.eigenvalues, b.eigenvalues)
    assert (a.uniformity, a.alignment, a.nonfinite_rows) == (b.uniformity, b.alignment, 1)
    assert (back.seed, back.sample_size, back.first_nonfinite) == (3, 64, 10)
    # merging states shipped as bytes equals feeding the rows to one accumulator
    x = RNG.standard_normal((900, 6)) * np.arange(1, 7)
    parts = [Moments(6, seed=i).update(x[i::3]).to_bytes() for i in range(3)]
    merged = Moments.from_bytes(parts[0]).merge(Moments.from_bytes(parts[1]))
    merged.merge(Moments.from_bytes(parts[2]))
    np.testing.assert_allclose(merged.scatter, Moments.of(x).scatter, rtol=1e-12, atol=1e-12)
    with pytest.raises(InputError, match="state of d=6, expected d=8"):
        Moments.from_bytes(data, d=8)
    newer = data[:8] + struct.pack("<I", 2) + data[12:]
    with pytest.raises(InputError, match="format version 2; this collapselab reads version 1"):
        Moments.from_bytes(newer)
    with pytest.raises(InputError, match="truncated Moments state"):
        Moments.from_bytes(data[:-8])
    with pytest.raises(InputError, match="not a collapselab Moments state"):
        Moments.from_bytes(m.to_array().tobytes())


def test_parallel_row_ranges_equal_the_serial_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import collapselab.metrics.moments as mom

    # (20000, 256): 4096-row blocks, so the update is split over 2 worker threads
    c = RNG.standard_normal(256) * 50
    z = (c + RNG.standard_normal((20000, 256)) * np.linspace(1e-3, 1, 256)).astype(np.float32)
    monkeypatch.setattr(mom, "_WORKERS", 2)
    par = Moments.of(z)
    monkeypatch.setattr(mom, "_WORKERS", 1)
    ser = Moments.of(z)
    np.testing.assert_allclose(par.scatter, ser.scatter, rtol=1e-9, atol=1e-12)
    # float32 input: sum_i (b_ij / ||z_i||)^2 is formed in float32 within each block
    np.testing.assert_allclose(par.unit_sq_sum, ser.unit_sq_sum, rtol=1e-6)
    assert (par.n, par.rows_seen) == (ser.n, ser.rows_seen) == (20000, 20000)
    z64 = z.astype(np.float64)
    ref = np.linalg.svd(z64 - z64.mean(0), compute_uv=False) ** 2 / 20000
    lam = summarize(par).eigenvalues
    assert np.max(np.abs(lam - ref) / ref) < 1e-5


def _unit_reference(z: np.ndarray) -> tuple[float, float]:
    """Two-pass float64 std of L2-normalised rows and exact mean pairwise cosine."""
    u = z.astype(np.float64)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    n = u.shape[0]
    return float(u.std(0, ddof=1).mean()), float((np.sum(u.sum(0) ** 2) - n) / (n * (n - 1)))


@pytest.mark.parametrize("spread", [1e-1, 1e-3, 1e-5])
def test_unit_row_statistics_stay_accurate_as_rows_collapse(spread: float) -> None:
    # rows c + eps with |eps| / |c| = spread: the std of unit rows shrinks with spread and
    # a naive sum of u^2 minus (sum u)^2 / n cancels; float64 input must stay near exact,
    # float32 input (row norms in float32, ~1e-7) within 1e-4 of the std, 1e-7 of the cosine
    c = RNG.standard_normal(256) * 50
    z = c + RNG.standard_normal((10000, 256)) * np.linspace(0.1, 1, 256) * spread * 50
    for arr, rtol, cos_atol in ((z, 1e-8, 1e-12), (z.astype(np.float32), 1e-4, 1e-7)):
        std_ref, cos_ref = _unit_reference(arr)
        m = summarize(Moments.of(arr))
        assert m.std_of_l2_normalized == pytest.approx(std_ref, rel=rtol)
        assert m.mean_cosine == pytest.approx(cos_ref, abs=cos_atol)


def test_blocks_that_drift_from_their_first_rows_are_recentred() -> None:
    # sorted data: the first rows of the block sit 1e4 away from the rest; the block is
    # redone around its own mean, so the small direction (variance 1e-6) survives
    d = 8
    z = RNG.standard_normal((5000, d)) * np.r_[np.ones(d - 1), 1e-3]
    z[300:] += 1e4 * np.r_[1.0, np.zeros(d - 1)]
    m = Moments.of(z)
    ref = np.linalg.svd(z - z.mean(0), compute_uv=False) ** 2 / z.shape[0]
    lam = np.sort(np.linalg.eigvalsh(m.covariance()))[::-1]
    np.testing.assert_allclose(lam, ref, rtol=1e-9)


def test_float32_rows_beyond_float32_squares_stay_exact() -> None:
    # ||z||^2 overflows float32, then underflows it
    big = RNG.standard_normal((300, 4)).astype(np.float32) * np.float32(1e25)
    tiny = RNG.standard_normal((300, 4)).astype(np.float32) * np.float32(1e-25)
    for z in (big, tiny):
        m = Moments.of(z)
        assert (m.n, m.nonfinite_rows, m.zero_rows) == (300, 0, 0)
        z64 = z.astype(np.float64)
        np.testing.assert_allclose(m.covariance(), np.cov(z64.T, bias=True), rtol=1e-9)
        std_ref, _ = _unit_reference(z64)
        assert summarize(m).std_of_l2_normalized == pytest.approx(std_ref, rel=1e-9)


def _kernel() -> object:
    import collapselab.metrics.moments as mom

    return mom._rows


def _built_kernel() -> object:
    """The C row kernel if it is built, whether or not COLLAPSELAB_NO_KERNEL switched the
    moments to the numpy path (so both paths are compared in either run)."""
    try:
        import collapselab.metrics._rows as rows
    except ImportError:
        return None
    return rows


def _kernel_switched_off() -> bool:
    import os

    return os.environ.get("COLLAPSELAB_NO_KERNEL", "") not in ("", "0")


def _c_compiler() -> str | None:
    """The C compiler setup.py would use ($CC, else sysconfig's CC), if it is on PATH and
    runs (``CC=false``, how CI and the README disable the compiler, is no compiler)."""
    import os
    import shlex
    import shutil
    import subprocess
    import sysconfig

    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")[:1]
    path = shutil.which(cc[0]) if cc else None
    if path is None:
        return None
    try:
        ok = subprocess.run([path, "--version"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return path if ok else None


NO_KERNEL = "the optional C row kernel is not built here (no C compiler at install)"


@pytest.mark.skipif(_c_compiler() is None, reason="no C compiler: setup.py skips the kernel")
@pytest.mark.skipif(_kernel_switched_off(), reason="COLLAPSELAB_NO_KERNEL forces the numpy path")
def test_the_row_kernel_is_built() -> None:
    # setup.py builds the C kernel wherever a compiler exists; without one the numpy path
    # gives the same numbers, slower (every other test here then runs on that path)
    assert _kernel() is not None, "a C compiler is present but the row kernel was not built"


@pytest.mark.parametrize("value", ["1", "0", ""])
def test_no_kernel_switch_forces_the_numpy_path(value: str) -> None:
    """COLLAPSELAB_NO_KERNEL=1 (anything but "" and "0") leaves the built kernel unused."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLLAPSELAB_NO_KERNEL": value}
    probe = "import collapselab.metrics.moments as m; print(m._rows is None)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env=env).stdout.split()[-1]  # fmt: skip
    assert out == str(value == "1" or _built_kernel() is None)


@pytest.mark.skipif(_built_kernel() is None, reason=NO_KERNEL)
@pytest.mark.parametrize("case", ["collapsed32", "spread64", "zero_and_nan_rows"])
def test_row_kernel_and_numpy_path_agree(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import collapselab.metrics.moments as mom

    c = RNG.standard_normal(40) * 30
    if case == "collapsed32":
        z = (c + RNG.standard_normal((3000, 40)) * 1e-3).astype(np.float32)
    elif case == "spread64":
        z = RNG.standard_normal((3000, 40)) * np.linspace(0.1, 3, 40)
    else:
        z = RNG.standard_normal((3000, 40)).astype(np.float32)
        z[[5, 1700]] = 0.0
        z[[9, 2222], [3, 0]] = np.nan
    monkeypatch.setattr(mom, "_rows", _built_kernel())
    fast = Moments.of(z)
    monkeypatch.setattr(mom, "_rows", None)
    slow = Moments.of(z)
    for key in ("n", "rows_seen", "nonfinite_rows", "first_nonfinite", "zero_rows"):
        assert getattr(fast, key) == getattr(slow, key)
    for key in ("mean", "scatter", "unit_sum", "unit_sq_sum"):
        np.testing.assert_allclose(getattr(fast, key), getattr(slow, key), rtol=1e-9, atol=1e-12)
    for key in ("sq_norm_sum", "norm_sum", "norm_min", "norm_max"):
        assert getattr(fast, key) == pytest.approx(getattr(slow, key), rel=1e-12)


@pytest.mark.skipif(_built_kernel() is None, reason=NO_KERNEL)
@pytest.mark.parametrize("n", [1, 5, 40, 70])
def test_rank1_numpy_path_gives_the_kernels_bits(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The merges' rank-1 updates are the same bits on both paths (a_ji += (alpha x_j) x_i,
    one rounding each): only the row norms' summation order differs between them."""
    import collapselab.metrics.moments as mom

    monkeypatch.setattr(mom, "_STRIP_ELEMENTS", 256)  # several strips of rows at n = 40, 70
    a0 = RNG.standard_normal((n, n + 3)) * 1e3
    x, alpha = RNG.standard_normal(n + 2), -7.123456789
    fast, slow = a0.copy(), a0.copy()
    monkeypatch.setattr(mom, "_rows", _built_kernel())
    mom._rank1(fast, n, alpha, x)
    monkeypatch.setattr(mom, "_rows", None)
    mom._rank1(slow, n, alpha, x)
    np.testing.assert_array_equal(slow, fast)
    np.testing.assert_array_equal(slow[:, n:], a0[:, n:])  # the columns beyond n untouched


@pytest.mark.skipif(_built_kernel() is None, reason=NO_KERNEL)
def test_row_kernel_rejects_mismatched_buffers() -> None:
    from collapselab.metrics import _rows

    x = np.ones((4, 3), dtype=np.float32)
    s, a, sq, wsq = np.zeros(3), np.empty((4, 6)), np.empty(4), np.empty(3)
    _rows.shift_rows(x, 4, 3, s, 0.0, a, sq, wsq)
    np.testing.assert_array_equal(sq, 3.0)
    np.testing.assert_allclose(a[:, 3:5], [[1.0, 3**-0.5]] * 4, rtol=1e-15)
    with pytest.raises(ValueError, match="buffer sizes"):
        _rows.shift_rows(x, 4, 3, s, 0.0, np.empty((3, 6)), sq, wsq)
    with pytest.raises(TypeError, match="x must be a C-contiguous float32/float64 array"):
        _rows.shift_rows(x.astype(np.int32), 4, 3, s, 0.0, a, sq, wsq)
    with pytest.raises(ValueError, match="not C-contiguous"):
        _rows.shift_rows(np.asfortranarray(np.ones((4, 3))), 4, 3, s, 0.0, a, sq, wsq)
