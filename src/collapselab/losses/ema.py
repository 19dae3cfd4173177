"""Momentum (exponential moving average) update of a target network.

References:
    [0] He et al., "Momentum Contrast for Unsupervised Visual Representation Learning",
        CVPR 2020, Eq. 2: ``theta_k <- m theta_k + (1 - m) theta_q``.
    [1] Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, Sec. 3.1 (``xi <- tau xi +
        (1 - tau) theta``) and Sec. 3.2 (``tau = 1 - (1 - tau_base)(cos(pi k / K) + 1) / 2``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from collapselab.errors import ConfigError
from collapselab.losses._validate import check_unit_interval

__all__ = ["ema_update", "cosine_momentum"]


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """In place, ``target_param <- momentum * target_param + (1 - momentum) * online_param``.

    Only parameters are averaged (as in MoCo [0] and BYOL [1]); buffers such as BatchNorm
    running statistics are left to the target's own forward passes. ``momentum=1`` leaves
    the target unchanged, ``momentum=0`` copies the online weights.

    Args:
        target: the momentum / teacher network (its parameters need no gradient).
        online: the network trained by gradient descent, with the same parameter layout.
        momentum: m in [0, 1] (MoCo 0.999, BYOL 0.996 -> 1 with :func:`cosine_momentum`).

    Raises:
        ConfigError: if ``momentum`` is outside [0, 1] or the parameter layouts differ.
    """
    check_unit_interval("momentum", momentum)
    t_params = dict(target.named_parameters())
    o_params = dict(online.named_parameters())
    if t_params.keys() != o_params.keys():
        missing = sorted(set(t_params) ^ set(o_params))[:3]
        raise ConfigError(f"ema_update: target and online parameters differ (e.g. {missing})")
    for name, t in t_params.items():
        o = o_params[name]
        if t.shape != o.shape:
            raise ConfigError(
                f"ema_update: parameter {name!r} has shape {tuple(t.shape)} in target "
                f"and {tuple(o.shape)} in online"
            )
        t.lerp_(o.detach().to(t.dtype), 1.0 - momentum)  # t + (1 - m)(o - t)


def cosine_momentum(step: int, total_steps: int, base: float = 0.996, final: float = 1.0) -> float:
    """BYOL's momentum schedule [1] Sec. 3.2: ``final - (final - base)(cos(pi k / K) + 1) / 2``.

    Args:
        step: current step k, 0 <= k <= total_steps.
        total_steps: K >= 1.
        base: momentum at k = 0.
        final: momentum at k = K.

    Returns:
        The momentum for this step.
    """
    if total_steps < 1 or not 0 <= step <= total_steps:
        raise ConfigError(f"cosine_momentum: step {step} outside [0, total_steps={total_steps}]")
    check_unit_interval("base", base)
    check_unit_interval("final", final)
    return final - (final - base) * (math.cos(math.pi * step / total_steps) + 1.0) / 2.0
