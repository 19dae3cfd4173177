"""Index health: the faults a vector store or index can hold, found in the pass that
``collapselab check`` already makes over the rows.

Two pieces:

* :class:`HealthCounter`, a mergeable streaming accumulator fed the same chunks as
  :class:`~collapselab.metrics.Moments`: NaN / Inf / all-zero rows (counts and first
  rows), a 64-bit hash of every row for exact duplicates, and a fine histogram of the row
  norms (plus the most extreme rows) for norm outliers.
* :func:`index_health`, which reads the counter and the moments (their row sample, mean,
  scatter and unit-row sums) and returns a :class:`Health`: the faults above, near
  duplicates in the row sample, rogue dimensions (Timkey & van Schijndel 2021), the
  partition-function isotropy of Mu & Viswanath (2018) and, for a store that keeps both
  originals and a compressed copy, the quantisation error.

Every line a finding is flagged at is a module constant below. There is no labelled
corpus of store faults to calibrate them on: they are conventions, stated with the
finding, not calibrated detection thresholds.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from collapselab._json import jsonable
from collapselab._pool import LazyPool, blas_threads
from collapselab.diagnose import Thresholds
from collapselab.errors import InputError
from collapselab.metrics.moments import _mix64, _scratch

if TYPE_CHECKING:
    from collapselab.io import EmbeddingSource
    from collapselab.metrics import Moments

__all__ = ["HealthCounter", "Health", "index_health"]

# ---------------------------------------------------------------------------- lines
#: first rows kept and shown for each row fault (NaN, Inf, zero, norm outliers, groups)
FIRST_ROWS = 5
#: exact-duplicate groups shown (those whose first row comes first)
GROUPS_SHOWN = 3
#: a pair of sampled rows is a near-duplicate at cosine >= this (and not bit-equal).
#: 0.995 is an angle of 5.7 degrees: far closer than unrelated texts' embeddings come in
#: any model we know of, and still wide enough for a re-encoding of the same text with
#: another batch size or precision (cosines above 0.999). A convention.
NEAR_DUP_COSINE = 0.995
#: near-duplicates are flagged when at least this share of the sampled rows is in a pair:
#: a 1% of sample rows means on the order of 1% of the store repeats a neighbour
NEAR_DUP_SHARE = 0.01
#: norm outliers: log2-norm beyond median +- NORM_MAD_K robust spreads (1.4826 x MAD, the
#: standard deviation for normal data). 6 spreads are ~1e-9 of a normal tail: a healthy
#: store has none, so any row past it is worth a look. A convention, not calibrated.
NORM_MAD_K = 6.0
#: floor of the robust spread, in octaves (log2 units): stores of unit-normalised rows
#: have a MAD of 0, where every rounding difference would be an outlier. With the floor,
#: the line sits at 6/16 octave: norms more than 30% above or 23% below the median
NORM_MIN_SPREAD = 1.0 / 16.0
#: norm histogram bins per octave (1/128 octave: 0.54% of the norm) ...
NORM_BINS_PER_OCTAVE = 128
#: ... over log2-norms in [-NORM_LOG2_RANGE, NORM_LOG2_RANGE) (every finite float64
#: norm); 2.2 MB of int64 counts per counter
NORM_LOG2_RANGE = 1100
#: a dimension is rogue when its share of the variance or of the expected cosine is at
#: least ROGUE_SHARE of the total and at least ROGUE_TIMES_UNIFORM times the uniform
#: share 1/d, that second line capped at ROGUE_SHARE_CAP. A quarter of the total in one
#: of d coordinates dominates every dot product (Timkey & van Schijndel's rogue
#: dimensions hold most of it); 10/d alone would flag 1.3% at d = 768, normal for a
#: leading coordinate, and 0.25 alone would flag 2x the uniform share at d = 8: the line
#: is the larger of the two, capped so that a dimension holding half the total is still
#: flagged at d <= 20. So: 0.25 for d >= 40, 10/d for 20 <= d < 40, 0.5 below. A
#: convention.
ROGUE_SHARE = 0.25
ROGUE_TIMES_UNIFORM = 10.0
ROGUE_SHARE_CAP = 0.5
#: cosine shares only flag when the expected cosine ||E u||^2 is at least this: below it
#: the shares split sampling noise (about 1/n) and no dimension dominates similarity
ROGUE_MIN_MEAN_COSINE = 0.05
#: dimensions listed per share (variance, expected cosine)
TOP_DIMS = 3
#: quantisation is flagged at a mean relative squared error ||x - x_hat||^2 / ||x||^2 of
#: at least this: 10% of a row's squared norm lost moves cosines by about as much. A
#: convention (product quantisers at 8 bits per sub-vector typically sit at 0.01-0.1).
QUANT_REL_ERROR = 0.1

# Isotropy (Mu & Viswanath) is reported, never flagged: the partition function depends on
# the rows' scale, so no one line fits every store. Isotropic Gaussian rows (d = 384,
# 20000 rows, 2048 sampled) give I = 0.99 at norm 1, 0.88 at norm 10 and 0.03 at norm 50;
# unit rows all equal (total collapse) give e^-2 = 0.135, the least unit rows can give.
# Collapse towards a common direction is judged by the check itself.

# ---------------------------------------------------------------------------- hashing
_SALT32 = 0x6A09E667F3BCC908  # sqrt(2)'s fraction bits (SHA-512's first IV word)
_SALT64 = 0xBB67AE8584CAA73B  # sqrt(3)'s
_U32 = np.uint64(32)
_KEYS: dict[tuple[int, int], NDArray[np.uint64]] = {}
#: bytes of the float32 block each thread hashes at a time (stays in L2 with its words)
_BLOCK_BYTES = 192 * 1024
#: rows from which a chunk is split over threads
_PARALLEL_ROWS = 8192
_WORKERS = min(4, os.cpu_count() or 1)
_POOL = LazyPool(_WORKERS, "health")


def _keys(words: int, salt: int) -> NDArray[np.uint64]:
    """Two rows of odd 64-bit multipliers, one pair per word: splitmix64 of the word's
    position. Fixed (no seed), so every counter hashes alike and counters merge."""
    k = _KEYS.get((words, salt))
    if k is None:
        i = np.arange(1, 2 * words + 1, dtype=np.uint64)
        i *= np.uint64(0x9E3779B97F4A7C15)
        i += np.uint64(salt)
        k = (_mix64(i) | np.uint64(1)).reshape(2, words)
        _KEYS[(words, salt)] = k
    return k


def _hash_words(u: NDArray[np.uint64], keys: NDArray[np.uint64], t: NDArray[np.uint64],
                out: NDArray[np.uint64]) -> None:  # fmt: skip
    """``out_i = sum_j f_j(u_ij) mod 2**64`` with ``f_j(w) = g(b_j g(a_j w))``,
    ``g(p) = p ^ (p >> 32)`` and odd keys ``a_j, b_j``: each word goes through a bijection,
    so rows differing in one word (one flipped sign or bit) never collide; the two
    multiply-xorshift rounds carry every input bit into the low and the high output
    bits, so structured differences spread over words (sign bits, one bit position) do
    not cancel in the sum, as they do in a multilinear hash (``sum a_j w_j``), where
    bit 63 differences reach bit 63 only. Checked on all 2**20 patterns of flipped sign
    bits (and of bits 30, 23 and 0) of a 20-float row: no collision. ``u`` is
    overwritten."""
    np.multiply(u, keys[0], out=t)
    np.right_shift(t, _U32, out=u)
    np.bitwise_xor(t, u, out=t)
    np.multiply(t, keys[1], out=t)
    np.right_shift(t, _U32, out=u)
    np.bitwise_xor(t, u, out=t)
    np.add.reduce(t, axis=1, out=out)


def _block_rows(width_bytes: int) -> int:
    return max(8, _BLOCK_BYTES // max(width_bytes, 1))


def _rows32(x: NDArray[Any], h: NDArray[np.uint64], sq: NDArray[np.float64]) -> None:
    """Hash and squared norm of every row of a float32 ``x``: one read of ``x``, then
    a few passes over a block that stays in cache."""
    with np.errstate(over="ignore", invalid="ignore"):  # per thread: NaN/Inf rows
        _rows32_(x, h, sq)


def _rows32_(x: NDArray[Any], h: NDArray[np.uint64], sq: NDArray[np.float64]) -> None:
    k, d = x.shape
    w = (d + 1) // 2
    rows = _block_rows(8 * w)
    buf = _scratch("f32", (rows, 2 * w), np.float32)
    buf[:, d:] = 0.0  # odd d: a zero pad float completes the last 64-bit word
    t = _scratch("t", (rows, w), np.uint64)
    s32 = _scratch("s32", (rows,), np.float32)
    keys = _keys(w, _SALT32)
    for s in range(0, k, rows):
        e = min(s + rows, k)
        b = buf[: e - s]
        np.add(x[s:e], np.float32(0.0), out=b[:, :d])  # -0.0 + 0.0 = +0.0: zeros alike
        np.einsum("ij,ij->i", b, b, out=s32[: e - s])
        sq[s:e] = s32[: e - s]
        _hash_words(b.view(np.uint64), keys, t[: e - s], h[s:e])


def _rows64(x: NDArray[Any], h: NDArray[np.uint64], sq: NDArray[np.float64]) -> None:
    """As :func:`_rows32` for float64 rows. A row whose values are all float32 numbers
    hashes as that float32 row (so a float64 and a float32 file holding the same vectors
    agree); the others also mix in the hash of their float64 words."""
    with np.errstate(over="ignore", invalid="ignore"):
        _rows64_(x, h, sq)


def _rows64_(x: NDArray[Any], h: NDArray[np.uint64], sq: NDArray[np.float64]) -> None:
    k, d = x.shape
    w = (d + 1) // 2
    rows = _block_rows(8 * d)
    buf = _scratch("f32", (rows, 2 * w), np.float32)
    buf[:, d:] = 0.0
    b64 = _scratch("f64", (rows, d), np.float64)
    t = _scratch("t", (rows, w), np.uint64)
    t64 = _scratch("t64", (rows, d), np.uint64)
    h64 = _scratch("h64", (rows,), np.uint64)
    keys32, keys64 = _keys(w, _SALT32), _keys(d, _SALT64)
    for s in range(0, k, rows):
        e = min(s + rows, k)
        xb = x[s:e]
        b = buf[: e - s]
        np.einsum("ij,ij->i", xb, xb, out=sq[s:e])
        np.copyto(b[:, :d], xb, casting="same_kind")
        np.add(b[:, :d], np.float32(0.0), out=b[:, :d])
        exact = (b[:, :d] == xb).all(axis=1)
        _hash_words(b.view(np.uint64), keys32, t[: e - s], h[s:e])
        if not exact.all():
            other = np.flatnonzero(~exact)
            c = b64[: other.size]
            np.add(xb[other], 0.0, out=c)
            _hash_words(c.view(np.uint64), keys64, t64[: other.size], h64[: other.size])
            h[s + other] ^= _mix64(h64[: other.size].copy())


class RowTally:
    """Count and first :data:`FIRST_ROWS` (smallest) global indices of one kind of row."""

    def __init__(self) -> None:
        self.count = 0
        self.first: list[int] = []

    def add(self, rows: NDArray[np.int64] | list[int], count: int | None = None) -> None:
        self.count += len(rows) if count is None else count
        self.first = sorted({*self.first, *(int(i) for i in rows[:FIRST_ROWS])})[:FIRST_ROWS]

    def merge(self, other: RowTally) -> None:
        self.add(other.first, other.count)


# ---------------------------------------------------------------------------- counter
class HealthCounter:
    """Mergeable streaming counts of the faults a store can hold, row by row.

    Feed it the chunks :class:`~collapselab.metrics.Moments` gets, each with the global
    index of its first row (:meth:`update`); merge counters of shards with :meth:`merge`
    (indices are global, so merging concatenates).

    Kept per counter:

    * NaN rows (any entry NaN), Inf rows (an Inf and no NaN) and all-zero rows (+0.0 and
      -0.0 alike): counts and the first :data:`FIRST_ROWS` row indices;
    * a 64-bit hash of every row but NaN rows (NaN equals nothing) and all-zero rows
      (reported as such), with the row's index: **16 bytes per row** (1.6 GB for 100 M
      rows), the price of finding every exact duplicate in one pass. The hash reads the
      row's bits after ``+ 0.0`` (so -0.0 and +0.0 hash alike); float64 rows that are
      float32 numbers hash as float32 rows. Such rows differing in one 64-bit word (one
      or two adjacent float32 values: a flipped sign or bit) never collide; other
      distinct rows collide with probability about 2**-64 per pair (:func:`_hash_words`);
    * a histogram of log2 row norms (:data:`NORM_BINS_PER_OCTAVE` bins per octave, fixed
      edges, so histograms add) over finite non-zero rows, plus the
      :data:`FIRST_ROWS` smallest and largest norms with their rows.

    Args:
        d: number of columns (taken from the first chunk when None).
    """

    def __init__(self, d: int | None = None) -> None:
        self.d = d
        self.rows_seen = 0
        self.nan = RowTally()  # rows with a NaN
        self.inf = RowTally()  # rows with an Inf and no NaN
        self.zero = RowTally()  # all-zero rows
        self.hashes: list[NDArray[np.uint64]] = []
        self.hash_rows: list[NDArray[np.int64]] = []
        self.norm_hist: NDArray[np.int64] | None = None
        # the FIRST_ROWS smallest / largest log2 norms and their rows
        self.low: tuple[NDArray[np.float64], NDArray[np.int64]] = _no_extremes()
        self.high: tuple[NDArray[np.float64], NDArray[np.int64]] = _no_extremes()

    @classmethod
    def of(cls, x: Any) -> HealthCounter:
        """The counter of one matrix (rows 0 .. n - 1)."""
        arr = np.asarray(x)
        if arr.ndim != 2:
            raise InputError(f"expected a 2-D (N, d) matrix, got shape {arr.shape}")
        return cls(arr.shape[1]).update(arr, 0)

    # ------------------------------------------------------------------ feeding
    def update(self, chunk: Any, offset: int) -> HealthCounter:
        """Add the rows of ``chunk`` (``(k, d)``, float32 or float64; other real dtypes
        are converted), whose first row has global index ``offset``. Returns self."""
        x = np.asarray(chunk)
        if x.ndim != 2 or (self.d is not None and x.shape[1] != self.d):
            raise InputError(f"expected rows of shape (N, {self.d}), got {x.shape}")
        if x.dtype not in (np.float32, np.float64):
            small = (x.dtype.kind == "f" and x.dtype.itemsize < 4) or x.dtype.kind == "b"
            x = x.astype(np.float32 if small else np.float64)
        self.d = x.shape[1]
        k = x.shape[0]
        self.rows_seen += k
        if not k:
            return self
        h = np.empty(k, dtype=np.uint64)
        sq = np.empty(k, dtype=np.float64)
        fill = _rows32 if x.dtype == np.float32 else _rows64
        workers = min(_WORKERS, k // (_PARALLEL_ROWS // 2))
        if workers < 2:
            fill(x, h, sq)
        else:
            b = [k * i // workers for i in range(workers + 1)]
            pool = _POOL.get()
            futures = [pool.submit(fill, x[b[i] : b[i + 1]], h[b[i] : b[i + 1]],
                                   sq[b[i] : b[i + 1]]) for i in range(workers)]  # fmt: skip
            wait(futures)
            for f in futures:
                f.result()
        self._absorb(x, h, sq, offset)
        return self

    def _absorb(self, x: NDArray[Any], h: NDArray[np.uint64], sq: NDArray[np.float64],
                offset: int) -> None:  # fmt: skip
        k = x.shape[0]
        # rows whose float32/float64 squared norm is trustworthy: finite, not zero, far
        # from under- and overflow. The rest (rare) are looked at one by one in float64.
        ok = (sq >= 2.0**-100) & (sq <= 2.0**100)
        log2n = np.empty(k)
        np.log2(sq, out=log2n, where=ok)
        log2n[ok] *= 0.5
        if ok.all():
            self.hashes.append(h)
            self.hash_rows.append(np.arange(offset, offset + k, dtype=np.int64))
            self._add_norms(log2n, np.arange(offset, offset + k, dtype=np.int64))
            return
        rare = np.flatnonzero(~ok)
        with np.errstate(all="ignore"):
            xr = np.asarray(x[rare], dtype=np.float64)
            nan = np.isnan(xr).any(axis=1)
            inf = ~nan & np.isinf(xr).any(axis=1)
            top = np.where(nan | inf, 0.0, np.abs(xr).max(axis=1, initial=0.0))
            zero = ~(nan | inf) & (top == 0)
            fin = ~(nan | inf | zero)
            y = xr[fin] / top[fin, None]  # largest magnitude 1: no over- or underflow
            log2n[rare[fin]] = np.log2(top[fin]) + 0.5 * np.log2(np.einsum("ij,ij->i", y, y))
        for tally, mask in ((self.nan, nan), (self.inf, inf), (self.zero, zero)):
            if mask.any():
                tally.add(rare[mask].astype(np.int64) + offset)
        normed = ok.copy()
        normed[rare[fin]] = True
        hashed = np.ones(k, dtype=bool)
        hashed[rare[nan | zero]] = False
        where = np.flatnonzero(hashed)
        self.hashes.append(h[where])
        self.hash_rows.append(where.astype(np.int64) + offset)
        where = np.flatnonzero(normed)
        self._add_norms(log2n[where], where.astype(np.int64) + offset)

    def _add_norms(self, log2n: NDArray[np.float64], rows: NDArray[np.int64]) -> None:
        if not log2n.size:
            return
        bins = _bin_of(log2n)
        lo, hi = int(bins.min()), int(bins.max())
        hist = self._hist()
        hist[lo : hi + 1] += np.bincount(bins - lo, minlength=hi - lo + 1)
        self.low = _keep_extremes(self.low, log2n, rows, largest=False)
        self.high = _keep_extremes(self.high, log2n, rows, largest=True)

    def _hist(self) -> NDArray[np.int64]:
        if self.norm_hist is None:
            self.norm_hist = np.zeros(2 * NORM_LOG2_RANGE * NORM_BINS_PER_OCTAVE, np.int64)
        return self.norm_hist

    # ------------------------------------------------------------------ combining
    def merge(self, other: HealthCounter) -> HealthCounter:
        """Fold ``other`` (a counter over other rows, same global indexing) into self."""
        if other.d is not None and self.d is not None and other.d != self.d:
            raise InputError(f"cannot merge a health counter of d={other.d} into d={self.d}")
        self.d = self.d if self.d is not None else other.d
        self.rows_seen += other.rows_seen
        self.nan.merge(other.nan)
        self.inf.merge(other.inf)
        self.zero.merge(other.zero)
        self.hashes.extend(other.hashes)
        self.hash_rows.extend(other.hash_rows)
        if other.norm_hist is not None:
            self._hist()[:] += other.norm_hist
            self.low = _keep_extremes(self.low, *other.low, largest=False)
            self.high = _keep_extremes(self.high, *other.high, largest=True)
        return self

    # ------------------------------------------------------------------ read-outs
    def duplicates(self) -> tuple[int, int, list[list[int]], list[int]]:
        """Exact duplicates: ``(rows that repeat an earlier row, groups, the first
        GROUPS_SHOWN groups' first FIRST_ROWS rows, those groups' sizes)``; groups are
        ordered by their first row. One sort of the hashes (O(n log n))."""
        if not self.hashes:
            return 0, 0, [], []
        h = np.concatenate(self.hashes)
        rows = np.concatenate(self.hash_rows)
        order = np.argsort(h, kind="stable")
        hs = h[order]
        starts = np.flatnonzero(np.concatenate([[True], hs[1:] != hs[:-1]]))
        sizes = np.diff(np.append(starts, hs.size))
        multi = np.flatnonzero(sizes > 1)
        if not multi.size:
            return 0, 0, [], []
        repeats = int((sizes[multi] - 1).sum())
        rs = rows[order]
        first = np.minimum.reduceat(rs, starts)[multi]
        shown = multi[np.argsort(first, kind="stable")[:GROUPS_SHOWN]]
        groups = [sorted(int(r) for r in rs[starts[g] : starts[g] + sizes[g]])[:FIRST_ROWS]
                  for g in shown]  # fmt: skip
        return repeats, int(multi.size), groups, [int(sizes[g]) for g in shown]


def _no_extremes() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    return np.empty(0), np.empty(0, dtype=np.int64)


def _bin_of(log2n: NDArray[np.float64]) -> NDArray[np.int64]:
    b = np.floor(log2n * NORM_BINS_PER_OCTAVE).astype(np.int64)
    b += NORM_LOG2_RANGE * NORM_BINS_PER_OCTAVE
    return np.clip(b, 0, 2 * NORM_LOG2_RANGE * NORM_BINS_PER_OCTAVE - 1)


def _keep_extremes(kept: tuple[NDArray[np.float64], NDArray[np.int64]],
                   vals: NDArray[np.float64], rows: NDArray[np.int64],
                   largest: bool) -> tuple[NDArray[np.float64], NDArray[np.int64]]:  # fmt: skip
    """The FIRST_ROWS most extreme (value, row) of ``kept`` and the new ones; ties go to
    the smaller row."""
    key = -vals if largest else vals
    if key.size > FIRST_ROWS:
        pick = np.argpartition(key, FIRST_ROWS - 1)[:FIRST_ROWS]
        vals, rows, key = vals[pick], rows[pick], key[pick]
    v = np.concatenate([kept[0], vals])
    r = np.concatenate([kept[1], rows])
    order = np.lexsort((r, -v if largest else v))[:FIRST_ROWS]
    return v[order], r[order]


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class RowFault:
    """Rows of one kind (NaN, Inf, all-zero): how many, and the first ones."""

    count: int
    first: tuple[int, ...]


@dataclass(frozen=True)
class Duplicates:
    """Exact (bit-equal) duplicate rows."""

    rows: int  #: rows that repeat an earlier row
    groups: int  #: sets of equal rows
    first_groups: tuple[tuple[int, ...], ...]  #: first rows of the first groups
    group_sizes: tuple[int, ...]  #: sizes of those groups


@dataclass(frozen=True)
class NearDuplicates:
    """Pairs of sampled rows at cosine >= :data:`NEAR_DUP_COSINE` that are not equal."""

    pairs: int
    rows: int  #: sampled rows in at least one such pair
    sample: int  #: non-zero rows in the uniform sample
    share: float  #: rows / sample


@dataclass(frozen=True)
class NormOutliers:
    """Rows whose log2 norm lies beyond median +- k robust spreads (to the histogram's
    1/NORM_BINS_PER_OCTAVE octave)."""

    count: int
    low: int
    high: int
    share: float  #: of the finite non-zero rows
    k: float
    spread: float  #: robust spread of log2 norms, octaves (floored at NORM_MIN_SPREAD)
    median_norm: float
    lower: float  #: norms below this are outliers ...
    upper: float  #: ... and above this
    min_norm: float  #: over finite non-zero rows
    max_norm: float
    rows: tuple[int, ...]  #: outlier rows (sorted) among the most extreme kept
    rows_all: bool  #: whether ``rows`` lists every outlier


@dataclass(frozen=True)
class RogueDimensions:
    """Per-dimension shares of the variance and of the expected cosine ``||E u||^2``."""

    variance_top: tuple[tuple[int, float], ...]
    cosine_top: tuple[tuple[int, float], ...]
    mean_cosine: float  #: ``||E u||^2`` over unit rows (the expected cosine)
    line: float  #: share a dimension is flagged at
    rogue_variance: tuple[int, ...]
    rogue_cosine: tuple[int, ...]  #: empty when mean_cosine < ROGUE_MIN_MEAN_COSINE

    @property
    def rogue(self) -> tuple[int, ...]:
        return tuple(sorted({*self.rogue_variance, *self.rogue_cosine}))


@dataclass(frozen=True)
class Quantisation:
    """Originals ``x`` against their decoded compressed copy ``x_hat``."""

    rows: int  #: rows compared (finite and non-zero in both)
    mean_rel_error: float  #: mean of ||x - x_hat||^2 / ||x||^2
    max_rel_error: float
    variance_share: float  #: sum ||x - x_hat||^2 / sum ||x - mean x||^2


ROGUE_NOTE = ("such dimensions can carry task information: test standardising or removing "
              "them on the task, do not do it blindly")  # fmt: skip


@dataclass(frozen=True)
class Health:
    """What :func:`index_health` found. ``problems`` lists the flagged findings, one line
    each (empty when healthy); :meth:`lines` is the terminal text; :meth:`to_dict` the
    JSON-ready record."""

    rows: int
    d: int
    nan: RowFault
    inf: RowFault
    zero: RowFault
    duplicates: Duplicates
    near_duplicates: NearDuplicates | None
    norms: NormOutliers | None
    rogue: RogueDimensions | None
    isotropy: float | None  #: Mu & Viswanath's I(W) on the row sample
    isotropy_sample: int
    quantisation: Quantisation | None
    quantisation_reason: str | None  #: why quantisation is None

    @property
    def problems(self) -> list[str]:
        out = []
        for what, f in (("contain{} NaN", self.nan), ("contain{} Inf", self.inf),
                        ("{} all zeros", self.zero)):  # fmt: skip
            if f.count:
                verb = what.format(("s" if f.count == 1 else "") if "contain" in what
                                   else ("is" if f.count == 1 else "are"))  # fmt: skip
                out.append(f"{_rows_phrase(f.count)} {verb} (first: {_list(f.first)})")
        dup = self.duplicates
        if dup.rows:
            out.append(f"{_rows_phrase(dup.rows)} repeat{'s' if dup.rows == 1 else ''} an "
                       f"earlier row exactly, in {dup.groups} group{_s(dup.groups)} "
                       f"({_groups(dup)})")  # fmt: skip
        near = self.near_duplicates
        if near is not None and near.pairs and near.share >= NEAR_DUP_SHARE:
            out.append(f"near-duplicates: {_pct(near.share)} of a uniform sample of "
                       f"{near.sample} rows are in {near.pairs} pair{_s(near.pairs)} at cosine "
                       f">= {NEAR_DUP_COSINE} (line: {_pct(NEAR_DUP_SHARE)})")  # fmt: skip
        no = self.norms
        if no is not None and no.count:
            out.append(f"{_rows_phrase(no.count)} ({_pct(no.share)}) ha"
                       f"{'s an outlying norm' if no.count == 1 else 've outlying norms'}, "
                       f"outside [{no.lower:.3g}, {no.upper:.3g}] (log2-norm beyond the median "
                       f"+- {no.k:g} robust spreads, or a squared norm beyond the verdict's "
                       f"outlier line): {_outlier_rows(no)}")  # fmt: skip
        ro = self.rogue
        if ro is not None:
            for i in ro.rogue:
                out.append(f"rogue dimension {i}: {_dim_shares(ro, i)} (line: "
                           f"{_pct(ro.line)}); {ROGUE_NOTE}")  # fmt: skip
        q = self.quantisation
        if q is not None and q.mean_rel_error >= QUANT_REL_ERROR:
            out.append(f"quantisation loses {_pct(q.mean_rel_error)} of a row's squared norm "
                       f"on average (line: {_pct(QUANT_REL_ERROR)})")  # fmt: skip
        return out

    def lines(self) -> list[str]:
        """Terminal text, one finding a line (at most 12 lines)."""
        out = []
        faults = [(w, f) for w, f in (("NaN", self.nan), ("Inf", self.inf),
                                      ("all-zero", self.zero)) if f.count]  # fmt: skip
        if not faults:
            out.append("no NaN, Inf or all-zero rows")
        for what, f in faults:
            out.append(f"{what} rows: {f.count} (first: {_list(f.first)})")
        dup = self.duplicates
        out.append("exact duplicates: none" if not dup.rows else
                   f"exact duplicates: {dup.rows} row{_s(dup.rows)} repeat an earlier row, "
                   f"{dup.groups} group{_s(dup.groups)} ({_groups(dup)})")  # fmt: skip
        near = self.near_duplicates
        if near is not None:
            out.append(f"near-duplicates (cosine >= {NEAR_DUP_COSINE}, not equal): "
                       f"{near.pairs} pair{_s(near.pairs)}, {_pct(near.share)} of rows involved, "
                       f"in a uniform sample of {near.sample} rows")  # fmt: skip
        no = self.norms
        if no is not None:
            tail = f": {_outlier_rows(no)}" if no.count else ""
            out.append(f"norms: min {no.min_norm:.3g}, median {no.median_norm:.3g}, max "
                       f"{no.max_norm:.3g}; {no.count} outlier{_s(no.count)} ({_pct(no.share)}) "
                       f"outside [{no.lower:.3g}, {no.upper:.3g}] (median +- {no.k:g} robust "
                       "spreads of log2-norm, the top capped at the verdict's outlier line)"
                       f"{tail}")  # fmt: skip
        ro = self.rogue
        if ro is not None:
            out.append("variance share, top dims: " + _tops(ro.variance_top))
            out.append(f"expected-cosine share (mean cosine {ro.mean_cosine:.3g}), top dims: "
                       + _tops(ro.cosine_top))  # fmt: skip
            if ro.rogue:
                out.append(f"rogue dimension{_s(len(ro.rogue))} (share >= {_pct(ro.line)}): "
                           f"{_list(ro.rogue)}; {ROGUE_NOTE}")  # fmt: skip
        if self.isotropy is not None:
            out.append(f"isotropy I(W) (Mu & Viswanath): {self.isotropy:.3g} in a uniform "
                       f"sample of {self.isotropy_sample} rows (1 = isotropic, near 0 = a "
                       "common direction)")  # fmt: skip
        q = self.quantisation
        if q is not None:
            out.append(f"quantisation: relative squared error mean {q.mean_rel_error:.3g}, max "
                       f"{q.max_rel_error:.3g}; {_pct(q.variance_share)} of the total variance")
        else:
            out.append(f"quantisation error: n/a ({self.quantisation_reason})")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (plain ints, floats, lists; None where not measured)."""
        def rf(f: RowFault) -> dict[str, Any]:
            return {"count": f.count, "first_rows": list(f.first)}

        dup = self.duplicates
        near = self.near_duplicates
        no = self.norms
        ro = self.rogue
        q = self.quantisation
        out = {
            "rows": self.rows,
            "d": self.d,
            "nan_rows": rf(self.nan),
            "inf_rows": rf(self.inf),
            "zero_rows": rf(self.zero),
            "exact_duplicates": {
                "rows": dup.rows, "groups": dup.groups,
                "first_groups": [list(g) for g in dup.first_groups],
                "group_sizes": list(dup.group_sizes),
            },
            "near_duplicates": None if near is None else {
                "pairs": near.pairs, "rows": near.rows, "sample_rows": near.sample,
                "share": near.share, "cosine": NEAR_DUP_COSINE, "line": NEAR_DUP_SHARE,
            },
            "norm_outliers": None if no is None else {
                "count": no.count, "low": no.low, "high": no.high, "share": no.share,
                "k": no.k, "spread_log2": no.spread, "median_norm": no.median_norm,
                "lower": no.lower, "upper": no.upper, "min_norm": no.min_norm,
                "max_norm": no.max_norm, "rows": list(no.rows), "rows_complete": no.rows_all,
            },
            "rogue_dimensions": None if ro is None else {
                "variance_top": [[i, s] for i, s in ro.variance_top],
                "cosine_top": [[i, s] for i, s in ro.cosine_top],
                "mean_cosine": ro.mean_cosine, "line": ro.line,
                "rogue": list(ro.rogue), "rogue_variance": list(ro.rogue_variance),
                "rogue_cosine": list(ro.rogue_cosine), "note": ROGUE_NOTE,
            },
            "isotropy": self.isotropy,
            "isotropy_sample_rows": self.isotropy_sample,
            "quantisation": None if q is None else {
                "rows": q.rows, "mean_rel_error": q.mean_rel_error,
                "max_rel_error": q.max_rel_error, "variance_share": q.variance_share,
                "line": QUANT_REL_ERROR,
            },
            "quantisation_reason": self.quantisation_reason,
            "problems": self.problems,
        }  # fmt: skip
        result: dict[str, Any] = jsonable(out)
        return result


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def _pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def _list(rows: tuple[int, ...] | list[int]) -> str:
    return ", ".join(str(r) for r in rows)


def _rows_phrase(n: int) -> str:
    return f"{n} row{_s(n)}" if n != 1 else "1 row"


def _groups(dup: Duplicates) -> str:
    shown = []
    for g, size in zip(dup.first_groups, dup.group_sizes, strict=True):
        more = f" +{size - len(g)}" if size > len(g) else ""
        shown.append("=".join(str(r) for r in g) + more)
    return "rows " + "; ".join(shown) + ("; ..." if dup.groups > len(shown) else "")


def _outlier_rows(no: NormOutliers) -> str:
    if no.rows_all:
        return f"rows {_list(no.rows)}"
    return f"most extreme rows {_list(no.rows)}"


def _tops(top: tuple[tuple[int, float], ...]) -> str:
    return ", ".join(f"{i} ({_pct(s)})" for i, s in top)


def _dim_shares(ro: RogueDimensions, i: int) -> str:
    parts = []
    for what, top in (("of the variance", ro.variance_top), ("of the expected cosine",
                                                             ro.cosine_top)):  # fmt: skip
        share = dict(top).get(i)
        if share is not None:
            parts.append(f"{_pct(share)} {what}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- measuring
def index_health(counter: HealthCounter, moments: Moments,
                 source: EmbeddingSource | None = None, *,
                 chunk_rows: int | None = None,
                 outlier_norm_ratio: float = Thresholds.outlier_norm_ratio) -> Health:  # fmt: skip
    """Everything wrong with a store's rows that a pass over them can find.

    Args:
        counter: fed every chunk (with its global first row) that ``moments`` got.
        moments: of the same rows (its row sample, mean, scatter and unit-row sums).
        source: the store, for the quantisation error: when ``source.quantised`` is set
            (originals plus a compressed copy), both are read again, in step. Without a
            copy the reason is "the index keeps no originals" when ``source.note`` says
            "lossy" (rows decoded from codes), else "not a compressed index".
        chunk_rows: rows per read of that second pass (default: the source's).
        outlier_norm_ratio: the verdict's outlier line (``Thresholds``): a row whose
            squared norm exceeds this many times the mean squared norm is a norm outlier
            too, however wide the norms spread, so health and verdict agree.
    """
    d = moments.d
    if counter.d is not None and counter.d != d:
        raise InputError(f"health counter of d={counter.d} but moments of d={d}")
    nan, inf, zero = (RowFault(t.count, tuple(t.first)) for t in (counter.nan, counter.inf,
                                                                   counter.zero))  # fmt: skip
    repeats, groups, first, sizes = counter.duplicates()
    dup = Duplicates(repeats, groups, tuple(tuple(g) for g in first), tuple(sizes))
    sample = np.asarray(moments.sample_rows, dtype=np.float64)
    with blas_threads(1, "blas"):  # small products: one thread is faster on a busy machine
        near = _near_duplicates(sample)
        rogue = _rogue(moments)
        iso = _isotropy(moments, sample)
    if source is not None and source.quantised is not None:
        quant, reason = _quantisation(source, source.quantised, chunk_rows), None
    else:
        quant = None
        note = (source.note or "") if source is not None else ""
        reason = ("the index keeps no originals" if "lossy" in note.lower()
                  else "not a compressed index")  # fmt: skip
    return Health(
        rows=counter.rows_seen, d=d, nan=nan, inf=inf, zero=zero, duplicates=dup,
        near_duplicates=near, norms=_norm_outliers(counter, _heavy(moments, outlier_norm_ratio)),
        rogue=rogue, isotropy=iso,
        isotropy_sample=int(sample.shape[0]), quantisation=quant, quantisation_reason=reason,
    )  # fmt: skip


def _heavy(moments: Moments, ratio: float) -> float:
    """log2 of the norm at ``ratio`` times the mean squared norm (inf without rows)."""
    if moments.n < 1 or not moments.sq_norm_sum > 0:
        return math.inf
    mean_sq = math.log2(moments.sq_norm_sum / moments.n) + 2 * moments.scale_exp
    return 0.5 * (math.log2(ratio) + mean_sq)


def _unit(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Unit rows of non-zero finite rows (scaled by their largest entry first)."""
    top = np.abs(rows).max(axis=1, keepdims=True)
    u = rows / top
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u


def _near_duplicates(sample: NDArray[np.float64], block: int = 1024) -> NearDuplicates | None:
    """Pairs of sampled rows at cosine >= NEAR_DUP_COSINE that are not equal, by blocks
    of the Gram matrix (any sample size)."""
    s = sample[np.abs(sample).max(axis=1, initial=0.0) > 0] if sample.size else sample
    m = int(s.shape[0])
    if m < 2:
        return None
    u = _unit(s)
    pairs = 0
    involved = np.zeros(m, dtype=bool)
    for a in range(0, m, block):
        g = u[a : a + block] @ u[a:].T
        i, j = np.nonzero(g >= NEAR_DUP_COSINE)
        i, j = i + a, j + a
        keep = j > i
        i, j = i[keep], j[keep]
        if i.size:
            same = (s[i] == s[j]).all(axis=1)  # exact duplicates: reported as such
            i, j = i[~same], j[~same]
            pairs += int(i.size)
            involved[i] = True
            involved[j] = True
    rows = int(involved.sum())
    return NearDuplicates(pairs, rows, m, rows / m)


def _norm_outliers(counter: HealthCounter, heavy: float = math.inf) -> NormOutliers | None:
    """``heavy``: the log2 norm above which a row is an outlier whatever the spread (the
    verdict's outlier line, so that the two never disagree)."""
    hist = counter.norm_hist
    if hist is None:
        return None
    total = int(hist.sum())
    occupied = np.flatnonzero(hist)
    counts = hist[occupied]
    centres = (occupied - NORM_LOG2_RANGE * NORM_BINS_PER_OCTAVE + 0.5) / NORM_BINS_PER_OCTAVE
    cum = np.cumsum(counts)
    median = float(centres[np.searchsorted(cum, (total + 1) / 2)])
    dist = np.abs(centres - median)
    order = np.argsort(dist, kind="stable")
    mad = float(dist[order][np.searchsorted(np.cumsum(counts[order]), (total + 1) / 2)])
    spread = max(1.4826 * mad, NORM_MIN_SPREAD)
    lo_line, hi_line = median - NORM_MAD_K * spread, median + NORM_MAD_K * spread
    hi_line = min(hi_line, heavy)
    low = int(counts[centres < lo_line].sum())
    high = int(counts[centres > hi_line].sum())

    def centre(v: NDArray[np.float64]) -> NDArray[np.float64]:
        return (_bin_of(v) - NORM_LOG2_RANGE * NORM_BINS_PER_OCTAVE + 0.5) / NORM_BINS_PER_OCTAVE

    lv, lr = counter.low
    hv, hr = counter.high
    low_rows = lr[centre(lv) < lo_line]
    high_rows = hr[centre(hv) > hi_line]
    rows = sorted(int(r) for r in {*low_rows, *high_rows})
    rows_all = len(rows) == low + high
    if not rows_all:  # more than kept: the most extreme ones, lowest first
        rows = [int(r) for r in low_rows] + [int(r) for r in high_rows]
    return NormOutliers(
        count=low + high, low=low, high=high, share=(low + high) / total, k=NORM_MAD_K,
        spread=spread, median_norm=2.0**median, lower=2.0**lo_line, upper=2.0**hi_line,
        min_norm=float(2.0 ** lv[0]), max_norm=float(2.0 ** hv[0]), rows=tuple(rows),
        rows_all=rows_all,
    )  # fmt: skip


def _rogue(moments: Moments) -> RogueDimensions | None:
    d = moments.d
    var = np.diag(moments.scatter).copy()
    total = float(var.sum())
    nonzero = moments.n - moments.zero_rows
    if moments.n < 2 or not total > 0 or nonzero < 1:
        return None
    line = max(ROGUE_SHARE, min(ROGUE_TIMES_UNIFORM / d, ROGUE_SHARE_CAP))
    var_share = var / total
    mu = moments.unit_sum / nonzero
    contrib = mu * mu
    mean_cos = float(contrib.sum())
    cos_share = contrib / mean_cos if mean_cos > 0 else np.zeros(d)

    def top(share: NDArray[np.float64]) -> tuple[tuple[int, float], ...]:
        idx = np.argsort(-share, kind="stable")[:TOP_DIMS]
        return tuple((int(i), float(share[i])) for i in idx)

    rogue_var = tuple(int(i) for i in np.flatnonzero(var_share >= line))
    rogue_cos: tuple[int, ...] = ()
    if mean_cos >= ROGUE_MIN_MEAN_COSINE:
        rogue_cos = tuple(int(i) for i in np.flatnonzero(cos_share >= line))
    return RogueDimensions(top(var_share), top(cos_share), mean_cos, line, rogue_var, rogue_cos)


def _isotropy(moments: Moments, sample: NDArray[np.float64]) -> float | None:
    """Mu & Viswanath (2018): I(W) = min_c Z(c) / max_c Z(c), Z(c) = sum_i exp(c . w_i),
    over c = +-v for the eigenvectors v of W^T W (both signs: an eigenvector's sign is
    arbitrary, and the definition's min and max run over all unit c). W is the uniform
    row sample in the input's units; eigenvectors from the moments' uncentred second
    moment (scatter + n mean mean^T); log Z by logsumexp, so nothing overflows."""
    if sample.shape[0] < 2 or moments.n < 1:
        return None
    m2 = moments.second_moment()
    if not np.isfinite(m2).all():
        return None
    _, vecs = np.linalg.eigh(m2)
    proj = sample @ vecs  # (m, d): c . w_i for every eigenvector c
    if moments.scale_exp:
        with np.errstate(over="ignore"):
            proj = np.ldexp(proj, moments.scale_exp)
    if not np.isfinite(proj).all():
        return None
    log_z = np.concatenate([_logsumexp(proj), _logsumexp(-proj)])
    return float(math.exp(float(log_z.min() - log_z.max())))


def _logsumexp(a: NDArray[np.float64]) -> NDArray[np.float64]:
    top = a.max(axis=0)
    return top + np.log(np.exp(a - top).sum(axis=0))


def _quantisation(src: EmbeddingSource, dec: EmbeddingSource,
                  chunk_rows: int | None) -> Quantisation:  # fmt: skip
    """Stream originals and decoded copy in step: per-row relative squared error and the
    error's share of the originals' total variance (pairwise-merged scatter traces)."""
    if dec.shape != src.shape:
        raise InputError(f"{dec.name}: compressed copy of shape {dec.shape}, originals "
                         f"{src.shape}")  # fmt: skip
    rows = chunk_rows or src.default_rows()
    n, rel_sum, rel_max, err_sum = 0, 0.0, 0.0, 0.0
    count, mean, trace = 0, np.zeros(src.d), 0.0
    for x, xq in zip(src.chunks(rows), dec.chunks(rows), strict=True):
        with np.errstate(all="ignore"):
            xf = np.asarray(x, dtype=np.float64)
            err = np.einsum("ij,ij->i", xf - xq, xf - xq)
            sq = np.einsum("ij,ij->i", xf, xf)
        ok = np.isfinite(err) & np.isfinite(sq) & (sq > 0)
        if not ok.all():
            xf, err, sq = xf[ok], err[ok], sq[ok]
        if not sq.size:
            continue
        rel = err / sq
        n += int(rel.size)
        rel_sum += float(rel.sum())
        rel_max = max(rel_max, float(rel.max()))
        err_sum += float(err.sum())
        k = xf.shape[0]  # Chan et al.: trace of the scatter, merged pairwise
        cm = xf.mean(axis=0)
        ct = float(((xf - cm) ** 2).sum())
        delta = cm - mean
        tot = count + k
        trace += ct + count * k / tot * float(delta @ delta)
        mean = mean + delta * (k / tot)
        count = tot
    return Quantisation(n, rel_sum / n if n else 0.0, rel_max,
                        err_sum / trace if trace > 0 else 0.0)  # fmt: skip
