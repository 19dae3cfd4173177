"""The EMA teacher shared by MoCo (key encoder), BYOL (target network) and DINO (teacher).

A frozen deep copy of the student whose parameters follow
:func:`collapselab.losses.ema_update` after every optimizer step, with the momentum from
:func:`collapselab.losses.cosine_momentum` (BYOL Sec. 3.2; DINO Sec. 3.1) or constant
(MoCo Eq. 2). It runs in the student's mode (train: batch statistics), never receives
gradients, and lives in the method's ``state_dict`` (so checkpoints carry it).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from collapselab.losses import cosine_momentum, ema_update


class EMATeacher(nn.Module):
    """A copy of ``student`` updated by exponential moving average.

    Args:
        student: module to copy (the teacher starts equal to it).
        base_momentum: momentum at step 0.
        cosine: raise the momentum to 1 with BYOL's cosine schedule (else constant).
    """

    def __init__(self, student: nn.Module, base_momentum: float, cosine: bool = True) -> None:
        super().__init__()
        self.module = copy.deepcopy(student)
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.base_momentum = base_momentum
        self.cosine = cosine

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Teacher output for ``x`` (no graph is recorded)."""
        out: torch.Tensor = self.module(x)
        return out

    def momentum(self, step: int, total_steps: int) -> float:
        """Momentum after ``step`` of ``total_steps`` completed steps."""
        if not self.cosine:
            return self.base_momentum
        return cosine_momentum(min(step, total_steps), max(total_steps, 1), self.base_momentum)

    def update(self, student: nn.Module, step: int, total_steps: int) -> None:
        """EMA step towards ``student`` (same structure as the teacher)."""
        ema_update(self.module, student, self.momentum(step, total_steps))
