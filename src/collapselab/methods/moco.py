"""MoCo v2 (He et al., CVPR 2020; Chen, Fan, Girshick & He 2020, "Improved Baselines").

Query encoder ``f_q`` = encoder + MLP head; key encoder ``f_k`` = its EMA (Eq. 2); InfoNCE
of each query against its key and a FIFO queue of past keys (Eq. 1). Symmetrised over the
two views (as MoCo v3 and the lightly benchmarks do; MoCo v2 scores one direction): each
view is a query once, so every image gives two gradient signals per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from collapselab.dist import is_distributed
from collapselab.losses import KeyQueue, moco_loss
from collapselab.methods.base import MethodConfig, ProjectorMethod, StepOutput, Tensor, register
from collapselab.methods.teacher import EMATeacher


@dataclass
class MoCoConfig(MethodConfig):
    """MoCo v2 defaults scaled to ~1000-60000 training images (paper: ImageNet, 1.28M)."""

    proj_hidden_dim: int = 512  # v2: 2-layer MLP head, hidden 2048; scaled to our encoder
    proj_dim: int = 128  # paper 128
    queue_size: int = 1024  # paper 65536 (5% of ImageNet); here < the 1347 digits images
    temperature: float = 0.2  # MoCo v2 (v1: 0.07)
    momentum: float = 0.99  # paper 0.999 at 5000 steps/epoch; 0.99 at our 5 steps/epoch
    lr: float = 2e-3  # AdamW for batch 256 (paper: SGD 0.03 at batch 256)
    weight_decay: float = 1e-4  # paper 1e-4


@register
class MoCo(ProjectorMethod):
    """MoCo v2 with a symmetrised loss."""

    name = "moco"
    config_class = MoCoConfig

    def __init__(self, encoder: nn.Module, config: MoCoConfig) -> None:
        super().__init__(encoder, config)
        self.online = nn.Sequential(self.encoder, self.projector)
        self.key_encoder = EMATeacher(self.online, config.momentum, cosine=False)
        self.queue = KeyQueue(config.queue_size, config.proj_dim)

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2, q1, q2 = self.encode_views(v1, v2)  # (B, feature_dim), (B, d) queries
        k1, k2 = self.key_encoder(v1), self.key_encoder(v2)  # (B, d) keys, no gradient
        negatives = self.queue.current()  # (K', d), K' <= queue_size
        t = self.cfg.temperature
        loss = 0.5 * (moco_loss(q1, k2, negatives, t) + moco_loss(q2, k1, negatives, t))
        keys = F.normalize(0.5 * (k1 + k2), dim=1)  # one key per image enters the queue
        self.queue.dequeue_and_enqueue(keys, gather_distributed=is_distributed())
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        self.key_encoder.update(self.online, step, total_steps)
