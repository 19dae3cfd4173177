"""Encoders, projection / prediction heads and batch norm across ranks."""

from collapselab.models.encoders import MLPEncoder, SmallCNN, build_encoder
from collapselab.models.heads import DINOHead, MLPHead
from collapselab.models.norm import BatchNorm

__all__ = [
    "BatchNorm",
    "DINOHead",
    "MLPEncoder",
    "MLPHead",
    "SmallCNN",
    "build_encoder",
]
