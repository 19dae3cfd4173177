"""VICReg: variance-invariance-covariance regularisation.

Reference: Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022, Eq. 1-6, and the official ``main_vicreg.py``:

    v(Z) = (1/d) sum_j max(0, gamma - sqrt(Var(z^j) + eps))            (Eq. 1, unbiased Var)
    c(Z) = (1/d) sum_{i != j} C(Z)_ij^2,  C(Z) = (1/(n-1)) sum_i (z_i - zbar)(z_i - zbar)^T
                                                                        (Eq. 3-4)
    s(Z, Z') = mean squared difference                                  (Eq. 5)
    L = lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')]     (Eq. 6, official code)

with lambda = mu = 25, nu = 1, gamma = 1, eps = 1e-4. Stated choice: ``s`` is the official
code's ``F.mse_loss`` (mean over the n*d entries; the paper's Eq. 5 prints ``1/n sum ||.||^2``,
which is d times larger), the variance term is averaged and the covariance term summed over
the two branches, as in the official code the coefficients were tuned with.

Distributed: the sums behind every term are all-reduced with an autograd-aware collective,
so each rank computes the whole-batch loss and DDP recovers the whole-batch gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from collapselab import dist
from collapselab.losses._stats import batch_count, batch_sum, off_diagonal, reduce_sum
from collapselab.losses._validate import check_2d, check_positive, check_same_shape

__all__ = ["VICRegComponents", "vicreg_components", "vicreg_loss", "VICRegLoss"]


class VICRegComponents(NamedTuple):
    """Unweighted VICReg terms: ``loss = 25 invariance + 25 variance + 1 covariance``."""

    invariance: torch.Tensor  # s(Z, Z'), mean squared difference
    variance: torch.Tensor  # [v(Z) + v(Z')] / 2
    covariance: torch.Tensor  # c(Z) + c(Z')


def _variance_covariance(
    z: torch.Tensor, n: int, gamma: float, eps: float, gather: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """v(Z) and c(Z) of one branch over the (global) batch of n rows."""
    d = z.shape[1]
    centred = z - batch_sum(z, gather) / n  # (N, d)
    cov = reduce_sum(centred.T @ centred, gather) / (n - 1)  # (d, N) @ (N, d) -> (d, d)
    std = torch.sqrt(torch.diagonal(cov) + eps)  # (d,)
    v = F.relu(gamma - std).mean()
    c = off_diagonal(cov).pow(2).sum() / d
    return v, c


def vicreg_components(
    z1: torch.Tensor,
    z2: torch.Tensor,
    gamma: float = 1.0,
    eps: float = 1e-4,
    gather_distributed: bool = False,
) -> VICRegComponents:
    """The three unweighted VICReg terms.

    Args:
        z1: embeddings of branch Z, (N, d).
        z2: embeddings of branch Z', (N, d).
        gamma: target standard deviation (paper: 1).
        eps: added to the variance inside the square root (paper: 1e-4).
        gather_distributed: statistics over the batches of all ranks.

    Returns:
        :class:`VICRegComponents` of scalars.
    """
    check_2d("z1", z1)
    check_2d("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_positive("eps", eps)
    if gather_distributed:
        dist.require_distributed_available("vicreg")
    n = batch_count(z1, gather_distributed, 2, "vicreg")
    d = z1.shape[1]
    invariance = batch_sum((z1 - z2).pow(2), gather_distributed).sum() / (n * d)
    v1, c1 = _variance_covariance(z1, n, gamma, eps, gather_distributed)
    v2, c2 = _variance_covariance(z2, n, gamma, eps, gather_distributed)
    return VICRegComponents(invariance, (v1 + v2) / 2.0, c1 + c2)


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """VICReg (Eq. 6): weighted sum of :func:`vicreg_components`.

    Args:
        z1: embeddings of branch Z, (N, d).
        z2: embeddings of branch Z', (N, d).
        invariance_weight: lambda (25).
        variance_weight: mu (25).
        covariance_weight: nu (1).
        gamma: target standard deviation (1).
        eps: variance epsilon (1e-4).
        gather_distributed: statistics over the batches of all ranks.

    Returns:
        Scalar loss.
    """
    t = vicreg_components(z1, z2, gamma, eps, gather_distributed)
    return (
        invariance_weight * t.invariance
        + variance_weight * t.variance
        + covariance_weight * t.covariance
    )


class VICRegLoss(nn.Module):
    """Module form: ``forward(z1, z2)`` returns the loss, ``components(z1, z2)`` the terms."""

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_positive("eps", eps)
        self.invariance_weight = invariance_weight
        self.variance_weight = variance_weight
        self.covariance_weight = covariance_weight
        self.gamma = gamma
        self.eps = eps
        self.gather_distributed = gather_distributed

    def components(self, z1: torch.Tensor, z2: torch.Tensor) -> VICRegComponents:
        return vicreg_components(z1, z2, self.gamma, self.eps, self.gather_distributed)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return vicreg_loss(
            z1,
            z2,
            self.invariance_weight,
            self.variance_weight,
            self.covariance_weight,
            self.gamma,
            self.eps,
            self.gather_distributed,
        )
