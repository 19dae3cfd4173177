"""SimSiam (Chen & He, CVPR 2021) and its known-collapse ablation without stop-gradient.

Encoder -> projector (3 layers, BN on the output) -> predictor (2-layer bottleneck MLP);
loss: symmetrised negative cosine between each view's prediction and the other view's
projection, with a stop-gradient on the projection (Eq. 3-4). Removing the stop-gradient
collapses immediately (paper Sec. 4.1, Fig. 2: loss -1, output std 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from collapselab.losses import simsiam_loss
from collapselab.methods.base import (
    Method,
    MethodConfig,
    StepOutput,
    Tensor,
    register,
    split_groups,
)
from collapselab.models import MLPHead


@dataclass
class SimSiamConfig(MethodConfig):
    """SimSiam defaults scaled to small images (paper: ResNet-50, batch 512, SGD)."""

    proj_hidden_dim: int = 512  # paper 2048
    proj_dim: int = 512  # paper 2048 (output of the 3-layer projector, with BN)
    proj_layers: int = 3  # paper: 3 layers (2 on CIFAR)
    pred_hidden_dim: int = 128  # paper 512 = proj_dim / 4 (bottleneck, Sec. 4.4)
    lr: float = 2e-3  # AdamW for batch 256 (paper: SGD 0.05 x B/256)
    weight_decay: float = 1e-4  # paper 1e-4
    fixed_predictor_lr: bool = True  # paper Sec. 4 (Predictor): its lr is not decayed


@register
class SimSiam(Method):
    """SimSiam: predictor + stop-gradient, no negatives, no EMA."""

    name = "simsiam"
    config_class = SimSiamConfig
    stop_gradient = True
    loss_floor = -1.0  # negative cosine

    def __init__(self, encoder: nn.Module, config: SimSiamConfig) -> None:
        super().__init__(encoder, config)
        self.cfg = config
        self.projector = MLPHead(
            self.feature_dim, config.proj_hidden_dim, config.proj_dim, config.proj_layers,
            last_bn=True,
        )  # fmt: skip
        self.predictor = MLPHead(config.proj_dim, config.pred_hidden_dim, config.proj_dim)

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2 = self.encoder(v1), self.encoder(v2)  # (B, feature_dim)
        z1, z2 = self.projector(h1), self.projector(h2)  # (B, proj_dim)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        # without stop-gradient (the ablation) gradients flow into both p and z
        loss = simsiam_loss(p1, p2, z1, z2, stop_gradient=self.stop_gradient)
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        groups = super().param_groups(weight_decay)
        if not self.cfg.fixed_predictor_lr:
            return groups
        return split_groups(groups, self.predictor.parameters(), fixed_lr=True)


@register
class SimSiamNoStopGrad(SimSiam):
    """Ablation: SimSiam without the stop-gradient -- known to collapse."""

    name = "simsiam-no-stopgrad"
    collapse_expected = True
    stop_gradient = False
