"""Geometry of embeddings on the unit sphere: alignment, uniformity, spread.

Functions take torch tensors (so a training loop can call them on a batch) or numpy
arrays and never materialise more than a ``block x N`` similarity tile, so memory stays
O(N * block) instead of O(N^2).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from collapselab.errors import DegenerateInputError


def _as_f64(z: Any) -> torch.Tensor:
    t = torch.as_tensor(z) if not isinstance(z, torch.Tensor) else z.detach()
    return t.to(dtype=torch.float64, device="cpu")


def _unit(z: torch.Tensor) -> torch.Tensor:
    return z / z.norm(dim=1, keepdim=True).clamp_min(1e-300)


def std_of_l2_normalized(z: Any) -> float:
    """Mean over dimensions of the per-dimension std of L2-normalised rows.

    The SimSiam collapse indicator (Chen & He 2021, Sec. 4.1): 0 for a collapsed batch,
    about ``1/sqrt(d)`` for an isotropic one and exactly ``1/sqrt(d)`` for ``eye(d)``.
    Unbiased std (divide by N - 1), as in SimSiam's and lightly's code.

    Args:
        z: embeddings of shape ``(N, d)``.
    """
    u = _unit(_as_f64(z))
    return float(u.std(dim=0, unbiased=True).mean())


def alignment(z1: Any, z2: Any, alpha: float = 2.0) -> float:
    """Wang & Isola (2020) alignment ``E ||u_i - u'_i||^alpha`` of paired rows.

    Args:
        z1, z2: two views, shape ``(N, d)``; rows are L2-normalised here.
        alpha: exponent (the paper's default 2).
    """
    u1, u2 = _unit(_as_f64(z1)), _unit(_as_f64(z2))
    return float((u1 - u2).norm(dim=1).pow(alpha).mean())


def _pairwise_logsumexp(u: torch.Tensor, t: float, block: int) -> tuple[float, float]:
    """log sum_{i<j} exp(-t ||u_i - u_j||^2) and max_{i != j} cos(u_i, u_j), blockwise.

    Each ``block x N`` tile of cosines is used whole (both triangles, the diagonal masked
    out), so no index tensors are built; by symmetry the sum over ``i < j`` is half the
    sum over ``i != j``."""
    n = u.shape[0]
    lse = torch.tensor(-math.inf, dtype=torch.float64)
    best = -math.inf
    for s in range(0, n, block):
        cos = u[s : s + block] @ u.T  # (b, N)
        diag = torch.arange(cos.shape[0])
        cos[diag, s + diag] = -math.inf  # i == j: excluded from max and sum
        best = max(best, float(cos.max()))
        # -t ||u_i - u_j||^2 = -t (2 - 2 cos_ij) for unit rows, in place
        lse = torch.logaddexp(lse, torch.logsumexp(cos.mul_(2.0 * t).sub_(2.0 * t).flatten(), 0))
    return float(lse) - math.log(2.0), best


def uniformity(z: Any, t: float = 2.0, block: int = 1024) -> float:
    """Wang & Isola (2020) uniformity ``log E_{i<j} exp(-t ||u_i - u_j||^2)``.

    Computed with a running log-sum-exp in float64, so it never underflows to ``-inf``
    (the failure users hit with the reference ``pdist(...).exp().mean().log()``), and in
    ``block x N`` tiles (O(N * block) memory). Ranges from ``-4`` (t=2; antipodal pairs)
    to 0 (complete collapse).

    Args:
        z: embeddings ``(N, d)`` with N >= 2; rows are L2-normalised here.
        t: the paper's temperature (2).
    """
    u = _unit(_as_f64(z))
    n = u.shape[0]
    if n < 2:
        raise DegenerateInputError("uniformity needs at least 2 rows")
    lse, _ = _pairwise_logsumexp(u, t, block)
    return lse - math.log(n * (n - 1) / 2)


def sample_pair_stats(rows: NDArray[np.float64], t: float = 2.0) -> tuple[float, float]:
    """(uniformity, max pairwise cosine) of a row sample; nan when fewer than 2 non-zero rows."""
    r = torch.from_numpy(np.asarray(rows, dtype=np.float64))
    r = r[r.norm(dim=1) > 0]
    if r.shape[0] < 2:
        return float("nan"), float("nan")
    u = _unit(r)
    lse, best = _pairwise_logsumexp(u, t, 1024)
    n = u.shape[0]
    return lse - math.log(n * (n - 1) / 2), best
