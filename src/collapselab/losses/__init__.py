"""Objectives: one per file, each a typed functional core plus a thin ``nn.Module``.

The article's collapse-prone objectives (:func:`pairwise_attraction_loss`,
:func:`variance_loss`), InfoNCE (:func:`info_nce`, the article's demo
:func:`article_info_nce`), SimCLR's :func:`nt_xent` (plain or memory-bounded with
``block_size``).
"""

from __future__ import annotations

from collapselab.losses.attraction import PairwiseAttractionLoss, pairwise_attraction_loss
from collapselab.losses.info_nce import (
    ArticleInfoNCELoss,
    InfoNCELoss,
    article_info_nce,
    info_nce,
)
from collapselab.losses.logsumexp import contrastive_logsumexp
from collapselab.losses.nt_xent import NTXentLoss, nt_xent
from collapselab.losses.variance import VarianceLoss, variance_loss

__all__ = [
    "ArticleInfoNCELoss",
    "InfoNCELoss",
    "NTXentLoss",
    "PairwiseAttractionLoss",
    "VarianceLoss",
    "article_info_nce",
    "contrastive_logsumexp",
    "info_nce",
    "nt_xent",
    "pairwise_attraction_loss",
    "variance_loss",
]
