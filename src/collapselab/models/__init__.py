"""Encoders, projection / prediction heads, batch norm across ranks and the EMA teacher."""

from collapselab.models.ema import EMATeacher, cosine_momentum
from collapselab.models.encoders import MLPEncoder, SmallCNN, build_encoder
from collapselab.models.heads import DINOHead, MLPHead
from collapselab.models.norm import BatchNorm

__all__ = [
    "BatchNorm",
    "DINOHead",
    "EMATeacher",
    "MLPEncoder",
    "MLPHead",
    "SmallCNN",
    "build_encoder",
    "cosine_momentum",
]
