"""Index health (collapselab.health): planted store faults are found with their exact
counts and first rows, a clean Gaussian has none, counters merge, and the isotropy and
quantisation numbers match values derived by hand."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

from collapselab.health import (
    FIRST_ROWS,
    NORM_MAD_K,
    QUANT_REL_ERROR,
    ROGUE_NOTE,
    HealthCounter,
    index_health,
)
from collapselab.io._base import ArraySource
from collapselab.metrics import Moments


def _feed(x: np.ndarray, chunk: int = 128, start: int = 0, counter: HealthCounter | None = None,
          moments: Moments | None = None) -> tuple[HealthCounter, Moments]:  # fmt: skip
    """Stream rows of ``x`` as check would: the same chunks into both accumulators."""
    c = counter if counter is not None else HealthCounter(x.shape[1])
    m = moments if moments is not None else Moments(x.shape[1])
    for s in range(0, x.shape[0], chunk):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no RuntimeWarning from NaN / Inf rows
            c.update(x[s : s + chunk], start + s)
        m.update(x[s : s + chunk])
    return c, m


def _gauss(n: int, d: int, seed: int = 0, dtype: type = np.float32) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def test_planted_nan_inf_and_zero_rows_with_exact_counts_and_first_rows() -> None:
    x = _gauss(1000, 32)
    nan_rows = [3, 127, 128, 400, 401, 650, 999]  # 7 > FIRST_ROWS; 127/128 straddle chunks
    for r in nan_rows:
        x[r, r % 32] = np.nan
    x[650, 0] = np.inf  # NaN and Inf in one row: a NaN row
    x[10, 5] = np.inf
    x[700, :] = -np.inf
    x[20] = 0.0
    x[21] = -0.0  # -0.0 is zero too
    x[22] *= np.float32(1e-17)  # tiny, not zero: its norm is taken in float64, exactly
    c, m = _feed(x)
    h = index_health(c, m)
    assert (h.nan.count, h.nan.first) == (7, (3, 127, 128, 400, 401))
    assert len(h.nan.first) == FIRST_ROWS
    assert (h.inf.count, h.inf.first) == (2, (10, 700))
    assert (h.zero.count, h.zero.first) == (2, (20, 21))
    assert m.nonfinite_rows == 9  # the moments leave out the same rows
    assert h.norms is not None
    tiny = float(np.linalg.norm(x[22].astype(np.float64)))
    assert h.norms.min_norm == pytest.approx(tiny, rel=1e-12, abs=0)
    probs = h.problems
    assert probs[:3] == ["7 rows contain NaN (first: 3, 127, 128, 400, 401)",
                         "2 rows contain Inf (first: 10, 700)",
                         "2 rows are all zeros (first: 20, 21)"]  # fmt: skip
    assert h.lines()[0] == "NaN rows: 7 (first: 3, 127, 128, 400, 401)"


def test_exact_duplicates_across_chunks_and_merged_counters() -> None:
    x = _gauss(1200, 48, seed=1)
    x[900] = x[3]  # across chunks
    x[1100] = x[3]  # a group of three
    x[600] = x[599]  # consecutive rows, and across the two counters below
    x[700] = x[100]  # across the two counters
    x[50, 0] = 0.0
    x[1150] = x[50]
    x[1150, 0] = -0.0  # -0.0 and +0.0: equal vectors, a duplicate
    x[200] = np.nan
    x[201] = x[200]  # bit-equal NaN rows: NaN equals nothing
    x[300] = 0.0
    x[301] = 0.0  # zero rows: reported as zero rows, not as duplicates
    a, ma = _feed(x[:600], chunk=256)
    b, mb = _feed(x[600:], chunk=256, start=600)
    a.merge(b)
    ma.merge(mb)
    h = index_health(a, ma)
    dup = h.duplicates
    assert (dup.rows, dup.groups) == (5, 4)
    assert dup.first_groups == ((3, 900, 1100), (50, 1150), (100, 700))
    assert dup.group_sizes == (3, 2, 2)
    assert (h.nan.count, h.zero.count) == (2, 2)
    assert h.problems[2].startswith("5 rows repeat an earlier row exactly, in 4 groups "
                                    "(rows 3=900=1100; 50=1150; 100=700; ...)")  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sign_flips_and_single_bits_are_not_duplicates(dtype: type) -> None:
    d = 16
    base = _gauss(1, d, seed=2, dtype=dtype)[0]
    rows = [base, -base]
    uint = np.uint32 if dtype == np.float32 else np.uint64
    for j in range(d):
        r = base.copy()
        r[j] = -r[j]  # one sign bit
        rows.append(r)
        for bit in (0, 7, 22):  # one mantissa bit (low, middle, high)
            r = base.copy()
            r.view(uint)[j] ^= uint(1 << bit)
            rows.append(r)
        for k in range(j + 1, d):  # two sign bits: must not cancel in the sum
            r = base.copy()
            r[[j, k]] = -r[[j, k]]
            rows.append(r)
    x = np.array(rows, dtype=dtype)
    assert len({row.tobytes() for row in x}) == len(x)  # all distinct
    c = HealthCounter.of(x)
    assert c.duplicates()[:2] == (0, 0)
    # every one of the 2**12 sign patterns of a 12-value row: all distinct hashes
    signs = (np.arange(2**12)[:, None] >> np.arange(12)) & 1
    y = np.where(signs == 1, -base[:12], base[:12]).astype(dtype)
    assert HealthCounter.of(y).duplicates()[:2] == (0, 0)
    # the same values stored as float64 and float32 are one vector
    c = HealthCounter(d).update(x[:3].astype(np.float32), 0)
    c.update(x[:3].astype(np.float32).astype(np.float64), 3)
    assert c.duplicates() == (3, 3, [[0, 3], [1, 4], [2, 5]], [2, 2, 2])


def test_near_duplicates_in_the_sample() -> None:
    rng = np.random.default_rng(3)
    x = _gauss(800, 32, seed=3, dtype=np.float64)  # all rows are in the 2048-row sample
    x[500] = x[10] + 1e-4 * rng.standard_normal(32)
    x[600] = x[20]  # exact: a duplicate, not a near-duplicate
    c, m = _feed(x)
    h = index_health(c, m)
    near = h.near_duplicates
    assert near is not None
    assert (near.pairs, near.rows, near.sample) == (1, 2, 800)
    assert near.share == pytest.approx(2 / 800)
    assert h.duplicates.rows == 1
    assert not any("near-duplicates" in p for p in h.problems)  # 0.25% < 1%
    for i in range(8):  # 16 / 800 = 2% of the sample: flagged
        x[700 + i] = x[30 + i] * 1.5 + 1e-4 * rng.standard_normal(32)
    h = index_health(*_feed(x))
    assert h.near_duplicates is not None and h.near_duplicates.pairs == 9
    assert any(p.startswith("near-duplicates: 2.25% of a uniform sample of 800 rows")
               for p in h.problems)  # fmt: skip


def test_rogue_dimension_is_flagged_and_tops_both_lists() -> None:
    x = _gauss(4000, 64, seed=4) + np.float32(0.5)
    x[:, 7] *= 30
    h = index_health(*_feed(x, chunk=1000))
    ro = h.rogue
    assert ro is not None
    assert ro.rogue == (7,) and ro.rogue_variance == (7,) and ro.rogue_cosine == (7,)
    assert ro.variance_top[0][0] == 7 and ro.cosine_top[0][0] == 7
    assert ro.variance_top[0][1] == pytest.approx(900 / 963, abs=0.01)  # var 900 vs 63 x 1
    assert ro.line == 0.25
    line = [p for p in h.problems if p.startswith("rogue dimension 7:")]
    assert len(line) == 1 and ROGUE_NOTE in line[0]
    # mean-zero data: the variance share flags it; cosine shares split noise, not flagged
    z = _gauss(4000, 64, seed=5)
    z[:, 7] *= 30
    ro = index_health(*_feed(z, chunk=1000)).rogue
    assert ro is not None and ro.rogue_variance == (7,) and ro.rogue_cosine == ()
    assert ro.mean_cosine < 0.01
    # the line: 0.25 from d = 40 on, 10/d between 20 and 40, one half below
    for d, line in ((8, 0.5), (32, 10 / 32), (40, 0.25), (768, 0.25)):
        z = _gauss(300, d, seed=d)
        z[:, 0] *= 10  # 100 / (100 + d - 1) of the variance
        ro = index_health(*_feed(z)).rogue
        assert ro is not None and ro.line == line
        assert ro.rogue_variance == ((0,) if 100 / (99 + d) >= line else ())


def test_norm_outliers_found_from_the_histogram() -> None:
    x = _gauss(2000, 64, seed=6)
    x[[11, 1500, 1999]] *= 100
    x[300] *= 1e-3
    a, ma = _feed(x[:1000])
    b, mb = _feed(x[1000:], start=1000)
    a.merge(b)
    ma.merge(mb)
    no = index_health(a, ma).norms
    assert no is not None
    assert (no.count, no.low, no.high) == (4, 1, 3)
    assert no.rows == (11, 300, 1500, 1999) and no.rows_all
    assert no.share == pytest.approx(4 / 2000)
    assert no.k == NORM_MAD_K
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    assert no.min_norm == pytest.approx(norms.min(), rel=1e-6)
    assert no.max_norm == pytest.approx(norms.max(), rel=1e-6)
    assert no.median_norm == pytest.approx(np.median(norms), rel=0.01)  # 1/128 octave
    # more outliers than kept rows: the most extreme shown, and said so
    y = _gauss(2000, 64, seed=7)
    y[100:108] *= 100.0 * np.arange(1, 9, dtype=np.float32)[:, None]
    no = index_health(*_feed(y)).norms
    assert no is not None and no.count == 8 and not no.rows_all
    top5 = 100 + np.argsort(-np.linalg.norm(y[100:108].astype(np.float64), axis=1))[:5]
    assert no.rows == tuple(top5)  # largest norms first


def test_clean_gaussian_has_no_problems() -> None:
    x = _gauss(3000, 64, seed=8)
    h = index_health(*_feed(x, chunk=700))
    assert h.problems == []
    assert h.duplicates.rows == 0 and h.norms is not None and h.norms.count == 0
    assert h.near_duplicates is not None and h.near_duplicates.sample == 2048
    assert h.rogue is not None and h.rogue.rogue == ()
    assert h.isotropy is not None and 0.3 < h.isotropy <= 1.0
    assert h.quantisation is None and h.quantisation_reason == "not a compressed index"
    text = h.lines()
    assert 5 <= len(text) <= 15 and text[0] == "no NaN, Inf or all-zero rows"
    d = json.loads(json.dumps(h.to_dict(), allow_nan=False))
    assert d["problems"] == [] and d["rows"] == 3000 and d["norm_outliers"]["count"] == 0


def test_merge_of_halves_equals_one_counter() -> None:
    x = _gauss(3000, 40, seed=9)
    x[[5, 2900]] = np.nan
    x[1600] = 0.0
    x[2999] = x[1]
    x[[17, 2500]] *= 50
    whole, m = _feed(x, chunk=300)
    a, _ = _feed(x[:1500], chunk=256)
    b, _ = _feed(x[1500:], chunk=256, start=1500)
    merged = HealthCounter().merge(b).merge(a)  # any order: indices are global
    assert merged.rows_seen == whole.rows_seen == 3000
    assert merged.duplicates() == whole.duplicates() == (1, 1, [[1, 2999]], [2])
    assert whole.norm_hist is not None and merged.norm_hist is not None
    assert np.array_equal(merged.norm_hist, whole.norm_hist)
    for side in ("low", "high"):
        for u, v in zip(getattr(merged, side), getattr(whole, side), strict=True):
            assert np.array_equal(u, v)
    assert index_health(merged, m).to_dict() == index_health(whole, m).to_dict()


def _isotropy(w: np.ndarray) -> float:
    iso = index_health(HealthCounter.of(w), Moments.of(w)).isotropy
    assert iso is not None
    return iso


def test_mu_viswanath_isotropy_matches_closed_forms() -> None:
    # W = {+e1, -e1, +e2, -e2}: Z(c) = e + 1/e + 2 for every eigenvector (either sign)
    axes = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])
    assert _isotropy(axes) == pytest.approx(1.0)
    assert _isotropy(800 * axes) == pytest.approx(1.0)  # exp(800) overflows: log space
    # W = {(1, t), (-1, t)}: W^T W = diag(2, 2t^2), eigenvectors e1, e2; over c = +-e1,
    # +-e2: Z(+-e1) = 2 cosh 1, Z(+-e2) = 2 e^(+-t). min = 2 e^-t; max = 2 e^t once
    # e^t >= cosh 1, else 2 cosh 1. So I = e^-2t for t >= ln cosh 1, e^-t / cosh 1 below.
    values = []
    for t in (0.0, 0.25, 0.5, 2.0, 3.0):
        expect = math.exp(-2 * t) if t >= math.log(math.cosh(1)) else math.exp(-t) / math.cosh(1)
        got = _isotropy(np.array([[1.0, t], [-1.0, t]]))
        assert got == pytest.approx(expect, rel=1e-12, abs=0)
        values.append(got)
    assert values == sorted(values, reverse=True) and values[-1] < 0.003
    # a common vector added to an isotropic cloud lowers I; large t would overflow exp
    z = _gauss(1000, 16, seed=10, dtype=np.float64) * 0.3
    iso = [_isotropy(z + t) for t in (0.0, 0.5, 2.0, 400.0)]
    assert iso == sorted(iso, reverse=True) and iso[0] > 0.5 and iso[-1] == 0.0


def test_quantisation_error_on_a_designed_pair() -> None:
    x = _gauss(500, 16, seed=11, dtype=np.float64) + 1.0
    src = ArraySource("orig", x, "float64")
    src.quantised = ArraySource("decoded", 0.9 * x, "float64")
    c, m = _feed(x)
    h = index_health(c, m, src, chunk_rows=64)
    q = h.quantisation
    assert q is not None and h.quantisation_reason is None
    assert q.rows == 500
    assert q.mean_rel_error == pytest.approx(0.01, rel=1e-12)
    assert q.max_rel_error == pytest.approx(0.01, rel=1e-12)
    total = ((x - x.mean(axis=0)) ** 2).sum()
    assert q.variance_share == pytest.approx(0.01 * (x**2).sum() / total, rel=1e-10)
    assert not any("quantisation" in p for p in h.problems)
    src.quantised = ArraySource("decoded", 0.5 * x, "float64")  # loses 25%
    h = index_health(c, m, src)
    assert h.quantisation is not None
    assert h.quantisation.mean_rel_error == pytest.approx(0.25)
    assert h.quantisation.mean_rel_error > QUANT_REL_ERROR
    assert any(p.startswith("quantisation loses 25%") for p in h.problems)
    # no compressed copy: the reason
    plain = ArraySource("plain", x, "float64")
    assert index_health(c, m, plain).quantisation_reason == "not a compressed index"
    plain.note = "reconstructed from PQ codes (lossy)"
    h = index_health(c, m, plain)
    assert h.quantisation is None and h.quantisation_reason == "the index keeps no originals"
    assert "quantisation error: n/a (the index keeps no originals)" in h.lines()


def test_rows_far_from_unit_scale() -> None:
    x = _gauss(600, 24, seed=12, dtype=np.float64)
    for scale in (1e200, 1e-200):
        h = index_health(*_feed(x * scale))
        assert h.problems == []
        assert h.norms is not None
        norms = np.linalg.norm(x, axis=1) * scale
        assert h.norms.max_norm == pytest.approx(norms.max(), rel=1e-9, abs=0)
        assert h.isotropy is not None  # logsumexp: no overflow whatever the scale


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_big_chunk_over_threads_equals_small_chunks(dtype: type) -> None:
    x = _gauss(20000, 24, seed=13, dtype=dtype)
    x[10000] = x[9999]  # across the threads' split
    x[[4, 15000]] = np.nan
    x[12345] *= 1000
    big = HealthCounter.of(x)  # 20000 rows: split over the worker threads
    small, _ = _feed(x, chunk=999)
    assert np.array_equal(np.concatenate(big.hashes), np.concatenate(small.hashes))
    assert big.norm_hist is not None and small.norm_hist is not None
    assert np.array_equal(big.norm_hist, small.norm_hist)
    assert big.duplicates() == small.duplicates() == (1, 1, [[9999, 10000]], [2])
    assert big.nan.first == small.nan.first == [4, 15000]
    assert int(big.high[1][0]) == 12345
