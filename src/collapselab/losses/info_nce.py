"""InfoNCE: the general one-directional form and the article's self-pair demo.

References:
    [0] van den Oord, Li, Vinyals, "Representation Learning with Contrastive Predictive
        Coding", 2018, Eq. 4.
    [1] He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
        CVPR 2020, Eq. 1 (positive scored together with a set of negatives).
    [2] The seed article, "Formal Definition of InfoNCE Loss":
        ``L_i = -log exp(z_i^T z_i^+ / tau) / sum_{k=1}^N exp(z_i^T z_k / tau)``,
        and its "Empirical Demonstration" (``article_info_nce``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapselab import dist
from collapselab.losses._contrastive import ContrastiveModule
from collapselab.losses._validate import (
    check_2d,
    check_block_size,
    check_positive,
    check_same_dim,
    check_same_shape,
)
from collapselab.losses.logsumexp import contrastive_logsumexp

__all__ = ["info_nce", "article_info_nce", "InfoNCELoss", "ArticleInfoNCELoss"]

#: default temperature of :func:`info_nce` and :class:`InfoNCELoss` (one definition)
TEMPERATURE = 0.1


def info_nce(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    candidates: torch.Tensor | None = None,
    temperature: float = TEMPERATURE,
    normalize: bool = True,
    block_size: int | None = None,
    gather_distributed: bool = False,
) -> torch.Tensor:
    """One-directional InfoNCE, mean over anchors ([0] Eq. 4, [2]).

    With ``s(u, v) = u^T v / tau`` (on L2-normalised rows when ``normalize``):

    - ``candidates=None`` (in-batch form, the article's): anchor i is contrasted with every
      positive, ``L_i = -s(a_i, p_i) + log sum_k exp s(a_i, p_k)``; its positive is ``p_i``.
    - ``candidates`` given (MoCo form, [1] Eq. 1): the positive is scored together with the
      candidates, which act as negatives: ``L_i = -s(a_i, p_i) + log(exp s(a_i, p_i) +
      sum_k exp s(a_i, c_k))``. (Passing ``candidates=positives`` therefore counts the
      positive twice; leave it ``None`` for the in-batch form.)

    A fully collapsed in-batch batch gives ``log N``.

    Args:
        anchors: (N, d).
        positives: (N, d); row i is anchor i's positive.
        candidates: optional (K, d) negatives shared by every anchor (K may be 0).
        temperature: tau > 0.
        normalize: L2-normalise anchors, positives and candidates first (cosine similarity).
        block_size: ``None`` for the plain computation; an int selects the memory-bounded
            blockwise log-sum-exp (same value and gradients, O(block * N) memory).
        gather_distributed: contrast against the positives (or candidates) of every rank via
            an all-gather that carries gradients; the loss is the mean over this rank's
            anchors, and DDP's gradient averaging gives the whole-batch gradient.

    Returns:
        Scalar loss.
    """
    check_2d("anchors", anchors)
    check_2d("positives", positives)
    check_same_shape("anchors", anchors, "positives", positives)
    check_positive("temperature", temperature)
    check_block_size(block_size)
    if gather_distributed:
        dist.require_distributed_available("info_nce")
    if normalize:
        anchors = F.normalize(anchors, dim=1)
        positives = F.normalize(positives, dim=1)
    scale = 1.0 / temperature
    pos = (anchors * positives).sum(dim=1) * scale  # (N,) positive logits s(a_i, p_i)
    if candidates is None:
        keys = dist.gather(positives) if gather_distributed else positives  # (N_total, d)
        lse = contrastive_logsumexp(anchors, keys, scale, None, block_size)  # (N,)
    else:
        check_2d("candidates", candidates, min_rows=0)
        check_same_dim("anchors", anchors, "candidates", candidates)
        if normalize:
            candidates = F.normalize(candidates, dim=1)
        keys = dist.gather(candidates) if gather_distributed else candidates  # (K_total, d)
        if keys.shape[0] == 0:  # no negatives (e.g. an empty MoCo queue): loss 0
            lse = pos
        else:
            lse_c = contrastive_logsumexp(anchors, keys, scale, None, block_size)  # (N,)
            lse = torch.logaddexp(lse_c, pos)
    return (lse - pos).mean()


def article_info_nce(z: torch.Tensor) -> torch.Tensor:
    """The article's demo InfoNCE, verbatim: ``CrossEntropyLoss()(z @ z.T, arange(N))``.

    Self-pairs (each row's positive is itself), raw dot products, no temperature, no
    normalisation: exactly the ``info_nce`` of the article's "Empirical Demonstration", so
    the demo can be reproduced. Note that it rewards large norms (``z_i^T z_i`` grows
    quadratically); use :func:`info_nce` for the well-posed objective.

    Args:
        z: embeddings, shape (N, d).

    Returns:
        Scalar loss.
    """
    check_2d("z", z)
    sim = z @ z.T  # (N, N)
    labels = torch.arange(z.size(0), device=z.device)
    loss: torch.Tensor = nn.CrossEntropyLoss()(sim, labels)
    return loss


class InfoNCELoss(ContrastiveModule):
    """Module form of :func:`info_nce`; ``forward(anchors, positives, candidates=None)``."""

    default_temperature = TEMPERATURE

    def forward(
        self,
        anchors: torch.Tensor,
        positives: torch.Tensor,
        candidates: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return info_nce(
            anchors,
            positives,
            candidates,
            temperature=self.temperature,
            normalize=self.normalize,
            block_size=self.block_size,
            gather_distributed=self.gather_distributed,
        )


class ArticleInfoNCELoss(nn.Module):
    """Module form of :func:`article_info_nce`; ``forward(z)`` with z of shape (N, d)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return article_info_nce(z)
