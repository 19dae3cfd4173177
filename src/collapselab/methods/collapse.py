"""The article's collapse-prone objectives, trained like any other method.

Both are minimised exactly at complete collapse (``z_i = c``), and their gradients vanish
there (the seed article, "Why Collapse is a Stable Solution" and "Gradient Analysis of
Collapse"); they exist to show collapse happening and to test that the monitor flags it.

- ``alignment``: the article's attraction ``L = sum_{i,j} ||z_i - z_j||^2`` restricted to
  positive pairs (the two views of one image), as a mean over pairs:
  ``(1/N) sum_i ||z1_i - z2_i||^2``, computed with
  :func:`collapselab.losses.pairwise_attraction_loss` on each pair (for two rows it is
  ``2 ||z1 - z2||^2``). Wang & Isola (2020)'s alignment term without its uniformity term.
- ``variance``: the article's demo ``collapse_loss`` (:func:`collapselab.losses.variance_loss`)
  on the embeddings of both views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from collapselab.losses import pairwise_attraction_loss, variance_loss
from collapselab.methods.base import MethodConfig, ProjectorMethod, StepOutput, Tensor, register


@dataclass
class CollapseConfig(MethodConfig):
    """Same encoder, projector and optimiser as SimCLR so that only the loss differs."""

    proj_hidden_dim: int = 512  # as SimCLR
    proj_dim: int = 128  # as SimCLR
    proj_layers: int = 2  # as SimCLR
    lr: float = 2e-3  # as SimCLR
    weight_decay: float = 1e-4  # as SimCLR


class _CollapseMethod(ProjectorMethod):
    collapse_expected = True
    loss_floor = 0.0  # both are non-negative and reach 0 at complete collapse


@register
class Alignment(_CollapseMethod):
    """Positive-pair attraction only (collapse is its global minimum)."""

    name = "alignment"
    config_class = CollapseConfig

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2, z1, z2 = self.encode_views(v1, v2)  # z: (B, d) each
        pairs = torch.stack([z1, z2], dim=1)  # (B, 2, d): the two views of each image
        loss = torch.vmap(pairwise_attraction_loss)(pairs).mean() / 2.0  # = mean ||z1-z2||^2
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())


@register
class Variance(_CollapseMethod):
    """The article's ``collapse_loss``: minimise the variance of the embeddings."""

    name = "variance"
    config_class = CollapseConfig

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:
        h1, h2, z1, z2 = self.encode_views(v1, v2)
        loss = variance_loss(torch.cat([z1, z2]))  # over the 2B rows
        return StepOutput(loss, {"loss": loss.item()}, h1.detach(), h2.detach())
