"""SimCLR (Chen, Kornblith, Norouzi & Hinton, ICML 2020).

Encoder ``f``, projection MLP ``g`` (Sec. 2.1), NT-Xent on ``z = g(f(x))`` of two views
(Eq. 1); negatives are the other ``2N - 2`` views of the batch, gathered across ranks
under torch.distributed.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapselab.dist import is_distributed
from collapselab.losses import nt_xent
from collapselab.methods.base import MethodConfig, ProjectorMethod, StepOutput, Tensor, register


@dataclass
class SimCLRConfig(MethodConfig):
    """SimCLR defaults scaled to 8x8 / 28x28 images (paper: ResNet-50, batch 4096)."""

    proj_hidden_dim: int = 512  # paper 2048 = encoder width; 4x our 128-wide encoder
    proj_dim: int = 128  # paper 128 (Sec. B.4: output size barely matters)
    proj_layers: int = 2  # paper: 2-layer MLP head (Sec. 2.1, Fig. 8)
    temperature: float = 0.2  # paper 0.1 (ImageNet, batch 4096), 0.5 (CIFAR-10); untuned
    lr: float = 2e-3  # AdamW for batch 256 (paper: LARS 4.8 at batch 4096)
    weight_decay: float = 1e-4  # paper 1e-6 with LARS; AdamW decoupled decay


@register
class SimCLR(ProjectorMethod):
    """SimCLR: NT-Xent between the projections of two views."""

    name = "simclr"
    config_class = SimCLRConfig

    cfg: SimCLRConfig

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2, z1, z2 = self.encode_views(v1, v2)  # (B, feature_dim), (B, proj_dim)
        loss = nt_xent(
            z1, z2, temperature=self.cfg.temperature, gather_distributed=is_distributed()
        )
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())
