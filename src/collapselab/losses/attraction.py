"""The article's pairwise attraction objective, whose global minimum is complete collapse.

Reference: the seed article, section "Why Collapse is a Stable Solution":
``L = sum_{i,j} ||z_i - z_j||^2``, minimised exactly when ``z_i = z_j`` for all i, j.
"""

from __future__ import annotations

import torch
from torch import nn

from collapselab.losses._validate import check_2d

__all__ = ["pairwise_attraction_loss", "PairwiseAttractionLoss"]


def pairwise_attraction_loss(z: torch.Tensor) -> torch.Tensor:
    """Sum over all ordered pairs (i, j) of ``||z_i - z_j||^2`` (article: ``L = sum_ij ...``).

    Computed in O(N d) through the identity
    ``sum_{i,j} ||z_i - z_j||^2 = 2 N sum_i ||z_i - mu||^2`` with ``mu = mean_i z_i``
    (expand the square; the cross term is ``-2 ||sum_i (z_i - mu)||^2 = 0`` after centring).
    Its gradient is ``dL/dz_i = 4 N (z_i - mu)``: it vanishes exactly at collapse.

    Args:
        z: embeddings, shape (N, d).

    Returns:
        Scalar loss (a sum, not a mean: it grows as N^2).
    """
    check_2d("z", z)
    centred = z - z.mean(dim=0, keepdim=True)  # (N, d)
    return 2.0 * z.shape[0] * centred.pow(2).sum()


class PairwiseAttractionLoss(nn.Module):
    """Module form of :func:`pairwise_attraction_loss`; ``forward(z)`` with z of shape (N, d)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return pairwise_attraction_loss(z)
