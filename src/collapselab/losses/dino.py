"""DINO: cross-entropy between a centred, sharpened teacher and the student, over views.

Reference: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers",
ICCV 2021, Eq. 1-4 and Algorithm 1; defaults from the official ``main_dino.py``:

    P_t(x) = softmax((g_t(x) - c) / tau_t),   P_s(x) = softmax(g_s(x) / tau_s),
    L = mean over pairs (teacher view t, student view s != t) of  -sum_k P_t,k log P_s,k,
    c <- m c + (1 - m) mean_batch g_t(x)                                   (Eq. 4)

Centring (subtracting c) stops one dimension from dominating; sharpening (tau_t < tau_s)
stops the uniform output; together they avoid collapse. The teacher temperature is warmed
up linearly from ``warmup_teacher_temp`` to ``teacher_temp`` over the first epochs.
No gradient reaches the teacher.

Departure from the reference code, stated: the centre is all-reduced over ranks only when
``gather_distributed=True`` (the official code always all-reduces and fails without a
process group); it divides by the true global row count, so uneven last batches are exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from collapselab import dist
from collapselab.errors import ConfigError, InputError
from collapselab.losses._validate import check_positive, check_unit_interval

__all__ = ["teacher_temperature", "dino_loss", "dino_batch_center", "DINOLoss"]


def teacher_temperature(
    epoch: int, warmup_teacher_temp: float, teacher_temp: float, warmup_epochs: int
) -> float:
    """DINO's teacher-temperature schedule: linear warm-up, then constant.

    Equal to ``np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)[epoch]`` for
    ``epoch < warmup_epochs`` and ``teacher_temp`` afterwards, as in ``main_dino.py``.

    Args:
        epoch: current epoch (>= 0).
        warmup_teacher_temp: temperature at epoch 0 (DINO: 0.04).
        teacher_temp: temperature after warm-up (DINO: 0.04-0.07).
        warmup_epochs: warm-up length (DINO: 30 when teacher_temp > 0.04; 0 disables).

    Returns:
        tau_t for this epoch.
    """
    if epoch < 0 or warmup_epochs < 0:
        raise ConfigError(f"teacher_temperature: epoch={epoch}, warmup_epochs={warmup_epochs}")
    if epoch >= warmup_epochs:
        return teacher_temp
    if warmup_epochs == 1:
        return warmup_teacher_temp
    frac = epoch / (warmup_epochs - 1)
    return warmup_teacher_temp + (teacher_temp - warmup_teacher_temp) * frac


def _as_views(x: torch.Tensor | Sequence[torch.Tensor], name: str) -> torch.Tensor:
    """Stack a list of (N, K) views into (V, N, K), or check a (V, N, K) tensor."""
    out = x if isinstance(x, torch.Tensor) else torch.stack(list(x), dim=0)
    if out.dim() != 3:
        raise InputError(f"{name}: shape {tuple(out.shape)}; expected (views, N, K)")
    return out


def dino_loss(
    student_logits: torch.Tensor | Sequence[torch.Tensor],
    teacher_logits: torch.Tensor | Sequence[torch.Tensor],
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """DINO cross-entropy (Eq. 3), averaged over all (teacher view, other student view) pairs.

    Teacher view t is the same crop as student view t (the global crops come first among the
    student views), so the pair (t, t) is skipped.

    Args:
        student_logits: (V_s, N, K) or a list of V_s tensors (N, K).
        teacher_logits: (V_t, N, K) or a list, V_t <= V_s (usually the 2 global crops);
            detached (stop-gradient).
        center: the teacher centre c, (K,).
        student_temp: tau_s (0.1).
        teacher_temp: tau_t (0.04-0.07, see :func:`teacher_temperature`).

    Returns:
        Scalar loss.
    """
    s = _as_views(student_logits, "student_logits")
    t = _as_views(teacher_logits, "teacher_logits").detach()
    check_positive("student_temp", student_temp)
    check_positive("teacher_temp", teacher_temp)
    if t.shape[1:] != s.shape[1:] or t.shape[0] > s.shape[0]:
        raise InputError(
            f"teacher_logits: shape {tuple(t.shape)} incompatible with student_logits "
            f"{tuple(s.shape)}; expected (V_t <= V_s, N, K)"
        )
    v_t, v_s = t.shape[0], s.shape[0]
    if v_s < 2:
        raise InputError("student_logits: 1 view; DINO needs at least 2 (pairs of other views)")
    p_t = F.softmax((t - center) / teacher_temp, dim=-1)  # (V_t, N, K)
    log_p_s = F.log_softmax(s / student_temp, dim=-1)  # (V_s, N, K)
    # ce[a, b] = mean_n -sum_k P_t[a, n, k] log P_s[b, n, k]      (V_t, V_s)
    ce = -torch.einsum("ank,bnk->ab", p_t, log_p_s) / s.shape[1]
    keep = ~torch.eye(v_t, v_s, dtype=torch.bool, device=ce.device)  # drop same-view pairs
    return ce[keep].mean()


@torch.no_grad()
def dino_batch_center(
    teacher_logits: torch.Tensor | Sequence[torch.Tensor], gather_distributed: bool = False
) -> torch.Tensor:
    """Mean teacher output over all views and rows (and ranks if ``gather_distributed``), (K,)."""
    t = _as_views(teacher_logits, "teacher_logits")
    flat = t.reshape(-1, t.shape[-1])  # (V_t N, K)
    total = flat.sum(dim=0, dtype=torch.float64)  # (K,) accumulated in float64
    count = torch.tensor(float(flat.shape[0]), dtype=torch.float64, device=flat.device)
    if gather_distributed:
        total = dist.all_reduce_sum(total)
        count = dist.all_reduce_sum(count)
    return (total / count).to(t.dtype)


class DINOLoss(nn.Module):
    """DINO loss with its EMA centre buffer and teacher-temperature warm-up.

    ``forward(student, teacher, epoch)`` returns the loss for ``tau_t(epoch)`` and then
    updates the centre with this batch's teacher outputs (Algorithm 1 order).

    Args:
        out_dim: K, the head's output dimension.
        student_temp: tau_s (0.1).
        teacher_temp: tau_t after warm-up (0.04; up to 0.07 with warm-up).
        warmup_teacher_temp: tau_t at epoch 0 (0.04).
        warmup_teacher_temp_epochs: warm-up length (0 = none; DINO uses 30 with 0.07).
        center_momentum: m of Eq. 4 (0.9).
        gather_distributed: centre over the teacher outputs of all ranks. The loss is
            per-sample, so DDP's averaging already gives the whole-batch gradient.
    """

    center: torch.Tensor

    def __init__(
        self,
        out_dim: int,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        warmup_teacher_temp: float = 0.04,
        warmup_teacher_temp_epochs: int = 0,
        center_momentum: float = 0.9,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        for name, v in [
            ("student_temp", student_temp),
            ("teacher_temp", teacher_temp),
            ("warmup_teacher_temp", warmup_teacher_temp),
        ]:
            check_positive(name, v)
        check_unit_interval("center_momentum", center_momentum)
        if out_dim < 1:
            raise ConfigError(f"out_dim: {out_dim}; expected >= 1")
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.warmup_teacher_temp = warmup_teacher_temp
        self.warmup_teacher_temp_epochs = warmup_teacher_temp_epochs
        self.center_momentum = center_momentum
        self.gather_distributed = gather_distributed
        self.register_buffer("center", torch.zeros(out_dim))  # (K,) EMA of teacher outputs

    def teacher_temp_at(self, epoch: int) -> float:
        """tau_t for ``epoch`` (see :func:`teacher_temperature`)."""
        return teacher_temperature(
            epoch, self.warmup_teacher_temp, self.teacher_temp, self.warmup_teacher_temp_epochs
        )

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor | Sequence[torch.Tensor]) -> None:
        """``c <- m c + (1 - m) mean(teacher outputs)`` (Eq. 4)."""
        batch_center = dino_batch_center(teacher_logits, self.gather_distributed)
        self.center.mul_(self.center_momentum).add_(
            batch_center.to(self.center.dtype), alpha=1.0 - self.center_momentum
        )

    def forward(
        self,
        student_logits: torch.Tensor | Sequence[torch.Tensor],
        teacher_logits: torch.Tensor | Sequence[torch.Tensor],
        epoch: int = 0,
        update_center: bool = True,
    ) -> torch.Tensor:
        loss = dino_loss(
            student_logits,
            teacher_logits,
            self.center,
            self.student_temp,
            self.teacher_temp_at(epoch),
        )
        if update_center:
            self.update_center(teacher_logits)
        return loss
