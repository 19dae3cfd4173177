"""Objectives: one per file, each a typed functional core plus a thin ``nn.Module``.

- The article's collapse-prone objectives: :func:`pairwise_attraction_loss`,
  :func:`variance_loss` (its first demo's ``collapse_loss``).
- Contrastive: :func:`info_nce` (general, one-directional), :func:`article_info_nce` (the
  article's second demo, verbatim), :func:`nt_xent` (SimCLR), :func:`moco_loss` with
  :class:`KeyQueue`. All take ``block_size`` for the memory-bounded blockwise path
  (:func:`contrastive_logsumexp`) and ``gather_distributed`` where it applies.
- Non-contrastive: :func:`byol_loss`, :func:`simsiam_loss`, :class:`DINOLoss`,
  :func:`barlow_twins_loss`, :func:`vicreg_loss` (the last two with ``*_components``).
- :func:`ema_update` / :func:`cosine_momentum` for momentum (teacher / key) encoders.
"""

from __future__ import annotations

from collapselab.losses.attraction import PairwiseAttractionLoss, pairwise_attraction_loss
from collapselab.losses.barlow_twins import (
    BarlowTwinsComponents,
    BarlowTwinsLoss,
    barlow_twins_components,
    barlow_twins_loss,
)
from collapselab.losses.byol import BYOLLoss, byol_loss, normalized_mse
from collapselab.losses.dino import DINOLoss, dino_batch_center, dino_loss, teacher_temperature
from collapselab.losses.ema import cosine_momentum, ema_update
from collapselab.losses.info_nce import (
    ArticleInfoNCELoss,
    InfoNCELoss,
    article_info_nce,
    info_nce,
)
from collapselab.losses.logsumexp import contrastive_logsumexp
from collapselab.losses.moco import KeyQueue, MoCoLoss, moco_loss
from collapselab.losses.nt_xent import NTXentLoss, nt_xent
from collapselab.losses.simsiam import SimSiamLoss, negative_cosine, simsiam_loss
from collapselab.losses.variance import VarianceLoss, variance_loss
from collapselab.losses.vicreg import (
    VICRegComponents,
    VICRegLoss,
    vicreg_components,
    vicreg_loss,
)

__all__ = [
    "ArticleInfoNCELoss",
    "BYOLLoss",
    "BarlowTwinsComponents",
    "BarlowTwinsLoss",
    "DINOLoss",
    "InfoNCELoss",
    "KeyQueue",
    "MoCoLoss",
    "NTXentLoss",
    "PairwiseAttractionLoss",
    "SimSiamLoss",
    "VICRegComponents",
    "VICRegLoss",
    "VarianceLoss",
    "article_info_nce",
    "barlow_twins_components",
    "barlow_twins_loss",
    "byol_loss",
    "contrastive_logsumexp",
    "cosine_momentum",
    "dino_batch_center",
    "dino_loss",
    "ema_update",
    "info_nce",
    "moco_loss",
    "negative_cosine",
    "normalized_mse",
    "nt_xent",
    "pairwise_attraction_loss",
    "simsiam_loss",
    "teacher_temperature",
    "variance_loss",
    "vicreg_components",
    "vicreg_loss",
]
