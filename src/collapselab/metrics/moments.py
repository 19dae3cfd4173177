"""A mergeable streaming accumulator of first and second moments of embedding rows.

One object serves a file larger than memory (fed chunk by chunk), many workers
(:meth:`Moments.merge`) and ``torch.distributed`` (:meth:`Moments.all_reduce`), so every
number collapselab reports comes from the same code whatever the source.

Accuracy on nearly collapsed data. When ``z_i = c + eps_i`` with ``|c| >> |eps|``, the
uncentred product ``Z^T Z`` is dominated by ``N c c^T`` and float32 accumulation loses
every small eigenvalue (relative errors > 100 and negative eigenvalues are typical). So
rows are shifted before any product, and everything is accumulated in float64:

1. Each call's rows are cut into cache-sized blocks. A run of blocks shares one shift
   ``s`` (the mean of its first rows, rounded to the input precision so that ``x - s`` is
   exact in float64); the shifted rows ``b_i = z_i - s`` are small, so the product sees
   only the ``eps`` part.
2. The block is written into a float64 buffer ``A = [b_i, 1, 1/|z_i|, rho_i/|z_i|]`` and
   ONE symmetric rank-k update ``A^T A`` (BLAS ``syrk``, which numpy dispatches for
   ``A.T @ A``: half the flops of a general product, so float64 runs at about the speed
   of a float32 ``X.T @ X``) gives the shifted scatter, the column sums (hence the exact
   mean) and the weighted row sums the unit-row statistics need, all at once.
3. Runs are merged with the pairwise update of Chan, Golub & LeVeque (1979):
   ``S = S_a + S_b + (n_a n_b / n) delta delta^T``. A block whose mean sits far from the
   run's shift (sorted data) starts a new run around its own mean, so nothing cancels.
4. Unit rows ``u_i = z_i / |z_i|`` are summed around ``r = s / |s|`` (``v_i = u_i - r``
   is small when rows are nearly equal), so the std of L2-normalised rows stays accurate
   down to spreads of 1e-5 of the norm, where ``sum u^2 - (sum u)^2 / n`` cancels.

Row statistics therefore cost next to nothing: a small C kernel (``_rows.c``, built by
``setup.py`` where a compiler exists) reads each row once, writes its shifted copy and
extra columns into ``A``, and accumulates the row norms and the weighted squares
``sum_i (b_ij / |z_i|)^2`` from L1 while it is there. Without the kernel (or with
``COLLAPSELAB_NO_KERNEL=1``) a numpy path computes the same numbers in five passes (copy,
norms, shift, and after the syrk a square and a matrix-vector product of the
cache-resident block): the shifted rows and the merges' rank-1 updates are the same bits,
the row norms and weighted squares are summed in another order (the last digits may
differ). It imports nothing beyond numpy (scipy's BLAS would bring ``numpy.random``, and
more import time than a small check). Large calls split
their rows over threads with single-threaded BLAS (the kernel releases the GIL), so every
step runs on all cores; buffers are per-thread and reused (fresh pages cost more than the
arithmetic done in them on a VM).
"""

from __future__ import annotations

import math
import os
import struct
import sys
import threading
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from collapselab._pool import LazyPool, blas_threads
from collapselab.dist import world_size
from collapselab.errors import InputError

#: set (to anything but "" or "0") to force the numpy path even where the C kernel is
#: built: how the tests and CI check that both paths give the same numbers
NO_KERNEL_ENV = "COLLAPSELAB_NO_KERNEL"

_rows: Any
if os.environ.get(NO_KERNEL_ENV, "") not in ("", "0"):
    _rows = None
else:
    try:  # the C row kernel (setup.py builds it where a C compiler is present)
        import collapselab.metrics._rows as _rows
    except ImportError:  # pragma: no cover - the numpy path computes the same numbers
        _rows = None
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


#: products per strip of the numpy path's rank-1 update (512 KiB of float64)
_STRIP_ELEMENTS = 2**16


def _rank1(a: NDArray[np.float64], n: int, alpha: float, x: NDArray[np.float64]) -> None:
    """``a[:n, :n] += alpha x x^T`` in place, for a C-contiguous float64 ``a`` (square, or
    wider than ``n``: the leading block): the kernel's one pass, else numpy over strips of
    rows with the kernel's arithmetic (``a_ji += (alpha x_j) x_i``, so both paths give the
    same bits). No scipy BLAS: ``import scipy.linalg`` imports ``numpy.random`` and costs
    more than a whole small check."""
    xs = np.ascontiguousarray(x[:n], dtype=np.float64)
    if _rows is not None:
        _rows.rank1(a, n, a.shape[1], alpha, xs)
        return
    t = alpha * xs
    step = max(1, _STRIP_ELEMENTS // max(n, 1))
    for j in range(0, n, step):
        h = min(step, n - j)
        prod = np.multiply(t[j : j + h, None], xs, out=_scratch("rank1", (h, n)))
        a[j : j + h, :n] += prod

#: Rows are accumulated in units of ``2**scale_exp`` chosen so that every entry lies in
#: [2**-100, 2**100]: there squares, scatter sums and the eigenvalues' squares (the
#: participation ratio) stay far from float64's overflow and underflow. Data inside the
#: range (practically all embeddings) keeps ``scale_exp = 0`` and costs nothing extra:
#: only a block whose largest squared row norm leaves [2**-200, 2**200] is looked at.
_ABS_HI = 2.0**100
_ABS_LO = 2.0**-100
_SQ_HI = _ABS_HI * _ABS_HI
_SQ_LO = _ABS_LO * _ABS_LO
#: rows whose squared norm is below this count as zero rows (see _Partial.block)
_SQ_TINY = 2.0**-300


class _Rescale(Exception):
    """Raised by a :class:`_Partial` whose block holds finite entries outside
    [_ABS_LO, _ABS_HI] in the current units: :meth:`Moments.update` rescales and retries."""

#: target size in bytes of each thread's float64 block buffer. OpenBLAS's syrk packs its
#: panels itself, so the block need not fit a cache; taller blocks spread its per-call
#: overheads. Measured on 2 cores (update / numpy's 2-thread syrk of the float64 matrix,
#: medians of 7 interleaved): (100000, 768) 1.09 / 1.04 / 0.95 / 0.99 for 8 / 16 / 32 /
#: 64 MiB; (1000000, 128) 1.05 / 0.91 / 0.84 / 0.86 ...
_BLOCK_BYTES = 32 * 2**20
#: ... but never fewer rows than this (numpy's syrk at d=771 keeps 57 GFLOP/s per core
#: from 1024 rows on; fewer rows would pay the per-block overheads too often).
_MIN_BLOCK_ROWS = 1024
#: threads for large updates (each with single-threaded BLAS)
_WORKERS = min(4, os.cpu_count() or 1)


def single_threaded_blas() -> Any:
    """Context limiting every loaded BLAS to one thread (:func:`collapselab._pool.blas_threads`)."""
    return blas_threads(1, "blas")


_POOL = LazyPool(_WORKERS, "moments")


def _to_numpy(x: Any) -> NDArray[Any]:
    """Accept numpy arrays and torch tensors (any device, any float dtype) without copies
    where possible; bfloat16 has no numpy dtype and is upcast to float32."""
    if isinstance(x, np.ndarray):
        return x
    torch = sys.modules.get("torch")  # a tensor implies torch is loaded: never import it here
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype in (torch.bfloat16, torch.float16) or not t.is_floating_point():
            t = t.float() if t.is_floating_point() else t.double()
        return np.asarray(t.cpu().numpy())
    return np.asarray(x)


def _unit_rows(x: NDArray[Any]) -> NDArray[np.float64]:
    """``x_i / |x_i|`` in float64 for finite rows (zero rows stay zero). Each row is first
    divided by its largest magnitude, so rows of 1e200 or 1e-200 neither overflow nor
    underflow in the squares of the norm."""
    u = x.astype(np.float64)
    top = np.abs(u).max(axis=1, keepdims=True, initial=0.0)
    u /= np.where(top > 0, top, 1.0)
    u /= np.maximum(np.linalg.norm(u, axis=1, keepdims=True), 1.0)  # >= 1 unless all 0
    return u


_LOCAL = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype: type = np.float64) -> NDArray[Any]:
    """A reusable per-thread buffer: fresh pages cost ~2 ms per MiB on first touch on a
    VM, more than the arithmetic done in them, so blocks never allocate."""
    size = math.prod(shape)
    buf = getattr(_LOCAL, name, None)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(size, dtype=dtype)
        setattr(_LOCAL, name, buf)
    return buf[:size].reshape(shape)


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def _check_memory(d: int) -> None:
    """Refuse, with one line, a ``d`` whose ``d x d`` float64 state cannot fit in memory
    (the scatter, a run buffer per worker, the block product and the eigensolve's copies:
    about 8 matrices), instead of failing in the allocator or being killed mid-stream."""
    need = 8 * 8 * (d + 3) ** 2
    have = _physical_memory()
    if have is not None and need > have:
        from collapselab.errors import InputError

        raise InputError(
            f"{d} columns: the {d} x {d} float64 moments need about {need / 2**30:.3g} GiB, "
            f"more than this machine's {have / 2**30:.3g} GiB of memory"
        )


_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment (2**64 / golden ratio)
_M64 = 2**64 - 1


def _mix64(z: Any) -> Any:
    """splitmix64's finaliser (Steele et al. 2014): a bijection of 64-bit integers whose
    outputs pass BigCrush for consecutive inputs; Python ints or uint64 arrays (whose
    products wrap modulo 2**64, as the algorithm wants)."""
    if isinstance(z, int):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
        return z ^ (z >> 31)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _row_keys(stream: int, start: int, count: int) -> NDArray[np.float64]:
    """Uniform keys in ``[0, 1)`` of the rows at positions ``start .. start + count - 1``
    of a feed: ``splitmix64(stream + (i + 1) * golden) >> 11``, over 2**53.

    A function of the position alone (counter-based, no generator state): a stream fed in
    any chunking, or stopped, saved and resumed, draws the same keys; and no
    ``numpy.random`` import (20 ms of a small check's start-up)."""
    i = np.arange(start + 1, start + count + 1, dtype=np.uint64)
    i *= np.uint64(_GOLDEN)
    i += np.uint64(stream)
    return (_mix64(i) >> np.uint64(11)).astype(np.float64) * 2.0**-53


class _Run:
    """Sums over consecutive blocks taken around one shift ``s``: ``g = A^T A`` of the
    augmented shifted rows (see :meth:`_Partial.add`) plus the unit-row terms."""

    def __init__(self, shift: NDArray[Any], d: int, g: NDArray[np.float64]) -> None:
        self.shift = shift.astype(np.float64)  # exactly representable in the input precision
        with np.errstate(all="ignore"):  # a block that will be rescaled may overflow here
            s_norm = math.sqrt(float(self.shift @ self.shift))
        s_norm = s_norm if math.isfinite(s_norm) else 0.0
        self.inv_s_norm = 1.0 / s_norm if s_norm > 0 else 0.0
        self.r = self.shift * self.inv_s_norm  # s / |s| (0 when s = 0)
        self.g = g  # (d + 3, d + 3), reused across calls: zeroed here
        self.g.fill(0.0)
        self.wsq = np.zeros(d)
        self.rho_sum = 0.0
        self.rho_sq = 0.0
        self.nonzero = 0

    def detach(self) -> _Run:
        self.g = self.g.copy()  # off the reused buffer, which the next run takes
        return self


class _Partial:
    """Everything a contiguous range of rows contributes, built on one thread without
    touching the :class:`Moments` it will be merged into: closed runs in order plus the
    row-norm statistics."""

    def __init__(self, d: int, acc: NDArray[np.float64], check_low: bool = True) -> None:
        self.d = d
        self.acc = acc  # (d + 3, d + 3) buffer of the current run's A^T A
        self.check_low = check_low  # ask for upscaling when every entry is tiny
        self.runs: list[_Run] = []
        self.run: _Run | None = None
        self.rows_seen = 0
        self.nonfinite_rows = 0
        self.first_nonfinite = -1
        self.sq_norm_sum = 0.0
        self.norm_sum = 0.0
        self.norm_min = math.inf
        self.norm_max = 0.0
        self.zero_rows = 0

    def feed(self, x: NDArray[Any], rows: int) -> _Partial:
        # blocks of at most ``rows``, all about the same height: no thin tail block
        # (a syrk of 85 rows after one of 10837 costs far more than its share)
        rows = -(-x.shape[0] // -(-x.shape[0] // rows)) if x.shape[0] else rows
        for start in range(0, x.shape[0], rows):
            self.block(x[start : start + rows])
        if self.run is not None and self.run.g[self.d, self.d]:  # a run of no rows: skip
            self.runs.append(self.run)
            self.run = None
        return self

    def block(self, x: NDArray[Any]) -> None:
        offset = self.rows_seen
        self.rows_seen += x.shape[0]
        a, sq, wsq = self._prepare(x)
        top = float(sq.max())  # nan if any row has a NaN
        if not _SQ_LO <= top <= _SQ_HI or ((sq > 0.0) & (sq < _SQ_TINY)).any():
            # Rare path (NaN/Inf, all-zero or out-of-range rows): is a rescale needed?
            with np.errstate(all="ignore"):
                big = float(np.abs(x[np.isfinite(x).all(axis=1)]).max(initial=0.0))
            if big > _ABS_HI or (self.check_low and 0.0 < big < _ABS_LO):
                raise _Rescale
            tiny = (sq > 0.0) & (sq < _SQ_TINY)
            if tiny.any():
                # rows of norm below 2**-150 (in units where entries reach up to 2**100)
                # count as zero rows: 1/|z_i| would overflow the unit-row sums
                x = np.array(x)
                x[tiny] = 0
                a, sq, wsq = self._prepare(x)
        if not np.isfinite(sq).all():
            # Rare path: rows with NaN/Inf are counted, located and left out.
            bad = ~np.isfinite(sq)
            idx = np.flatnonzero(bad)
            if self.first_nonfinite < 0:
                self.first_nonfinite = offset + int(idx[0])
            self.nonfinite_rows += int(idx.size)
            x = np.ascontiguousarray(x[~bad])
            if not x.shape[0]:
                return
            a, sq, wsq = self._prepare(x)
        self.add(x, a, sq, wsq)

    def _prepare(
        self, x: NDArray[Any], shift: NDArray[np.float64] | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64] | None]:
        """Write the shifted rows and the columns ``[1, 1/|z_i|, rho_i/|z_i|]`` into the
        thread's ``(k, d + 3)`` float64 buffer ``A``; return ``A``, ``|z_i|^2`` and, from
        the C kernel, the block's weighted squares (None on the numpy path, which takes
        them from ``A`` after the syrk)."""
        k, d = x.shape
        run = self.run
        if run is None:
            if shift is None:
                # finite rows only, picked before the cast: a signalling NaN (damaged
                # bytes read as float32) raises "invalid value" when cast to float64
                head = x[: min(k, 256)]
                head = np.asarray(head[np.isfinite(head).all(axis=1)], dtype=np.float64)
                with np.errstate(all="ignore"):  # rows near 1.8e308 overflow the mean
                    shift = head.mean(axis=0) if head.shape[0] else np.zeros(d)
                if not np.isfinite(shift).all():
                    shift = head[0]  # such a block is rescaled anyway; any finite row does
            if x.dtype.kind == "f" and x.dtype.itemsize <= 4:
                shift = shift.astype(np.float32)  # so that x - s is exact in float64
            run = self.run = _Run(shift, d, self.acc)
        a = _scratch("a", (k, d + 3))
        if _rows is not None and x.dtype in _KERNEL_DTYPES and x.flags.c_contiguous:
            sq, wsq = np.empty(k), np.empty(d)
            with np.errstate(all="ignore"):
                _rows.shift_rows(x, k, d, run.shift, run.inv_s_norm, a, sq, wsq)
            return a, sq, wsq
        with np.errstate(all="ignore"):  # NaN/Inf rows: found from sq by block(), left out
            np.copyto(a[:, :d], x, casting="unsafe")  # (a signalling NaN's cast warns)
            sq = np.einsum("ij,ij->i", a[:, :d], a[:, :d])  # ||z_i||^2, (k,)
            # b = x - s in place, one rounding as in the kernel (exact for float32 rows).
            # numpy's broadcast, not scipy's BLAS dger (faster, but ``import scipy.linalg``
            # pulls in numpy.random and more than a small check costs)
            np.subtract(a[:, :d], run.shift, out=a[:, :d])
        with np.errstate(all="ignore"):  # as in the kernel: huge rows are rescaled later
            inv = 1.0 / np.sqrt(sq)
            inv[sq == 0] = 0.0
            a[:, d] = 1.0
            a[:, d + 1] = inv
            np.multiply(inv, np.where(sq > 0, inv - run.inv_s_norm, 0.0), out=a[:, d + 2])
        return a, sq, None

    def add(
        self,
        x: NDArray[Any],
        a: NDArray[np.float64],
        sq: NDArray[np.float64],
        wsq: NDArray[np.float64] | None,
        retry: bool = True,
    ) -> None:
        """Add finite rows ``x`` prepared in ``a`` (see :meth:`_prepare`).

        One syrk ``A^T A`` yields the shifted scatter, the column sums (hence the exact
        mean) and the weighted row sums the unit-row statistics need. A block whose mean
        sits far from the run's shift (sorted data) starts a run of its own, shifted by
        its own mean, so nothing cancels.
        """
        k, d = x.shape
        run = self.run
        assert run is not None
        g = np.matmul(a.T, a, out=_scratch("g_block", (d + 3, d + 3)))  # syrk
        delta = g[:d, d] / k  # block mean - s
        if retry and k * float(delta @ delta) > 0.5 * float(np.trace(g[:d, :d])):
            # the block's mean sits far from the run's shift: close the run and start
            # a new one around this block's own mean
            if run.g[d, d]:
                self.runs.append(run.detach())
            self.run = None
            self.add(x, *self._prepare(x, shift=run.shift + delta), retry=False)
            return
        run.g += g
        norms = np.sqrt(sq)
        nonzero = norms > 0
        inv = a[:, d + 1].copy()  # 1/||z_i||, 0 for zero rows
        # Unit rows u_i = inv_i (b_i + s) are summed around r = s / |s|, so that nearly
        # equal rows give small terms: v_i = u_i - r = inv_i b_i + rho_i s with
        # rho_i = inv_i - 1/|s| (0 for zero rows, which have no unit row).
        rho = np.where(nonzero, inv - run.inv_s_norm, 0.0)
        if wsq is None:
            # sum_i inv_i^2 (x_i - s)^2 per column: the syrk is done with A, so square it
            # in place (one contiguous pass) and weight by a matrix-vector product
            np.square(a, out=a)
            wsq = (a.T @ (inv * inv))[:d]
        run.wsq += wsq
        run.rho_sum += float(rho.sum())
        run.rho_sq += float(rho @ rho)
        nz = int(np.count_nonzero(nonzero))
        run.nonzero += nz
        self.sq_norm_sum += float(sq.sum())
        self.norm_sum += float(norms.sum())
        self.norm_min = min(self.norm_min, float(norms.min()))
        self.norm_max = max(self.norm_max, float(norms.max()))
        self.zero_rows += k - nz


#: rows of the uniform sample a :class:`Moments` keeps for the pairwise statistics
#: (uniformity, max cosine) when none is asked for: the package's one default (every
#: ``sample_size=None`` means this)
SAMPLE_SIZE = 2048

#: header of :meth:`Moments.to_bytes`: magic, version, d, sample_size, seed, float64 count
_HEADER = struct.Struct("<8sIIIqQ")
_MAGIC = b"CLMOMNTS"
_STATE_VERSION = 1


@dataclass
class Moments:
    """Count, mean and scatter of rows, plus the row statistics the verdict needs.

    Args:
        d: number of columns.
        sample_size: size of the uniform row sample kept for pairwise statistics
            (uniformity, max cosine); mergeable (bottom-k of random keys). Default
            :data:`SAMPLE_SIZE`.
        seed: seed of the sample's random keys. Workers that merge should use
            different seeds (e.g. ``seed + rank``).

    Attributes (float64):
        n: rows accumulated (finite rows only).
        mean: ``(d,)`` row mean.
        scatter: ``(d, d)`` ``sum_i (z_i - mean)(z_i - mean)^T``.
        sq_norm_sum: ``sum_i ||z_i||^2``; ``norm_sum``, ``norm_min``, ``norm_max``: of ``||z_i||``.
        unit_sum / unit_sq_sum: ``(d,)`` sums of ``u_i = z_i / ||z_i||`` and of ``u_i**2``
            over the ``n - zero_rows`` non-zero rows.
        nonfinite_rows / first_nonfinite: rows with NaN/Inf (excluded from everything
            else) and the 0-based index of the first one in feeding order.
        input_eps: machine epsilon of the least precise input dtype seen.
        scale_exp: the rows are accumulated as ``z * 2**-scale_exp``: ``mean``, ``scatter``,
            the norm sums and ``sample_rows`` (hence :meth:`covariance` and
            :meth:`second_moment`) are in units of ``2**scale_exp``. It is 0 unless
            finite entries beyond ``2**100`` (e.g. 1e200, whose squares overflow float64)
            or only entries below ``2**-100`` are fed; :func:`summarize` reports in the
            input's units.
    """

    d: int
    sample_size: int = SAMPLE_SIZE
    seed: int = 0
    n: int = 0
    rows_seen: int = 0
    mean: NDArray[np.float64] = field(init=False, repr=False)
    scatter: NDArray[np.float64] = field(init=False, repr=False)
    sq_norm_sum: float = 0.0
    norm_sum: float = 0.0
    norm_min: float = math.inf
    norm_max: float = 0.0
    zero_rows: int = 0
    unit_sum: NDArray[np.float64] = field(init=False, repr=False)
    unit_sq_sum: NDArray[np.float64] = field(init=False, repr=False)
    nonfinite_rows: int = 0
    first_nonfinite: int = -1
    input_eps: float = float(np.finfo(np.float64).eps)
    align_sum: float = 0.0
    align_n: int = 0
    scale_exp: int = 0
    sample_keys: NDArray[np.float64] = field(init=False, repr=False)
    sample_rows: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.d < 1:
            raise InputError(f"Moments needs d >= 1 columns, got {self.d}")
        d = self.d
        _check_memory(d)
        self.mean = np.zeros(d)
        self.scatter = np.zeros((d, d))
        self.unit_sum = np.zeros(d)
        self.unit_sq_sum = np.zeros(d)
        self.sample_keys = np.empty(0)
        self.sample_rows = np.empty((0, d))
        self._stream = _mix64(self.seed & _M64)  # the keys' stream (see _row_keys)
        self._acc: list[NDArray[np.float64]] = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(cls, z: Any, paired: Any = None, **kwargs: Any) -> Moments:
        """Moments of one matrix ``z`` of shape ``(N, d)`` (and its paired view)."""
        arr = _to_numpy(z)
        if arr.ndim != 2:
            raise InputError(f"expected a 2-D (N, d) matrix, got shape {arr.shape}")
        return cls(arr.shape[1], **kwargs).update(arr, paired=paired)

    # ------------------------------------------------------------------ feeding
    def update(self, z: Any, paired: Any = None) -> Moments:
        """Add the rows of ``z`` (shape ``(N, d)``, numpy or torch, any real dtype).

        Args:
            z: rows to add.
            paired: optional second view of the same rows (same shape); adds to the
                alignment statistic ``E ||u_i - u'_i||^2`` of L2-normalised rows
                (Wang & Isola 2020, alpha = 2). Rows of ``paired`` are not added.

        Returns:
            self, for chaining.
        """
        x = _to_numpy(z)
        if x.ndim != 2 or x.shape[1] != self.d:
            raise InputError(f"expected rows of shape (N, {self.d}), got {x.shape}")
        if x.dtype.kind == "f":
            self.input_eps = max(self.input_eps, float(np.finfo(x.dtype).eps))
        if paired is not None:
            self._update_alignment(x, _to_numpy(paired))
        if self.scale_exp:
            x = self._in_units(x, self.scale_exp)
        try:
            self._feed(x, sample=True, check_low=True)
        except _Rescale:
            # Rare: finite entries beyond 2**100 (or all below 2**-100) in our units.
            # Re-express everything in units of 2**e with the largest magnitude near 1
            # (powers of two: exact) and feed the rows again; the sample already holds
            # this call's rows, in the old units, and is rescaled with the rest.
            with np.errstate(all="ignore"):
                big = float(np.abs(x[np.isfinite(x).all(axis=1)]).max(initial=0.0))
            top = max(big, self.norm_max if self.n else 0.0)
            shift = math.frexp(top)[1]
            self._rescale(self.scale_exp + shift)
            self._feed(self._in_units(x, shift), sample=False, check_low=False)
        return self

    @staticmethod
    def _in_units(x: NDArray[Any], exp: int) -> NDArray[np.float64]:
        """``x * 2**-exp`` in float64 (exact but for entries that leave the range)."""
        with np.errstate(all="ignore"):
            return np.ldexp(np.asarray(x, dtype=np.float64), -exp)

    def _rescale(self, exp: int) -> None:
        """Re-express the state in units of ``2**exp`` (was ``2**scale_exp``)."""
        k = self.scale_exp - exp  # stored values are multiplied by 2**k
        if not k:
            return
        with np.errstate(all="ignore"):
            self.mean = np.ldexp(self.mean, k)
            self.scatter = np.ldexp(self.scatter, 2 * k)
            self.sample_rows = np.ldexp(self.sample_rows, k)
            self.sq_norm_sum = math.ldexp(self.sq_norm_sum, 2 * k)
            self.norm_sum = math.ldexp(self.norm_sum, k)
            if math.isfinite(self.norm_min):
                self.norm_min = math.ldexp(self.norm_min, k)
            self.norm_max = math.ldexp(self.norm_max, k)
        self.scale_exp = exp

    def _feed(self, x: NDArray[Any], sample: bool, check_low: bool) -> None:
        """Add the rows of ``x`` (in our units); raises :class:`_Rescale` with the state
        untouched, but for the row sample when ``sample``."""
        rows = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (8 * (self.d + 3)))
        workers = min(_WORKERS, x.shape[0] // _MIN_BLOCK_ROWS)
        # Every BLAS call below runs single-threaded: the row threads are the parallelism,
        # and a BLAS pool spinning on the same cores slows small updates down ~3x.
        acc = self._accumulators(max(workers, 1))
        with single_threaded_blas():
            if workers < 2:
                if sample:
                    self._update_sample(x)
                self._absorb(_Partial(self.d, acc[0], check_low).feed(x, rows))
                return
            # Contiguous row ranges on parallel threads (numpy releases the GIL), merged
            # in order: every step runs on all cores, the centring and row statistics
            # too, not only the syrk; the sample is drawn meanwhile.
            bounds = [x.shape[0] * i // workers for i in range(workers + 1)]
            futures = [
                _POOL.get().submit(
                    _Partial(self.d, acc[i], check_low).feed, x[bounds[i] : bounds[i + 1]], rows
                )
                for i in range(workers)
            ]
            if sample:
                self._update_sample(x)
            wait(futures)  # all done (their buffers are free) before anything is absorbed
            parts = [f.result() for f in futures]
            for part in parts:
                self._absorb(part)

    def _accumulators(self, count: int) -> list[NDArray[np.float64]]:
        """``count`` reused ``(d + 3, d + 3)`` buffers for the runs of one call (one per
        worker), allocated once per object: fresh pages cost more than filling them."""
        while len(self._acc) < count:
            self._acc.append(np.empty((self.d + 3, self.d + 3)))
        return self._acc[:count]

    def _absorb(self, part: _Partial) -> None:
        """Fold a range's partial sums in, as if its rows came after ours."""
        if part.nonfinite_rows:
            if self.first_nonfinite < 0:
                self.first_nonfinite = self.rows_seen + part.first_nonfinite
            self.nonfinite_rows += part.nonfinite_rows
        self.rows_seen += part.rows_seen
        self.sq_norm_sum += part.sq_norm_sum
        self.norm_sum += part.norm_sum
        self.norm_min = min(self.norm_min, part.norm_min)
        self.norm_max = max(self.norm_max, part.norm_max)
        self.zero_rows += part.zero_rows
        d = self.d
        for run in part.runs:
            g, s = run.g, run.shift
            k = int(round(g[d, d]))
            if not k:  # no rows (every row of its blocks was non-finite)
                continue
            delta = g[:d, d] / k  # run mean - s
            # scatter about the run's mean: g[:d, :d] -= k delta delta^T, in place
            _rank1(g, d, -float(k), delta)
            self._merge_moments(k, s + delta, g[:d, :d])
            # sum v = sum inv b + s sum rho
            # sum v^2 = sum inv^2 b^2 + 2 s sum inv rho b + s^2 sum rho^2
            v_sum = g[:d, d + 1] + s * run.rho_sum
            v_sq = run.wsq + 2.0 * s * g[:d, d + 2] + s * s * run.rho_sq
            self.unit_sum += v_sum + run.nonzero * run.r
            self.unit_sq_sum += v_sq + 2.0 * run.r * v_sum + run.nonzero * run.r * run.r

    def _merge_moments(
        self, n_b: int, mean_b: NDArray[np.float64], s_b: NDArray[np.float64]
    ) -> None:
        """Chan et al. (1979) pairwise update of (n, mean, scatter)."""
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / n)
        self.scatter += s_b
        if n_a:  # + (n_a n_b / n) delta delta^T, in place (no d x d temporary)
            with single_threaded_blas():
                _rank1(self.scatter, self.d, n_a * n_b / n, delta)
        self.n = n

    def _update_alignment(self, x: NDArray[Any], y: NDArray[Any]) -> None:
        if y.shape != x.shape:
            raise InputError(f"paired view has shape {y.shape}, expected {x.shape}")
        # pairs with a NaN/Inf row are left out before any arithmetic on them (Inf / Inf
        # and a signalling NaN's cast would warn)
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        dist2 = np.sum((_unit_rows(x[ok]) - _unit_rows(y[ok])) ** 2, axis=1)
        self.align_sum += float(dist2.sum())
        self.align_n += int(ok.sum())

    def _update_sample(self, x: NDArray[Any]) -> None:
        """Bottom-k sampling: each row gets a uniform key; keep the finite rows of the k
        smallest keys. Mergeable (the union's bottom-k is the bottom-k of the union);
        only the rows that enter the sample are ever gathered."""
        if self.sample_size <= 0:  # no sample kept (e.g. the drift test's blocks)
            return
        keys = _row_keys(self._stream, self.rows_seen, x.shape[0])
        while True:
            limit = self.sample_keys.max() if self.sample_keys.size >= self.sample_size else 2.0
            cand = np.flatnonzero(keys < limit)
            if cand.size > self.sample_size:  # only the best k new rows can enter
                cand = cand[np.argpartition(keys[cand], self.sample_size - 1)[: self.sample_size]]
            rows_of = x[cand]
            bad = self._offer(keys[cand], rows_of.__getitem__)
            if bad is None:
                return
            keys[cand[bad]] = np.inf  # NaN/Inf rows never enter; offer again without them

    def _offer(
        self, keys: NDArray[np.float64], take: Callable[[NDArray[np.intp]], NDArray[Any]]
    ) -> NDArray[np.intp] | None:
        """Merge rows with ``keys`` into the bottom-k sample; ``take(i)`` returns the
        rows of positions ``i``, asked only for those that enter. Returns the positions of
        entering rows with NaN/Inf (nothing changed then), or None once done."""
        if self.sample_size <= 0:
            return None
        old = self.sample_keys.size
        all_keys = np.concatenate([self.sample_keys, keys])
        if all_keys.size <= self.sample_size:
            keep = np.arange(all_keys.size)
        else:
            keep = np.argpartition(all_keys, self.sample_size - 1)[: self.sample_size]
        entering = keep[keep >= old] - old  # new rows that make the cut
        rows = np.asarray(take(entering))
        finite = np.isfinite(rows).all(axis=1)  # before any cast or arithmetic on them
        if not finite.all():
            return entering[~finite]
        rows = rows.astype(np.float64, copy=False)
        if old < self.sample_size:  # still filling: rebuild once
            kept = keep[keep < old]
            self.sample_keys = np.concatenate([self.sample_keys[kept], keys[entering]])
            self.sample_rows = np.concatenate([self.sample_rows[kept], rows])
            return None
        kept_old = np.zeros(old, dtype=bool)
        kept_old[keep[keep < old]] = True
        free = np.flatnonzero(~kept_old)  # evicted slots; as many as entering rows
        self.sample_keys[free] = keys[entering]
        self.sample_rows[free] = rows
        return None

    # ------------------------------------------------------------------ combining
    def merge(self, other: Moments) -> Moments:
        """Fold ``other`` into ``self`` exactly (as if its rows had been fed after ours)."""
        if other.d != self.d:
            raise InputError(f"cannot merge moments of d={other.d} into d={self.d}")
        if other.scale_exp != self.scale_exp:  # common units: the larger (nothing overflows)
            if other.scale_exp > self.scale_exp or not self.n:
                self._rescale(other.scale_exp)
            else:
                other = other.copy()
                other._rescale(self.scale_exp)
        if other.nonfinite_rows:
            if self.first_nonfinite < 0:
                self.first_nonfinite = self.rows_seen + other.first_nonfinite
            self.nonfinite_rows += other.nonfinite_rows
        self.rows_seen += other.rows_seen
        if other.n:
            self._merge_moments(other.n, other.mean, other.scatter)
        self.sq_norm_sum += other.sq_norm_sum
        self.norm_sum += other.norm_sum
        self.norm_min = min(self.norm_min, other.norm_min)
        self.norm_max = max(self.norm_max, other.norm_max)
        self.zero_rows += other.zero_rows
        self.unit_sum += other.unit_sum
        self.unit_sq_sum += other.unit_sq_sum
        self.input_eps = max(self.input_eps, other.input_eps)
        self.align_sum += other.align_sum
        self.align_n += other.align_n
        if other.sample_keys.size:
            self._offer(other.sample_keys, lambda i: other.sample_rows[i])
        return self

    def copy(self) -> Moments:
        """An independent copy (merging into it leaves ``self`` unchanged)."""
        out = Moments(self.d, sample_size=self.sample_size, seed=self.seed)
        out.merge(self)
        out._stream = _mix64(self._stream ^ _GOLDEN)  # not the keys of our next rows
        return out

    def all_reduce(self) -> Moments:
        """Combine the moments of every rank of the default ``torch.distributed`` group.

        Each rank's state is all-gathered (a few ``d x d`` floats: never the rows) and
        merged in rank order, so every rank ends with identical global moments. A no-op
        when torch.distributed is not initialised (then torch is not even imported).
        """
        world = world_size()  # 1 without a process group (torch not even imported)
        if world == 1:
            return self
        import torch
        import torch.distributed as dist

        state = torch.from_numpy(self._pack())
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(world)]
        dist.all_gather(sizes, torch.tensor([state.numel()], dtype=torch.int64))
        longest = int(max(int(s) for s in sizes))
        padded = torch.zeros(longest, dtype=torch.float64)
        padded[: state.numel()] = state
        gathered = [torch.zeros(longest, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(gathered, padded)
        total = Moments(self.d, sample_size=self.sample_size, seed=self.seed)
        for g, s in zip(gathered, sizes, strict=True):
            total.merge(Moments._unpack(g[: int(s)].numpy(), self.d, self.sample_size))
        self.__dict__.update({k: v for k, v in total.__dict__.items() if k != "_stream"})
        return self

    def to_array(self) -> NDArray[np.float64]:
        """The whole state as one float64 vector (for checkpoints and collectives);
        :meth:`from_array` restores it."""
        return self._pack()

    @classmethod
    def from_array(cls, v: NDArray[np.float64], d: int, sample_size: int | None = None) -> Moments:
        """Inverse of :meth:`to_array` (``sample_size``: default :data:`SAMPLE_SIZE`)."""
        size = SAMPLE_SIZE if sample_size is None else sample_size
        return cls._unpack(np.asarray(v, dtype=np.float64), d, size)

    def to_bytes(self) -> bytes:
        """The whole state as versioned bytes, for engines that ship states between
        workers (Ray Data, Spark) or store them; :meth:`from_bytes` restores it exactly.

        Layout: a 36-byte little-endian header (magic ``b"CLMOMNTS"``, format version,
        ``d``, ``sample_size``, ``seed``, number of float64 values) then the float64
        state: ``d * d`` (scatter) ``+ 3 d + 13`` (mean, unit sums, scalars; one more
        for a rescaled state) ``+ m (d + 1)`` for the ``m <= sample_size`` sampled rows
        and their keys. For ``d = 384`` that is
        1.2 MB plus 3.2 KB per sampled row (6.3 MB at the default :data:`SAMPLE_SIZE`, 2048).
        """
        body = np.ascontiguousarray(self._pack(), dtype="<f8")
        head = _HEADER.pack(_MAGIC, _STATE_VERSION, self.d, self.sample_size, self.seed,
                            body.size)  # fmt: skip
        return head + body.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, d: int | None = None) -> Moments:
        """Inverse of :meth:`to_bytes`.

        Args:
            data: bytes written by :meth:`to_bytes`.
            d: the number of columns expected (checked when given).

        Raises:
            InputError: not a collapselab state, a state of another format version or of
                another ``d``, or truncated.
        """
        buf = memoryview(data).cast("B")
        if buf.nbytes < _HEADER.size or bytes(buf[:8]) != _MAGIC:
            raise InputError("not a collapselab Moments state (bad magic bytes)")
        _, version, dd, sample_size, seed, count = _HEADER.unpack(bytes(buf[: _HEADER.size]))
        if version != _STATE_VERSION:
            raise InputError(
                f"Moments state of format version {version}; this collapselab reads version "
                f"{_STATE_VERSION}: produce the states with the same collapselab version")
        if d is not None and dd != d:
            raise InputError(f"Moments state of d={dd}, expected d={d}")
        if buf.nbytes != _HEADER.size + 8 * count:
            raise InputError(f"truncated Moments state: {buf.nbytes} bytes, expected "
                             f"{_HEADER.size + 8 * count}")  # fmt: skip
        v = np.frombuffer(buf, dtype="<f8", count=count, offset=_HEADER.size)
        out = cls._unpack(v.astype(np.float64), dd, sample_size)
        out.seed = seed
        out._stream = _mix64(seed & _M64)
        return out

    _SCALARS = (
        "n",
        "rows_seen",
        "sq_norm_sum",
        "norm_sum",
        "norm_min",
        "norm_max",
        "zero_rows",
        "nonfinite_rows",
        "first_nonfinite",
        "input_eps",
        "align_sum",
        "align_n",
    )

    def _pack(self) -> NDArray[np.float64]:
        scal = np.array([float(getattr(self, k)) for k in self._SCALARS])
        return np.concatenate(
            [
                scal,
                [self.sample_keys.size],
                self.mean,
                self.scatter.ravel(),
                self.unit_sum,
                self.unit_sq_sum,
                self.sample_keys,
                self.sample_rows.ravel(),
                [self.scale_exp] if self.scale_exp else [],  # absent: 0 (older states)
            ]
        )

    @classmethod
    def _unpack(cls, v: NDArray[np.float64], d: int, sample_size: int) -> Moments:
        out = cls(d, sample_size=sample_size)
        ns = len(cls._SCALARS)
        for k, val in zip(cls._SCALARS, v[:ns], strict=True):
            setattr(out, k, type(getattr(out, k))(val))
        m = int(v[ns])
        pos = ns + 1
        for name, size, shape in (
            ("mean", d, (d,)),
            ("scatter", d * d, (d, d)),
            ("unit_sum", d, (d,)),
            ("unit_sq_sum", d, (d,)),
            ("sample_keys", m, (m,)),
            ("sample_rows", m * d, (m, d)),
        ):
            setattr(out, name, v[pos : pos + size].reshape(shape).copy())
            pos += size
        if v.size > pos:
            out.scale_exp = int(v[pos])
        return out

    # ------------------------------------------------------------------ read-outs
    def covariance(self) -> NDArray[np.float64]:
        """Centred covariance ``C = scatter / n`` (the 1/N convention of the article), (d, d),
        in units of ``2**(2 * scale_exp)`` (see the class docstring; normally 1)."""
        return self.scatter / max(self.n, 1)

    def second_moment(self) -> NDArray[np.float64]:
        """Uncentred second moment ``M = (1/N) Z^T Z = C + mean mean^T``, (d, d), in the
        units of :meth:`covariance`."""
        return self.covariance() + np.outer(self.mean, self.mean)
