"""The variance objective of the article's first demo (``collapse_loss``).

Reference: the seed article, section "Demonstration in PyTorch"::

    def collapse_loss(z):
        mean = z.mean(dim=0)
        return ((z - mean)**2).mean()

It is ``Var(Z) / d`` with the article's ``Var(Z) = (1/N) sum_i ||z_i - mu||^2`` (population
variance, averaged over the d coordinates). *Minimising* it drives the variance to zero,
which is why the demo collapses; its gradient ``2 (z_i - mu) / (N d)`` vanishes at collapse
(the article's "collapse is a stationary point").
"""

from __future__ import annotations

import torch
from torch import nn

from collapselab.losses._validate import check_2d

__all__ = ["variance_loss", "VarianceLoss"]


def variance_loss(z: torch.Tensor) -> torch.Tensor:
    """Mean squared deviation from the batch mean, exactly the article's ``collapse_loss``.

    Args:
        z: embeddings, shape (N, d).

    Returns:
        Scalar ``((z - z.mean(0))**2).mean()``.
    """
    check_2d("z", z)
    mean = z.mean(dim=0)  # (d,)
    return ((z - mean) ** 2).mean()


class VarianceLoss(nn.Module):
    """Module form of :func:`variance_loss`; ``forward(z)`` with z of shape (N, d)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return variance_loss(z)
