"""BYOL: normalised mean-squared error between an online prediction and an EMA target.

Reference: Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised
Learning", NeurIPS 2020, Eq. 2 and the symmetrisation below it:

    L(q, z') = || q / ||q|| - z' / ||z'|| ||^2 = 2 - 2 <q, z'> / (||q|| ||z'||),
    L_BYOL = L(q_theta(z_1), sg(z'_2)) + L(q_theta(z_2), sg(z'_1)).

``q`` is the online network's *prediction* (projection then predictor), ``z'`` the target
network's projection; the target is an EMA of the online weights
(:func:`collapselab.losses.ema.ema_update`) and receives no gradient (``sg``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapselab.losses._validate import check_2d, check_same_shape

__all__ = ["normalized_mse", "byol_loss", "BYOLLoss"]


def normalized_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BYOL Eq. 2, ``2 - 2 cos(q, sg(z'))``, mean over the batch.

    Args:
        prediction: online predictions q, (N, d).
        target: target projections z', (N, d); detached (stop-gradient).

    Returns:
        Scalar in [0, 4].
    """
    check_2d("prediction", prediction)
    check_2d("target", target)
    check_same_shape("prediction", prediction, "target", target)
    cos = F.cosine_similarity(prediction, target.detach(), dim=1)  # (N,)
    return (2.0 - 2.0 * cos).mean()


def byol_loss(
    prediction_1: torch.Tensor,
    prediction_2: torch.Tensor,
    target_1: torch.Tensor,
    target_2: torch.Tensor,
) -> torch.Tensor:
    """Symmetrised BYOL loss: each view's prediction regresses the *other* view's target.

    Args:
        prediction_1: online prediction of view 1, (N, d).
        prediction_2: online prediction of view 2, (N, d).
        target_1: target projection of view 1, (N, d) (no gradient).
        target_2: target projection of view 2, (N, d) (no gradient).

    Returns:
        Scalar ``L(q_1, z'_2) + L(q_2, z'_1)``, in [0, 8].
    """
    return normalized_mse(prediction_1, target_2) + normalized_mse(prediction_2, target_1)


class BYOLLoss(nn.Module):
    """Module form of :func:`byol_loss`; ``forward(p1, p2, t1, t2)``."""

    def forward(
        self,
        prediction_1: torch.Tensor,
        prediction_2: torch.Tensor,
        target_1: torch.Tensor,
        target_2: torch.Tensor,
    ) -> torch.Tensor:
        return byol_loss(prediction_1, prediction_2, target_1, target_2)
