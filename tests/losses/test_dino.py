"""DINO: the cross-entropy over view pairs, centring, sharpening, temperature warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collapselab.errors import InputError
from collapselab.losses import DINOLoss, dino_batch_center, dino_loss, teacher_temperature


def _dino_loop(s: torch.Tensor, t: torch.Tensor, c: torch.Tensor, ts: float, tt: float) -> float:
    # Caron et al. Algorithm 1 / Eq. 3, written with scalar loops.
    v_t, n, k = t.shape
    total, terms = 0.0, 0
    for a in range(v_t):
        for b in range(s.shape[0]):
            if a == b:
                continue
            per_row = 0.0
            for i in range(n):
                tl = [(float(t[a, i, j]) - float(c[j])) / tt for j in range(k)]
                sl = [float(s[b, i, j]) / ts for j in range(k)]
                mt, ms = max(tl), max(sl)
                zt = sum(math.exp(x - mt) for x in tl)
                lse_s = ms + math.log(sum(math.exp(x - ms) for x in sl))
                per_row += -sum(math.exp(tl[j] - mt) / zt * (sl[j] - lse_s) for j in range(k))
            total += per_row / n
            terms += 1
    return total / terms


def test_dino_loss_matches_loop_and_stops_teacher_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(4, 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randn(2, 3, 5, dtype=torch.float64, generator=g, requires_grad=True)
    c = torch.randn(5, dtype=torch.float64, generator=g)
    loss = dino_loss(s, t, c, student_temp=0.1, teacher_temp=0.05)
    ref = _dino_loop(s.detach(), t.detach(), c, 0.1, 0.05)
    assert loss.item() == pytest.approx(ref, rel=1e-10)
    # a list of views gives the same value
    assert dino_loss(list(s), list(t), c, 0.1, 0.05).item() == pytest.approx(ref, rel=1e-10)
    loss.backward()
    assert s.grad is not None and t.grad is None


def test_centre_and_sharpening_shape_the_teacher() -> None:
    # A constant teacher logit offset is removed exactly by a centre equal to it.
    s = torch.randn(2, 4, 6, dtype=torch.float64)
    t = torch.randn(2, 4, 6, dtype=torch.float64)
    offset = torch.linspace(0, 3, 6, dtype=torch.float64)
    a = dino_loss(s, t + offset, offset)
    b = dino_loss(s, t, torch.zeros(6, dtype=torch.float64))
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    # Uniform student, any teacher: loss = log K (cross-entropy against a uniform student).
    uniform = torch.zeros(2, 4, 6, dtype=torch.float64)
    assert dino_loss(uniform, t, offset).item() == pytest.approx(math.log(6), rel=1e-12)


def test_teacher_temperature_warmup_matches_linspace() -> None:
    sched = np.concatenate([np.linspace(0.04, 0.07, 30), np.full(70, 0.07)])
    got = [teacher_temperature(e, 0.04, 0.07, 30) for e in range(100)]
    np.testing.assert_allclose(got, sched, rtol=1e-12)
    assert teacher_temperature(0, 0.04, 0.07, 1) == 0.04
    assert teacher_temperature(5, 0.04, 0.07, 0) == 0.07
    loss = DINOLoss(5, teacher_temp=0.07, warmup_teacher_temp=0.04, warmup_teacher_temp_epochs=3)
    assert [loss.teacher_temp_at(e) for e in range(4)] == pytest.approx([0.04, 0.055, 0.07, 0.07])


def test_centre_ema_update() -> None:
    g = torch.Generator().manual_seed(1)
    loss_fn = DINOLoss(out_dim=4, center_momentum=0.9)
    t1 = torch.randn(2, 3, 4, generator=g)
    t2 = torch.randn(2, 5, 4, generator=g)  # a different (partial) batch size
    s = torch.randn(2, 3, 4, generator=g)
    first = loss_fn(s, t1)
    assert first.item() == pytest.approx(dino_loss(s, t1, torch.zeros(4)).item())  # scored first
    torch.testing.assert_close(loss_fn.center, 0.1 * t1.reshape(-1, 4).mean(0))
    loss_fn.update_center(t2)
    expected = 0.9 * 0.1 * t1.reshape(-1, 4).mean(0) + 0.1 * t2.reshape(-1, 4).mean(0)
    torch.testing.assert_close(loss_fn.center, expected)
    torch.testing.assert_close(dino_batch_center(list(t2)), t2.reshape(-1, 4).mean(0))


def test_dino_input_errors() -> None:
    with pytest.raises(InputError, match="1 view"):
        dino_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.zeros(3))
    with pytest.raises(InputError, match="incompatible"):
        dino_loss(torch.zeros(2, 2, 3), torch.zeros(3, 2, 3), torch.zeros(3))
    with pytest.raises(InputError, match="expected \\(views, N, K\\)"):
        dino_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))
