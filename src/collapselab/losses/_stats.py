"""Batch statistics that may span ranks; every collective is one autograd sees."""

from __future__ import annotations

import torch

from collapselab import dist
from collapselab.errors import InputError


def batch_sum(x: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    """Sum over the batch (dim 0), over all ranks when ``gather_distributed``."""
    s = x.sum(dim=0)
    return dist.all_reduce_sum(s) if gather_distributed else s


def reduce_sum(x: torch.Tensor, gather_distributed: bool) -> torch.Tensor:
    """``x`` (a per-rank partial statistic) summed over ranks when ``gather_distributed``."""
    return dist.all_reduce_sum(x) if gather_distributed else x


def batch_count(z: torch.Tensor, gather_distributed: bool, min_rows: int, where: str) -> int:
    """Number of rows in the (global) batch; raises :class:`InputError` below ``min_rows``."""
    n = z.shape[0]
    if gather_distributed and dist.world_size() > 1:
        count = torch.tensor(float(n), dtype=torch.float64, device=z.device)
        n = int(dist.all_reduce_sum(count).item())
    if n < min_rows:
        raise InputError(f"{where}: batch of {n} rows; expected at least {min_rows}")
    return n


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The d(d-1) off-diagonal entries of a square (d, d) matrix, as a flat view-like tensor."""
    d = m.shape[0]
    return m.flatten()[:-1].view(d - 1, d + 1)[:, 1:].flatten()
