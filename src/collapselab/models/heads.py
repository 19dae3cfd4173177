"""Projection, prediction and DINO heads.

Projection heads map the representation ``h`` (``(B, in_dim)``) to the space where the
loss acts (SimCLR: Chen et al. 2020, Sec. 2.1 "g(.)"); prediction heads are BYOL's /
SimSiam's ``q`` applied on the online branch only (Grill et al. 2020, Sec. 3.1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapselab.errors import ConfigError
from collapselab.models.norm import BatchNorm

Tensor = torch.Tensor


class MLPHead(nn.Module):
    """``num_layers`` linear layers with ``BN -> ReLU`` between them.

    Args:
        in_dim: input width.
        hidden_dim: width of the hidden layers.
        out_dim: output width.
        num_layers: number of linear layers (>= 1).
        batch_norm: BN after each hidden linear layer.
        last_bn: BN without affine parameters on the output, as in SimSiam's projector
            (Chen & He 2021, Sec. 4.1).
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_bn: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ConfigError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        prev = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(prev, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(BatchNorm(hidden_dim))
            layers.append(nn.ReLU())
            prev = hidden_dim
        layers.append(nn.Linear(prev, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(BatchNorm(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_dim)`` -> ``(B, out_dim)``."""
        return self.net(x)


class DINOHead(nn.Module):
    """DINO's head (Caron et al. 2021, Sec. 3.1 and Appendix): a 3-layer GELU MLP to a
    bottleneck, L2 normalisation, then a weight-normalised linear layer to ``K`` logits.

    ``forward`` returns the logits ``(B, K)``; :meth:`bottleneck` returns the normalised
    bottleneck features ``(B, bottleneck_dim)``, which the collapse monitor watches.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dim: int = 512,
        bottleneck_dim: int = 64,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_dim
        for _ in range(num_layers - 1):
            layers += [nn.Linear(prev, hidden_dim), nn.GELU()]
            prev = hidden_dim
        layers.append(nn.Linear(prev, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)  # as in the official code
                nn.init.zeros_(m.bias)
        # weight-normalised prototypes with the norm fixed to 1 (norm_last_layer=True)
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.prototypes, std=0.02)

    def bottleneck(self, h: Tensor) -> Tensor:
        """``(B, in_dim)`` -> L2-normalised ``(B, bottleneck_dim)``."""
        return F.normalize(self.mlp(h), dim=-1)

    def forward(self, h: Tensor) -> Tensor:
        """``(B, in_dim)`` -> logits ``(B, out_dim)`` (cosine to unit-norm prototypes)."""
        return self.logits(self.bottleneck(h))

    def logits(self, u: Tensor) -> Tensor:
        """Normalised bottleneck ``(B, bottleneck_dim)`` -> logits ``(B, out_dim)``."""
        return u @ F.normalize(self.prototypes, dim=-1).T  # (B, b) @ (b, K) -> (B, K)
