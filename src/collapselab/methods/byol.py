"""BYOL (Grill et al., NeurIPS 2020) and its known-collapse ablation without predictor.

Online network: encoder -> projector -> predictor ``q``; target network: EMA of encoder ->
projector. Loss: symmetrised normalised MSE between the online prediction of one view
and the target projection of the other (Eq. 2). Without the predictor (Table 5b of the
paper; Tian et al. 2021, "Understanding self-supervised learning dynamics without
contrastive pairs") the online projection simply matches a slowly moving copy of itself
and the representation collapses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from collapselab.losses import byol_loss
from collapselab.methods.base import (
    Method,
    MethodConfig,
    StepOutput,
    Tensor,
    register,
    split_groups,
)
from collapselab.methods.teacher import EMATeacher
from collapselab.models import MLPHead


@dataclass
class BYOLConfig(MethodConfig):
    """BYOL defaults scaled to small images (paper: ResNet-50, batch 4096, LARS).

    ``predictor_lr_scale = 10`` departs from the paper (one learning rate), following
    Tian, Chen & Ganguli (ICML 2021, "Understanding self-supervised learning dynamics
    without contrastive pairs"): a predictor that adapts faster than the online network
    keeps the representation from collapsing. Measured on digits (seed 0): with scale 1
    the representation's effective rank drops from 8 to 2.9 during warm-up and needs ~70
    steps to recover (a transient dimensional collapse); with 10 it never goes below 6.5
    and reaches 18 by step 140 instead of 12.
    """

    proj_hidden_dim: int = 512  # paper 4096; 4x our 128-wide encoder
    proj_dim: int = 128  # paper 256
    pred_hidden_dim: int = 512  # paper 4096 (predictor = projector architecture)
    momentum: float = 0.99  # paper tau_base 0.996 for 300k steps; 0.99 for ~1-2k steps
    predictor_lr_scale: float = 10.0  # predictor lr / base lr; see the note below
    lr: float = 2e-3  # AdamW for batch 256 (paper LARS 0.2 x B/256)
    weight_decay: float = 1e-4  # paper 1.5e-6 with LARS; AdamW decoupled decay


@register
class BYOL(Method):
    """BYOL: online prediction regresses the EMA target's projection of the other view."""

    name = "byol"
    config_class = BYOLConfig
    use_predictor = True
    loss_floor = 0.0  # 2 - 2 cos, summed over the two directions

    def __init__(self, encoder: nn.Module, config: BYOLConfig) -> None:
        super().__init__(encoder, config)
        self.projector = MLPHead(self.feature_dim, config.proj_hidden_dim, config.proj_dim)
        self.online = nn.Sequential(self.encoder, self.projector)
        self.predictor: nn.Module = (
            MLPHead(config.proj_dim, config.pred_hidden_dim, config.proj_dim)
            if self.use_predictor
            else nn.Identity()
        )
        self.target = EMATeacher(self.online, config.momentum, cosine=True)

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2 = self.encoder(v1), self.encoder(v2)  # (B, feature_dim)
        z1, z2 = self.projector(h1), self.projector(h2)  # (B, proj_dim) online projections
        p1, p2 = self.predictor(z1), self.predictor(z2)  # (B, proj_dim) predictions
        t1, t2 = self.target(v1), self.target(v2)  # (B, proj_dim) target projections
        loss = byol_loss(p1, p2, t1, t2)
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.target.update(self.online, step, total_steps)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        groups = super().param_groups(weight_decay)
        scale = self.config.predictor_lr_scale  # type: ignore[attr-defined]
        if scale == 1.0:
            return groups
        return split_groups(groups, self.predictor.parameters(), lr_scale=scale)


@register
class BYOLNoPredictor(BYOL):
    """Ablation: BYOL with the predictor removed (identity) -- known to collapse."""

    name = "byol-no-predictor"
    collapse_expected = True
    use_predictor = False
