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

from torch import nn

from collapselab.losses import byol_loss
from collapselab.methods.base import Method, MethodConfig, StepOutput, Tensor, register
from collapselab.methods.teacher import EMATeacher
from collapselab.models import MLPHead


@dataclass
class BYOLConfig(MethodConfig):
    """BYOL defaults scaled to small images (paper: ResNet-50, batch 4096, LARS)."""

    proj_hidden_dim: int = 512  # paper 4096; 4x our 128-wide encoder
    proj_dim: int = 128  # paper 256
    pred_hidden_dim: int = 512  # paper 4096 (predictor = projector architecture)
    momentum: float = 0.99  # paper tau_base 0.996 for 300k steps; 0.99 for ~1-2k steps
    lr: float = 2e-3  # AdamW for batch 256 (paper LARS 0.2 x B/256)
    weight_decay: float = 1e-4  # paper 1.5e-6 with LARS; AdamW decoupled decay


@register
class BYOL(Method):
    """BYOL: online prediction regresses the EMA target's projection of the other view."""

    name = "byol"
    config_class = BYOLConfig
    use_predictor = True

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


@register
class BYOLNoPredictor(BYOL):
    """Ablation: BYOL with the predictor removed (identity) -- known to collapse."""

    name = "byol-no-predictor"
    collapse_expected = True
    use_predictor = False
