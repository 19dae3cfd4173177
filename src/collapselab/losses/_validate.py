"""Argument checks shared by the losses: one-line messages naming the argument."""

from __future__ import annotations

import math

import torch

from collapselab.errors import ConfigError, InputError


def check_2d(name: str, z: torch.Tensor, min_rows: int = 1) -> None:
    """Raise :class:`InputError` unless ``z`` is a floating (N, d) tensor with N >= min_rows."""
    if not isinstance(z, torch.Tensor):
        raise InputError(f"{name}: expected a torch.Tensor, got {type(z).__name__}")
    if z.dim() != 2:
        raise InputError(f"{name}: {z.dim()}-D tensor of shape {tuple(z.shape)}; expected (N, d)")
    if not z.is_floating_point():
        raise InputError(f"{name}: dtype {z.dtype}; expected a floating-point tensor")
    if z.shape[0] < min_rows:
        raise InputError(f"{name}: {z.shape[0]} rows; expected at least {min_rows}")


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise :class:`InputError` unless two tensors have the same shape."""
    if a.shape != b.shape:
        raise InputError(
            f"{name_b}: shape {tuple(b.shape)} differs from {name_a} shape {tuple(a.shape)}"
        )


def check_same_dim(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise :class:`InputError` unless two (N, d) tensors share the feature size d."""
    if a.shape[1] != b.shape[1]:
        raise InputError(
            f"{name_b}: feature size {b.shape[1]} differs from {name_a} feature size {a.shape[1]}"
        )


def check_positive(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}: {value!r}; expected a finite number > 0")


def check_block_size(block_size: int | None) -> None:
    """Raise :class:`ConfigError` unless ``block_size`` is None or a positive int."""
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1
    ):
        raise ConfigError(f"block_size: {block_size!r}; expected None or an int >= 1")


def check_unit_interval(name: str, value: float) -> None:
    """Raise :class:`ConfigError` unless 0 <= value <= 1."""
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ConfigError(f"{name}: {value!r}; expected a number in [0, 1]")
