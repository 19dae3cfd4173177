"""Exponential-moving-average (EMA) teacher shared by MoCo, BYOL and DINO.

The teacher's parameters follow ``xi <- m xi + (1 - m) theta`` after every optimizer step
(MoCo: He et al. 2020, Eq. 2; BYOL: Grill et al. 2020, Sec. 3.1; DINO: Caron et al. 2021,
Sec. 3.1); buffers (batch-norm running statistics) are copied. BYOL and DINO raise ``m``
from its base value to 1 with a cosine schedule (BYOL Sec. 3.2).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


def cosine_momentum(base: float, progress: float) -> float:
    """BYOL's schedule ``m = 1 - (1 - base) (cos(pi p) + 1) / 2`` for progress ``p`` in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * p) + 1.0) / 2.0


class EMATeacher(nn.Module):
    """A frozen copy of a student module, updated by EMA.

    Args:
        student: the module to copy (its current weights are the teacher's start).

    The copy never receives gradients (``requires_grad=False``); call :meth:`update` after
    each optimizer step. ``forward`` runs the teacher (callers wrap it in ``no_grad``).
    """

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.module = copy.deepcopy(student)
        for p in self.module.parameters():
            p.requires_grad_(False)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(*args)
        return out

    @torch.no_grad()
    def update(self, student: nn.Module, momentum: float) -> None:
        """``xi <- momentum * xi + (1 - momentum) * theta``; buffers are copied.

        Args:
            student: module with the same structure as the teacher.
            momentum: ``m`` in [0, 1]; 1 freezes the teacher, 0 copies the student.
        """
        t_params = list(self.module.parameters())
        s_params = list(student.parameters())
        if len(t_params) != len(s_params):
            raise ValueError("EMATeacher.update: student and teacher structures differ")
        torch._foreach_lerp_(t_params, [p.detach() for p in s_params], 1.0 - momentum)
        for tb, sb in zip(self.module.buffers(), student.buffers(), strict=True):
            tb.copy_(sb)
