"""Encoders (backbones) for small images and vectors.

Both map an input batch to a representation ``h`` of shape ``(B, out_dim)``: the features
that the evaluation (kNN, linear probe) reads and that the projection head consumes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collapselab.errors import ConfigError
from collapselab.models.norm import BatchNorm

Tensor = torch.Tensor


class MLPEncoder(nn.Module):
    """``Linear -> BN -> ReLU`` blocks; the last block's ReLU output is the representation.

    Args:
        in_dim: flattened input size (images are flattened: ``(B, C, H, W) -> (B, CHW)``).
        hidden: widths of the blocks; the last is ``out_dim``.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...] = (512, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        prev = in_dim
        for width in hidden:
            layers += [nn.Linear(prev, width, bias=False), BatchNorm(width), nn.ReLU()]
            prev = width
        self.net = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: Tensor) -> Tensor:
        """``(B, ...)`` -> ``(B, out_dim)``."""
        return self.net(x)


class SmallCNN(nn.Module):
    """A VGG-style CNN for 8x8 to 32x32 grey or colour images.

    Each stage is ``conv3x3 -> BN -> ReLU``, followed by a 2x2 max-pool while the feature
    map is larger than 4x4 (8x8 digits: 8 -> 4; 28x28: 28 -> 14 -> 7 -> 3); global average
    pooling gives the representation.

    Args:
        in_channels: ``C`` of the input.
        image_size: ``H`` (= ``W``) of the input.
        widths: channels per stage; the last is ``out_dim``.
    """

    def __init__(
        self, in_channels: int, image_size: int, widths: tuple[int, ...] = (32, 64, 128)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev, size = in_channels, image_size
        for width in widths:
            layers += [
                nn.Conv2d(prev, width, 3, padding=1, bias=False),
                BatchNorm(width),
                nn.ReLU(),
            ]
            if size > 4:
                layers.append(nn.MaxPool2d(2))
                size = math.floor(size / 2)
            prev = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_dim = prev

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, out_dim)``."""
        return self.net(x)


def build_encoder(kind: str, input_shape: tuple[int, ...]) -> MLPEncoder | SmallCNN:
    """Encoder by name: ``"mlp"``, ``"cnn"`` or ``"auto"`` (CNN for images, else MLP).

    Args:
        kind: encoder name.
        input_shape: ``(C, H, W)`` or ``(D,)`` of one example.

    Raises:
        ConfigError: unknown kind, or ``"cnn"`` for vector inputs.
    """
    is_image = len(input_shape) == 3
    if kind == "auto":
        kind = "cnn" if is_image else "mlp"
    if kind == "mlp":
        return MLPEncoder(math.prod(input_shape))
    if kind == "cnn":
        if not is_image:
            raise ConfigError(f"encoder 'cnn' needs (C, H, W) inputs, got shape {input_shape}")
        return SmallCNN(input_shape[0], input_shape[1])
    raise ConfigError(f"unknown encoder {kind!r}; choose auto, mlp or cnn")
