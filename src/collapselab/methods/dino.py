"""DINO (Caron et al., ICCV 2021) with two global views (no multi-crop).

Student: encoder -> DINO head (MLP, L2-normalised bottleneck, weight-normalised
prototypes); teacher: EMA of the student. Loss: cross-entropy between the centred,
sharpened teacher distribution of one view and the student's of the other (Eq. 1-4,
:func:`collapselab.losses.dino_loss`); the centre is an EMA of the teacher's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from collapselab.dist import is_distributed
from collapselab.losses import DINOLoss
from collapselab.methods.base import Method, MethodConfig, StepOutput, Tensor, register
from collapselab.methods.teacher import EMATeacher
from collapselab.models import DINOHead


@dataclass
class DINOConfig(MethodConfig):
    """DINO defaults scaled to small images (paper: ViT-S/16, K = 65536, batch 1024)."""

    out_dim: int = 1024  # K prototypes; paper 65536 for 1.28M images
    hidden_dim: int = 512  # paper 2048
    bottleneck_dim: int = 64  # paper 256
    student_temp: float = 0.1  # paper 0.1
    teacher_temp: float = 0.04  # paper 0.04 (0.07 needs a warm-up)
    center_momentum: float = 0.9  # paper 0.9
    momentum: float = 0.99  # paper 0.996 -> 1 (cosine) for 100+ epochs of ImageNet
    lr: float = 1e-3  # AdamW (paper: AdamW 5e-4 x B/256)
    weight_decay: float = 1e-4  # paper 0.04 -> 0.4 for ViTs; small CNN needs little


class _Student(nn.Module):
    def __init__(self, encoder: nn.Module, head: DINOHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x))


@register
class DINO(Method):
    """DINO self-distillation with centring and sharpening."""

    name = "dino"
    config_class = DINOConfig

    def __init__(self, encoder: nn.Module, config: DINOConfig) -> None:
        super().__init__(encoder, config)
        self.head = DINOHead(
            self.feature_dim, config.out_dim, config.hidden_dim, config.bottleneck_dim
        )
        self.student = _Student(self.encoder, self.head)
        self.teacher = EMATeacher(self.student, config.momentum, cosine=True)
        self.loss_fn = DINOLoss(
            config.out_dim,
            student_temp=config.student_temp,
            teacher_temp=config.teacher_temp,
            warmup_teacher_temp=config.teacher_temp,
            center_momentum=config.center_momentum,
            gather_distributed=is_distributed(),
        )

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2 = self.encoder(v1), self.encoder(v2)  # (B, feature_dim)
        s = torch.stack([self.head(h1), self.head(h2)])  # (2, B, K) student logits
        t = torch.stack([self.teacher(v1), self.teacher(v2)])  # (2, B, K), no gradient
        loss = self.loss_fn(s, t)
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.teacher.update(self.student, step, total_steps)

    @torch.no_grad()
    def project(self, x: Tensor) -> Tensor:
        """The L2-normalised bottleneck of the DINO head, ``(B, bottleneck_dim)``."""
        return self.head.bottleneck(self.encoder(x))
