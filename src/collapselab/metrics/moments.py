"""A mergeable streaming accumulator of first and second moments of embedding rows.

One object serves a file larger than memory (fed chunk by chunk), many workers
(:meth:`Moments.merge`) and ``torch.distributed`` (:meth:`Moments.all_reduce`), so every
number collapselab reports comes from the same code whatever the source.

Accuracy on nearly collapsed data. When ``z_i = c + eps_i`` with ``|c| >> |eps|``, the
uncentred product ``Z^T Z`` is dominated by ``N c c^T`` and float32 accumulation loses
every small eigenvalue (relative errors > 100 and negative eigenvalues are typical). We
therefore (1) centre each block on its own mean, computed in float64, before any product,
so that the product sees only the ``eps`` part, (2) form the block's scatter matrix in
float64 with a symmetric rank-k update (BLAS ``syrk``, which numpy dispatches for
``B.T @ B``: half the flops of a general product, so float64 runs at about the speed of a
float32 ``X.T @ X``), and (3) merge blocks exactly with the pairwise update of Chan,
Golub & LeVeque (1979): ``S = S_a + S_b + (n_a n_b / n) delta delta^T``. Blocks are sized
to stay in the last-level cache, so the row statistics computed on the same float64 block
(norms, L2-normalised sums) cost cache reads, not memory reads.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: target size in bytes of the float64 working block (stays in a 32 MiB L3) ...
_BLOCK_BYTES = 8 * 2**20
#: threads for large updates (each with single-threaded BLAS)
_WORKERS = min(4, os.cpu_count() or 1)
_POOL: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="moments")
    return _POOL


#: ... but never fewer rows than this: below ~4096 rows OpenBLAS's syrk drops to a third
#: of its throughput (measured at d=768: 20-57 GFLOP/s at 1-2k rows, 97 at >= 4096).
_MIN_BLOCK_ROWS = 4096


def _to_numpy(x: Any) -> NDArray[Any]:
    """Accept numpy arrays and torch tensors (any device, any float dtype) without copies
    where possible; bfloat16 has no numpy dtype and is upcast to float32."""
    if isinstance(x, np.ndarray):
        return x
    try:  # torch is optional at this layer
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency of the package
        torch = None  # type: ignore[assignment]
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach()
        if t.dtype in (torch.bfloat16, torch.float16) or not t.is_floating_point():
            t = t.float() if t.is_floating_point() else t.double()
        return np.asarray(t.cpu().numpy())
    return np.asarray(x)


@dataclass
class Moments:
    """Count, mean and scatter of rows, plus the row statistics the verdict needs.

    Args:
        d: number of columns.
        sample_size: size of the uniform row sample kept for pairwise statistics
            (uniformity, max cosine); mergeable (bottom-k of random keys).
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
    """

    d: int
    sample_size: int = 2048
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
    sample_keys: NDArray[np.float64] = field(init=False, repr=False)
    sample_rows: NDArray[np.float64] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.d < 1:
            raise ValueError(f"Moments needs d >= 1 columns, got {self.d}")
        d = self.d
        self.mean = np.zeros(d)
        self.scatter = np.zeros((d, d))
        self.unit_sum = np.zeros(d)
        self.unit_sq_sum = np.zeros(d)
        self.sample_keys = np.empty(0)
        self.sample_rows = np.empty((0, d))
        self._rng = np.random.default_rng(self.seed)
        self._buf: NDArray[np.float64] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def of(cls, z: Any, paired: Any = None, **kwargs: Any) -> Moments:
        """Moments of one matrix ``z`` of shape ``(N, d)`` (and its paired view)."""
        arr = _to_numpy(z)
        if arr.ndim != 2:
            raise ValueError(f"expected a 2-D (N, d) matrix, got shape {arr.shape}")
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
            raise ValueError(f"expected rows of shape (N, {self.d}), got {x.shape}")
        if x.dtype.kind == "f":
            self.input_eps = max(self.input_eps, float(np.finfo(x.dtype).eps))
        if paired is not None:
            self._update_alignment(x, _to_numpy(paired))
        rows = max(_MIN_BLOCK_ROWS, _BLOCK_BYTES // (8 * self.d))
        workers = min(_WORKERS, x.shape[0] // (2 * rows))
        if workers < 2:
            for start in range(0, x.shape[0], rows):
                self._update_block(x[start : start + rows])
            return self
        # Large inputs: contiguous row ranges on parallel threads, each with single-threaded
        # BLAS (numpy releases the GIL), merged in order. Every step runs on all cores,
        # the centring and row statistics too, not only the syrk.
        from threadpoolctl import threadpool_limits

        bounds = [x.shape[0] * i // workers for i in range(workers + 1)]
        parts = [Moments(self.d, self.sample_size, seed=self.seed * 7919 + i + 1)
                 for i in range(workers)]  # fmt: skip

        def run(i: int) -> None:
            for start in range(bounds[i], bounds[i + 1], rows):
                parts[i]._update_block(x[start : min(start + rows, bounds[i + 1])])

        with threadpool_limits(1, user_api="blas"):
            list(_executor().map(run, range(workers)))
        for part in parts:
            self.merge(part)
        return self

    def _update_block(self, x: NDArray[Any]) -> None:
        k = x.shape[0]
        if k == 0:
            return
        offset = self.rows_seen
        self.rows_seen += k
        if self._buf is None or self._buf.shape[0] < k:
            self._buf = np.empty((k, self.d))
        b = self._buf[:k]
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/Inf rows: handled below
            m = x.mean(axis=0, dtype=np.float64)  # (d,)
            np.subtract(x, m, out=b, casting="unsafe")  # b: centred block, float64, (k, d)
            mm = float(m @ m)
            # ||z_i||^2 = ||b_i||^2 + 2 b_i.m + ||m||^2 in float64 (no overflow for f32 input)
            sq = np.einsum("ij,ij->i", b, b) + 2.0 * (b @ m) + mm  # (k,)
        if not np.isfinite(sq).all():
            # Rare path: find the offending rows directly (a NaN row poisons the block mean).
            x64 = np.asarray(x, dtype=np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                bad = ~np.isfinite(np.einsum("ij,ij->i", x64, x64))
            idx = np.flatnonzero(bad)
            if self.first_nonfinite < 0:
                self.first_nonfinite = offset + int(idx[0])
            self.nonfinite_rows += int(idx.size)
            self.rows_seen -= k - int(idx.size)  # the good rows are counted again below
            good = np.ascontiguousarray(x[~bad])
            if good.shape[0]:
                self._update_block(good)
            return
        # scatter of the centred block: syrk through numpy's B.T @ B, (d, d)
        s_b = b.T @ b
        self._merge_moments(k, m, s_b)
        # row statistics on the (cache-resident) block
        sq = np.maximum(sq, 0.0)
        norms = np.sqrt(sq)
        self.sq_norm_sum += float(sq.sum())
        self.norm_sum += float(norms.sum())
        self.norm_min = min(self.norm_min, float(norms.min()))
        self.norm_max = max(self.norm_max, float(norms.max()))
        nonzero = norms > 0
        self.zero_rows += int(k - np.count_nonzero(nonzero))
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=nonzero)  # 1/||z_i||
        inv2 = inv * inv
        # sum_i u_i = sum_i inv_i (b_i + m);  sum_i u_i^2 = sum_i inv2_i (b_i + m)^2
        self.unit_sum += b.T @ inv + m * inv.sum()  # (d,)
        b_inv2 = b.T @ inv2  # (d,)
        np.multiply(b, b, out=b)
        self.unit_sq_sum += b.T @ inv2 + 2.0 * m * b_inv2 + m * m * inv2.sum()
        self._update_sample(x)

    def _merge_moments(
        self, n_b: int, mean_b: NDArray[np.float64], s_b: NDArray[np.float64]
    ) -> None:
        """Chan et al. (1979) pairwise update of (n, mean, scatter)."""
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / n)
        self.scatter += s_b
        if n_a:
            self.scatter += np.outer(delta, delta) * (n_a * n_b / n)
        self.n = n

    def _update_alignment(self, x: NDArray[Any], y: NDArray[Any]) -> None:
        if y.shape != x.shape:
            raise ValueError(f"paired view has shape {y.shape}, expected {x.shape}")
        xa, ya = x.astype(np.float64), y.astype(np.float64)
        ux = xa / np.maximum(np.linalg.norm(xa, axis=1, keepdims=True), 1e-300)
        uy = ya / np.maximum(np.linalg.norm(ya, axis=1, keepdims=True), 1e-300)
        dist2 = np.sum((ux - uy) ** 2, axis=1)
        ok = np.isfinite(dist2)
        self.align_sum += float(dist2[ok].sum())
        self.align_n += int(ok.sum())

    def _update_sample(self, x: NDArray[Any]) -> None:
        """Bottom-k sampling: each row gets a uniform key; keep the rows of the k smallest
        keys. Mergeable (the union's bottom-k is the bottom-k of the union) and O(k) work
        per block once the sample is full: only rows whose key beats the current k-th
        enter, into the slots they evict."""
        keys = np.asarray(self._rng.random(x.shape[0]), dtype=np.float64)
        if self.sample_keys.size >= self.sample_size:
            sel = np.flatnonzero(keys < self.sample_keys.max())
            if sel.size:
                self._offer(keys[sel], x[sel])
            return
        self._offer(keys, x)

    def _offer(self, keys: NDArray[np.float64], rows: NDArray[Any]) -> None:
        old = self.sample_keys.size
        all_keys = np.concatenate([self.sample_keys, keys])
        if all_keys.size <= self.sample_size:
            self.sample_keys = all_keys
            self.sample_rows = np.concatenate([self.sample_rows, np.asarray(rows, np.float64)])
            return
        keep = np.argpartition(all_keys, self.sample_size - 1)[: self.sample_size]
        if old < self.sample_size:  # still filling: rebuild once
            self.sample_rows = np.concatenate([self.sample_rows, np.asarray(rows, np.float64)])[
                keep
            ]
            self.sample_keys = all_keys[keep]
            return
        entering = keep[keep >= old] - old  # new rows that make the cut
        kept_old = np.zeros(old, dtype=bool)
        kept_old[keep[keep < old]] = True
        free = np.flatnonzero(~kept_old)  # evicted slots; as many as entering rows
        self.sample_keys[free] = keys[entering]
        self.sample_rows[free] = rows[entering]

    # ------------------------------------------------------------------ combining
    def merge(self, other: Moments) -> Moments:
        """Fold ``other`` into ``self`` exactly (as if its rows had been fed after ours)."""
        if other.d != self.d:
            raise ValueError(f"cannot merge moments of d={other.d} into d={self.d}")
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
            self._offer(other.sample_keys, other.sample_rows)
        return self

    def copy(self) -> Moments:
        """An independent copy (merging into it leaves ``self`` unchanged)."""
        out = Moments(self.d, sample_size=self.sample_size, seed=self.seed)
        out.merge(self)
        out._rng = np.random.default_rng(self._rng.bit_generator.random_raw() & 0xFFFFFFFF)
        return out

    def all_reduce(self) -> Moments:
        """Combine the moments of every rank of the default ``torch.distributed`` group.

        Each rank's state is all-gathered (a few ``d x d`` floats: never the rows) and
        merged in rank order, so every rank ends with identical global moments. A no-op
        when torch.distributed is not initialised.
        """
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        world = dist.get_world_size()
        if world == 1:
            return self
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
        self.__dict__.update({k: v for k, v in total.__dict__.items() if k != "_rng"})
        return self

    def to_array(self) -> NDArray[np.float64]:
        """The whole state as one float64 vector (for checkpoints and collectives);
        :meth:`from_array` restores it."""
        return self._pack()

    @classmethod
    def from_array(cls, v: NDArray[np.float64], d: int, sample_size: int = 2048) -> Moments:
        """Inverse of :meth:`to_array`."""
        return cls._unpack(np.asarray(v, dtype=np.float64), d, sample_size)

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
        return out

    # ------------------------------------------------------------------ read-outs
    def covariance(self) -> NDArray[np.float64]:
        """Centred covariance ``C = scatter / n`` (the 1/N convention of the article), (d, d)."""
        return self.scatter / max(self.n, 1)

    def second_moment(self) -> NDArray[np.float64]:
        """Uncentred second moment ``M = (1/N) Z^T Z = C + mean mean^T``, (d, d)."""
        return self.covariance() + np.outer(self.mean, self.mean)
