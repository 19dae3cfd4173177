"""Barlow Twins (Zbontar et al., ICML 2021) and VICReg (Bardes, Ponce & LeCun, ICLR 2022).

Both: encoder -> 3-layer expander MLP, and a loss on batch statistics of the two views'
embeddings (cross-correlation to identity; variance-invariance-covariance), computed over
the global batch under torch.distributed.
"""

from __future__ import annotations

from dataclasses import dataclass

from collapselab.dist import is_distributed
from collapselab.losses import barlow_twins_components, vicreg_components
from collapselab.methods.base import MethodConfig, ProjectorMethod, StepOutput, Tensor, register


@dataclass
class ExpanderConfig(MethodConfig):
    """The expander both papers use, scaled to small images (paper: 8192-8192-8192, batch
    2048), and the optimiser for batch 256 (papers: LARS 0.2; weight decay 1.5e-6 / 1e-6)."""

    proj_hidden_dim: int = 512  # paper 8192
    proj_dim: int = 512  # paper 8192; Barlow's accuracy grows with it (Fig. 4), cost d^2
    lr: float = 1e-3  # AdamW for batch 256
    weight_decay: float = 1e-4


@dataclass
class BarlowConfig(ExpanderConfig):
    """Barlow Twins defaults."""

    lambda_: float = 0.0051  # paper 0.0051 (~1/D for D = 8192 would be smaller; stable here)


@register
class BarlowTwins(ProjectorMethod):
    """Barlow Twins: cross-correlation of standardised embeddings driven to the identity."""

    name = "barlow"
    config_class = BarlowConfig

    proj_layers = 3  # the paper's 3-layer expander
    cfg: BarlowConfig

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2, z1, z2 = self.encode_views(v1, v2)  # (B, feature_dim), (B, proj_dim)
        t = barlow_twins_components(z1, z2, gather_distributed=is_distributed())
        loss = t.invariance + self.cfg.lambda_ * t.redundancy
        terms = {"loss": loss.item(), "invariance": t.invariance.item(),
                 "redundancy": t.redundancy.item()}  # fmt: skip
        return StepOutput(loss, terms, h1.detach(), h2.detach())


@dataclass
class VICRegConfig(ExpanderConfig):
    """VICReg defaults."""

    invariance_weight: float = 25.0  # paper lambda = 25
    variance_weight: float = 25.0  # paper mu = 25
    covariance_weight: float = 1.0  # paper nu = 1


@register
class VICReg(ProjectorMethod):
    """VICReg: invariance + variance hinge + covariance decorrelation."""

    name = "vicreg"
    config_class = VICRegConfig

    proj_layers = 3  # the paper's 3-layer expander
    cfg: VICRegConfig

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2, z1, z2 = self.encode_views(v1, v2)  # (B, feature_dim), (B, proj_dim)
        t = vicreg_components(z1, z2, gather_distributed=is_distributed())
        c = self.cfg
        loss = (c.invariance_weight * t.invariance + c.variance_weight * t.variance
                + c.covariance_weight * t.covariance)  # fmt: skip
        terms = {"loss": loss.item(), "invariance": t.invariance.item(),
                 "variance": t.variance.item(), "covariance": t.covariance.item()}  # fmt: skip
        return StepOutput(loss, terms, h1.detach(), h2.detach())
