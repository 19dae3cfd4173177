"""SimSiam: symmetric negative cosine similarity with a stop-gradient on the projection.

Reference: Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
Eq. 1 and Eq. 3-4:

    D(p, z) = - <p / ||p||, z / ||z||>,
    L = 1/2 D(p_1, sg(z_2)) + 1/2 D(p_2, sg(z_1)).

``p`` is the predictor output, ``z`` the projection of the other view; ``sg`` is the
stop-gradient the paper shows to be essential against collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapselab.losses._validate import check_2d, check_same_shape

__all__ = ["negative_cosine", "simsiam_loss", "SimSiamLoss"]


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """SimSiam Eq. 1 with stop-gradient, ``D(p, sg(z))``, mean over the batch.

    Args:
        p: predictions, (N, d).
        z: projections, (N, d); detached unless ``stop_gradient=False`` (the collapsing
            ablation of SimSiam's Fig. 2).

    Returns:
        Scalar in [-1, 1].
    """
    check_2d("p", p)
    check_2d("z", z)
    check_same_shape("p", p, "z", z)
    return -F.cosine_similarity(p, z.detach() if stop_gradient else z, dim=1).mean()


def simsiam_loss(
    p1: torch.Tensor,
    p2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
    stop_gradient: bool = True,
) -> torch.Tensor:
    """Symmetrised SimSiam loss (Eq. 4), ``D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2``.

    Args:
        p1: predictor output of view 1, (N, d).
        p2: predictor output of view 2, (N, d).
        z1: projection of view 1, (N, d) (stop-gradient).
        z2: projection of view 2, (N, d) (stop-gradient).
        stop_gradient: False gives the ablation without stop-gradient, which collapses
            (Chen & He 2021, Fig. 2).

    Returns:
        Scalar in [-1, 1]; -1 when every prediction aligns with the other view.
    """
    return 0.5 * negative_cosine(p1, z2, stop_gradient) + 0.5 * negative_cosine(
        p2, z1, stop_gradient
    )


class SimSiamLoss(nn.Module):
    """Module form of :func:`simsiam_loss`; ``forward(p1, p2, z1, z2)``."""

    def forward(
        self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
    ) -> torch.Tensor:
        return simsiam_loss(p1, p2, z1, z2)
