"""Barlow Twins: drive the cross-correlation of two views' standardised embeddings to I.

Reference: Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML 2021, Eq. 1-2:

    L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2,
    C_ij = sum_b zA_bi zB_bj / (sqrt(sum_b zA_bi^2) sqrt(sum_b zB_bj^2)),

with each column standardised over the batch (the official code: ``BatchNorm1d(affine=False)``,
biased variance, eps 1e-5, then ``C = zA^T zB / N``). ``lambda = 0.0051`` as in the paper.

Distributed: the column means, variances and ``zA^T zB`` are summed over ranks with an
autograd-aware all-reduce, so every rank computes the whole-batch loss and DDP recovers the
whole-batch gradient (a raw ``all_reduce`` here makes it 1/world_size too small,
lightly issue #1977).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from collapselab import dist
from collapselab.losses._stats import batch_count, batch_sum, off_diagonal, reduce_sum
from collapselab.losses._validate import check_2d, check_positive, check_same_shape

__all__ = [
    "BarlowTwinsComponents",
    "barlow_twins_components",
    "barlow_twins_loss",
    "BarlowTwinsLoss",
]


class BarlowTwinsComponents(NamedTuple):
    """Unweighted terms of Barlow Twins (Eq. 1): ``loss = invariance + lambda * redundancy``."""

    invariance: torch.Tensor  # sum_i (1 - C_ii)^2
    redundancy: torch.Tensor  # sum_{i != j} C_ij^2


def _standardize(z: torch.Tensor, n: int, eps: float, gather: bool) -> torch.Tensor:
    """Per-column (z - mean) / sqrt(biased var + eps) over the (global) batch; (N, d)."""
    mean = batch_sum(z, gather) / n  # (d,)
    centred = z - mean
    var = batch_sum(centred.pow(2), gather) / n  # (d,) biased, as BatchNorm normalises
    return centred / torch.sqrt(var + eps)


def barlow_twins_components(
    z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5, gather_distributed: bool = False
) -> BarlowTwinsComponents:
    """The two unweighted Barlow Twins terms.

    Args:
        z1: embeddings of view A, (N, d).
        z2: embeddings of view B, (N, d).
        eps: added to the batch variance before standardising (BatchNorm's 1e-5).
        gather_distributed: statistics over the batches of all ranks.

    Returns:
        :class:`BarlowTwinsComponents` of scalars.
    """
    check_2d("z1", z1)
    check_2d("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_positive("eps", eps)
    if gather_distributed:
        dist.require_distributed_available("barlow_twins")
    n = batch_count(z1, gather_distributed, 2, "barlow_twins")
    a = _standardize(z1, n, eps, gather_distributed)
    b = _standardize(z2, n, eps, gather_distributed)
    c = reduce_sum(a.T @ b, gather_distributed) / n  # (d, N) @ (N, d) -> (d, d)
    invariance = (torch.diagonal(c) - 1.0).pow(2).sum()
    redundancy = off_diagonal(c).pow(2).sum()
    return BarlowTwinsComponents(invariance, redundancy)


def barlow_twins_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    lambda_: float = 0.0051,
    eps: float = 1e-5,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Barlow Twins (Eq. 1): ``invariance + lambda_ * redundancy``.

    Args:
        z1: embeddings of view A, (N, d).
        z2: embeddings of view B, (N, d).
        lambda_: weight of the redundancy-reduction term (paper: 0.0051).
        eps: BatchNorm epsilon.
        gather_distributed: statistics over the batches of all ranks.

    Returns:
        Scalar loss.
    """
    terms = barlow_twins_components(z1, z2, eps, gather_distributed)
    return terms.invariance + lambda_ * terms.redundancy


class BarlowTwinsLoss(nn.Module):
    """Module form: ``forward(z1, z2)`` returns the loss, ``components(z1, z2)`` the terms."""

    def __init__(
        self, lambda_: float = 0.0051, eps: float = 1e-5, gather_distributed: bool = False
    ) -> None:
        super().__init__()
        check_positive("eps", eps)
        self.lambda_ = lambda_
        self.eps = eps
        self.gather_distributed = gather_distributed

    def components(self, z1: torch.Tensor, z2: torch.Tensor) -> BarlowTwinsComponents:
        return barlow_twins_components(z1, z2, self.eps, self.gather_distributed)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return barlow_twins_loss(z1, z2, self.lambda_, self.eps, self.gather_distributed)
