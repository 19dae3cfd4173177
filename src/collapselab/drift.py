"""Did the distribution move? A two-sample test between embedding sets, from moments.

The distance is the squared Frechet (2-Wasserstein) distance between the Gaussians with
the two sets' means and covariances,

    F^2 = ||mu_a - mu_b||^2  +  tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2),

the mean-shift term plus the Bures term of the covariances. It is computed from the
streamed float64 moments, so it costs one pass over any number of rows.

The null is a permutation over blocks. Each set is cut into blocks of consecutive rows of
one common size ``s`` (a few rows of each set's tail that do not fill a block are left out
of the test, not of the distance); the statistic is the squared distance between the
blocks of the two groups; each permutation reassigns the blocks to two groups of the
original sizes and recomputes it from the blocks' moments (no row is read again). The
p-value is ``(1 + #{T_perm >= T}) / (1 + permutations)``, exact at any level when the
rows of both sets are exchangeable (i.i.d. rows in any order, or any rows in random
order): blocks of one size are then exchangeable too. When rows are stored in an order
that carries structure (by time, by topic), blocks differ more among themselves than
random rows do, and the test is conservative (it flags less), never liberal.
``p_mean`` and ``p_bures`` test the two terms alone on the same permutations.

Power grows with the rows (the blocks' moments use every row). Measured false-positive
rates and the smallest shifts detected: ``benchmarks/bench_drift.py``
(``benchmarks/results/drift.md``).

Example:
    >>> r = drift_test(reference, current)           # doctest: +SKIP
    >>> r.p_value < 0.05, r.frechet, r.mean_term      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from collapselab._pool import blas_threads
from collapselab.errors import ConfigError
from collapselab.metrics import Moments

#: blocks of the smaller set when none are asked for: C(32, 16) = 6e8 distinct splits
BLOCKS = 16
#: permutations when none are asked for: p-values down to 1/200
PERMUTATIONS = 199
#: fewest blocks a set may have for the test to run
MIN_BLOCKS = 4
#: memory the blocks' d x d moments may take (float64); beyond it blocks grow
BLOCK_BYTES = 1 << 30
#: most blocks in all, whatever d
MAX_BLOCKS = 256


@dataclass(frozen=True)
class BlockPlan:
    """Rows per block and blocks per set; ``None`` plus a reason when no test can run."""

    rows: int
    blocks: tuple[int, int]

    @staticmethod
    def of(n_ref: int, n_cur: int, d: int, blocks: int = BLOCKS) -> BlockPlan | str:
        """The plan for sets of ``n_ref`` and ``n_cur`` rows of ``d`` columns, or a one-line
        reason why the test cannot run (too few rows, ``d`` too large for the memory)."""
        if blocks < MIN_BLOCKS:
            raise ConfigError(f"drift blocks must be >= {MIN_BLOCKS}, got {blocks}")
        s = max(1, min(n_ref, n_cur) // blocks)
        cap = min(MAX_BLOCKS, BLOCK_BYTES // (8 * d * d + 8 * d + 64))
        s = max(s, -(-(n_ref + n_cur) // max(cap, 1)))  # ceil: the blocks fit in the cap
        plan = BlockPlan(s, (n_ref // s, n_cur // s))
        if min(plan.blocks) < MIN_BLOCKS:
            return (f"no drift test: {min(n_ref, n_cur)} rows in the smaller set make "
                    f"{min(plan.blocks)} blocks of {s} rows; the permutation test needs "
                    f"{MIN_BLOCKS} in each set")  # fmt: skip
        return plan

    def block_of(self, row: int, which: int) -> int:
        """The block of row ``row`` of set ``which`` (0 reference, 1 current); -1 for a
        tail row left out of the test."""
        b = row // self.rows
        return b if b < self.blocks[which] else -1


@dataclass(frozen=True)
class Drift:
    """The test's result (see the module docstring).

    Attributes:
        frechet: squared Frechet distance between the full sets' Gaussians.
        mean_term / bures_term: its two parts (``frechet = mean_term + bures_term``).
        relative: ``frechet`` over the reference's total variance ``tr(S_ref)``.
        p_value / p_mean / p_bures: permutation p-values of ``frechet``, of the mean term
            alone and of the Bures term alone (statistics from the blocks).
        permutations, block_rows, blocks: the null's settings (blocks of the reference and
            of the current set).
        alpha: the level ``drifted`` uses.
    """

    frechet: float
    mean_term: float
    bures_term: float
    relative: float
    p_value: float
    p_mean: float
    p_bures: float
    permutations: int
    block_rows: int
    blocks: tuple[int, int]
    alpha: float = 0.05

    @property
    def drifted(self) -> bool:
        """The distribution moved beyond sampling noise at level ``alpha``."""
        return self.p_value < self.alpha

    def headline(self) -> str:
        """One line for the terminal."""
        verdict = ("moved beyond sampling noise" if self.drifted
                   else "no move beyond sampling noise")  # fmt: skip
        return (f"drift: {verdict} (p = {self.p_value:.3g}, {self.permutations} permutations "
                f"of {sum(self.blocks)} blocks); Frechet^2 = {self.frechet:.4g} "
                f"({self.relative:.3g} of the reference's variance): mean shift "
                f"{self.mean_term:.4g} (p = {self.p_mean:.3g}), covariance "
                f"{self.bures_term:.4g} (p = {self.p_bures:.3g})")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted, "alpha": self.alpha, "p_value": self.p_value,
            "p_mean": self.p_mean, "p_bures": self.p_bures, "frechet": self.frechet,
            "mean_term": self.mean_term, "bures_term": self.bures_term,
            "relative": self.relative, "permutations": self.permutations,
            "block_rows": self.block_rows, "blocks": list(self.blocks),
            "null": "permutation of blocks of consecutive rows between the two sets",
        }  # fmt: skip


def _real(m: Moments) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """``(n, mean, scatter)`` of ``m`` in the input's units."""
    e = m.scale_exp
    return float(m.n), np.ldexp(m.mean, e), np.ldexp(m.scatter, 2 * e)


def _sqrt_psd(s: NDArray[np.float64]) -> NDArray[np.float64]:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _trace_sqrt_product(a: NDArray[np.float64], b: NDArray[np.float64], fast: bool) -> float:
    """``tr((a^1/2 b a^1/2)^1/2)`` for covariances ``a``, ``b``. ``fast``: through a
    Cholesky factor of ``a`` (plus a ridge of 1e-12 of its mean eigenvalue, which moves the
    value by about 1e-6 of a singular direction's share; the permutations' statistic),
    falling back to the symmetric square root when ``a`` is not positive definite."""
    if fast:
        ridge = 1e-12 * max(float(np.trace(a)) / len(a), np.finfo(float).tiny)
        try:
            low = np.linalg.cholesky(a + ridge * np.eye(len(a)))
        except np.linalg.LinAlgError:
            pass
        else:
            ev = np.linalg.eigvalsh(low.T @ b @ low)
            return float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    root = _sqrt_psd(a)
    ev = np.linalg.eigvalsh(root @ b @ root)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def frechet_terms(
    mean_a: NDArray[np.float64], cov_a: NDArray[np.float64],
    mean_b: NDArray[np.float64], cov_b: NDArray[np.float64], fast: bool = False,
) -> tuple[float, float]:  # fmt: skip
    """``(mean term, Bures term)`` of the squared Frechet distance between two Gaussians.
    Both are >= 0 (round-off below zero is clipped)."""
    delta = mean_a - mean_b
    cross = _trace_sqrt_product(cov_a, cov_b, fast)
    bures = float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * cross
    return float(delta @ delta), max(bures, 0.0)


def _cov(n: float, scatter: NDArray[np.float64]) -> NDArray[np.float64]:
    return scatter / max(n - 1.0, 1.0)


def frechet_of_moments(a: Moments, b: Moments) -> tuple[float, float]:
    """``(mean term, Bures term)`` between two accumulated sets (unbiased covariances)."""
    na, ma, sa = _real(a)
    nb, mb, sb = _real(b)
    return frechet_terms(ma, _cov(na, sa), mb, _cov(nb, sb))


def drift_of_blocks(
    reference: Sequence[Moments],
    current: Sequence[Moments],
    *,
    totals: tuple[Moments, Moments] | None = None,
    block_rows: int = 0,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    alpha: float = 0.05,
) -> Drift:
    """The test from the blocks' moments (each set's blocks, in any order).

    Args:
        reference, current: one :class:`Moments` per block (blocks of one size).
        totals: the full sets' moments (tail rows included) for the reported distance;
            default the blocks merged.
        block_rows: rows per block (reported).
        permutations: random reassignments of the blocks (the p-value's resolution is
            ``1 / (permutations + 1)``).
        seed: seed of the permutations.
        alpha: the level of :attr:`Drift.drifted`.

    Raises:
        ConfigError: fewer than ``MIN_BLOCKS`` blocks in a set, or ``permutations < 1``.
    """
    if min(len(reference), len(current)) < MIN_BLOCKS:
        raise ConfigError(f"the drift test needs >= {MIN_BLOCKS} blocks in each set, got "
                          f"{len(reference)} and {len(current)}")  # fmt: skip
    if permutations < 1:
        raise ConfigError(f"permutations must be >= 1, got {permutations}")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")
    blocks = list(reference) + list(current)
    parts = [_real(m) for m in blocks]
    d = blocks[0].d
    shift = parts[0][1]  # one common origin: the uncentred sums lose no digits to a far mean
    counts = np.array([p[0] for p in parts])
    sums = np.stack([p[0] * (p[1] - shift) for p in parts])  # n_b (mean_b - shift)
    seconds = np.stack([p[2] + p[0] * np.outer(p[1] - shift, p[1] - shift) for p in parts]
                       ).reshape(len(parts), d * d)  # fmt: skip
    all_n, all_sum, all_second = counts.sum(), sums.sum(0), seconds.sum(0)

    def stat(mask: NDArray[np.float64], fast: bool) -> tuple[float, float]:
        n_a, t_a = float(mask @ counts), mask @ sums
        s_a = (mask @ seconds).reshape(d, d)
        n_b, t_b, s_b = all_n - n_a, all_sum - t_a, all_second.reshape(d, d) - s_a
        mean_a, mean_b = t_a / n_a, t_b / n_b
        cov_a = (s_a - np.outer(t_a, mean_a)) / max(n_a - 1.0, 1.0)
        cov_b = (s_b - np.outer(t_b, mean_b)) / max(n_b - 1.0, 1.0)
        return frechet_terms(mean_a, (cov_a + cov_a.T) / 2, mean_b, (cov_b + cov_b.T) / 2,
                             fast)  # fmt: skip

    observed = np.zeros(len(blocks))
    observed[: len(reference)] = 1.0
    t_mean, t_bures = stat(observed, fast=True)
    rng = np.random.default_rng(seed)
    hits = np.zeros(3, dtype=np.int64)
    # d x d solves, one per permutation: one BLAS thread (two threads on a busy 2-core
    # machine made drift_test 5-7x slower: 68 s against 9.9 s at 8000 x 384)
    with blas_threads(1, "blas"):
        for _ in range(permutations):
            p_mean, p_bures = stat(rng.permutation(observed), fast=True)
            hits += [p_mean + p_bures >= t_mean + t_bures, p_mean >= t_mean,
                     p_bures >= t_bures]
    p = (1.0 + hits) / (1.0 + permutations)
    if totals is None:
        ref_total, cur_total = Moments(d, sample_size=0), Moments(d, sample_size=0)
        for m in reference:
            ref_total.merge(m)
        for m in current:
            cur_total.merge(m)
    else:
        ref_total, cur_total = totals
    mean_term, bures_term = frechet_of_moments(ref_total, cur_total)
    n_ref, _, scatter_ref = _real(ref_total)
    variance = float(np.trace(_cov(n_ref, scatter_ref)))
    frechet = mean_term + bures_term
    return Drift(
        frechet=frechet, mean_term=mean_term, bures_term=bures_term,
        relative=frechet / variance if variance > 0 else math.inf,
        p_value=float(p[0]), p_mean=float(p[1]), p_bures=float(p[2]),
        permutations=permutations, block_rows=block_rows,
        blocks=(len(reference), len(current)), alpha=alpha,
    )  # fmt: skip


def block_moments(z: Any, plan: BlockPlan, which: int) -> list[Moments]:
    """The blocks of an in-memory ``(n, d)`` matrix (set ``which``: 0 reference, 1
    current) under ``plan``, without row samples."""
    z = np.asarray(z)
    s = plan.rows
    return [Moments.of(z[b * s : (b + 1) * s], sample_size=0)
            for b in range(plan.blocks[which])]  # fmt: skip


def drift_test(
    reference: Any,
    current: Any,
    *,
    blocks: int = BLOCKS,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
    alpha: float = 0.05,
) -> Drift:
    """Test whether ``current`` comes from the distribution of ``reference``.

    Args:
        reference, current: ``(n, d)`` matrices (numpy or anything ``np.asarray`` takes)
            with the same ``d``; rows in random order for the nominal level (see the
            module docstring).
        blocks: blocks of the smaller set (the larger gets as many blocks of the same
            size as it fills).
        permutations, seed, alpha: see :func:`drift_of_blocks`.

    Raises:
        ConfigError: different ``d``, or too few rows for ``MIN_BLOCKS`` blocks.
    """
    a, b = np.asarray(reference), np.asarray(current)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ConfigError(f"drift_test needs two (n, d) matrices with one d, got {a.shape} "
                          f"and {b.shape}")  # fmt: skip
    plan = BlockPlan.of(len(a), len(b), a.shape[1], blocks)
    if isinstance(plan, str):
        raise ConfigError(plan)
    return drift_of_blocks(
        block_moments(a, plan, 0), block_moments(b, plan, 1),
        totals=(Moments.of(a, sample_size=0), Moments.of(b, sample_size=0)),
        block_rows=plan.rows, permutations=permutations, seed=seed, alpha=alpha,
    )  # fmt: skip
