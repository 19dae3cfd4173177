"""NT-Xent, the symmetric two-view contrastive loss of SimCLR.

Reference: Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020, Eq. 1 and Algorithm 1.

For 2N embeddings ``z = [z1; z2]`` (L2-normalised when ``normalize``) and
``s_ik = z_i^T z_k / tau``, anchor i's positive is its other view ``j(i) = (i + N) mod 2N``
and its candidates are the other 2N - 1 embeddings:

    l(i) = -s_{i j(i)} + log sum_{k != i} exp(s_ik),      L = (1 / 2N) sum_i l(i).

A fully collapsed batch gives ``log(2N - 1)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collapselab import dist
from collapselab.losses._contrastive import ContrastiveModule
from collapselab.losses._validate import (
    check_2d,
    check_block_size,
    check_positive,
    check_same_shape,
)
from collapselab.losses.logsumexp import contrastive_logsumexp

__all__ = ["nt_xent", "NTXentLoss"]

#: default temperature of :func:`nt_xent` and :class:`NTXentLoss`: SimCLR's ImageNet value
#: (Chen et al. 2020, batch 4096)
TEMPERATURE = 0.1


def nt_xent(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float = TEMPERATURE,
    normalize: bool = True,
    block_size: int | None = None,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """Symmetric two-view NT-Xent (SimCLR Eq. 1), mean over the 2N anchors.

    The (2N, 2N) logit matrix is built once, softmaxed in place and reused by backward
    (see :mod:`collapselab.losses.logsumexp`); no other N^2 buffer is allocated.

    Args:
        z1: first view, (N, d).
        z2: second view, (N, d); row i is the positive of ``z1[i]`` and vice versa.
        temperature: tau > 0 (SimCLR uses 0.1-0.5).
        normalize: L2-normalise rows first (cosine similarity, as in SimCLR).
        block_size: ``None`` for the plain computation (one 2N x 2N buffer); an int ``b``
            selects the memory-bounded blockwise computation (one b x 2N buffer, blocks
            recomputed in backward) with the same value and gradients.
        gather_distributed: each local anchor is contrasted with the embeddings of every
            rank (all-gather that carries gradients). The result is the mean over this rank's
            2N anchors; DDP's gradient averaging then yields the whole-batch gradient.

    Returns:
        Scalar loss.
    """
    check_2d("z1", z1)
    check_2d("z2", z2)
    check_same_shape("z1", z1, "z2", z2)
    check_positive("temperature", temperature)
    check_block_size(block_size)
    if gather_distributed:
        dist.require_distributed_available("nt_xent")
    n = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)  # (2N, d): rows [view 1; view 2]
    if normalize:
        z = F.normalize(z, dim=1)
    scale = 1.0 / temperature
    if gather_distributed:
        keys, offset = dist.gather_with_offset(z)  # (2 N_total, d), rank blocks [z1_r; z2_r]
    else:
        keys, offset = z, 0
    # Anchor i sits at row offset + i of keys: drop it from its own denominator.
    self_idx = torch.arange(offset, offset + 2 * n, device=z.device)  # (2N,)
    lse = contrastive_logsumexp(z, keys, scale, self_idx, block_size)  # (2N,)
    pos = (z[:n] * z[n:]).sum(dim=1) * scale  # (N,) s_{i, i+N} = s_{i+N, i}
    return (lse - torch.cat([pos, pos])).mean()


class NTXentLoss(ContrastiveModule):
    """Module form of :func:`nt_xent`; ``forward(z1, z2)`` with z1, z2 of shape (N, d)."""

    default_temperature = TEMPERATURE

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return nt_xent(
            z1,
            z2,
            temperature=self.temperature,
            normalize=self.normalize,
            block_size=self.block_size,
            gather_distributed=self.gather_distributed,
        )
