"""BYOL and SimSiam: paper equations, symmetry in the views, stop-gradients."""

from __future__ import annotations

import math

import pytest
import torch

from collapselab.errors import InputError
from collapselab.losses import (
    BYOLLoss,
    SimSiamLoss,
    byol_loss,
    negative_cosine,
    normalized_mse,
    simsiam_loss,
)


def _views(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True) for _ in "abcd"]


def _cos(u: torch.Tensor, v: torch.Tensor) -> float:
    u, v = u.detach(), v.detach()
    return float(u @ v) / math.sqrt(float(u @ u) * float(v @ v))


def test_byol_matches_equation() -> None:
    p1, p2, t1, t2 = _views(0)
    # Grill et al. Eq. 2: || q/||q|| - z'/||z'|| ||^2, summed over the two directions.
    ref = 0.0
    for p, t in ((p1, t2), (p2, t1)):
        per = []
        for i in range(5):
            pi, ti = p[i].detach(), t[i].detach()
            qn, zn = pi / pi.norm(), ti / ti.norm()
            per.append(float(((qn - zn) ** 2).sum()))
        ref += sum(per) / 5
    assert byol_loss(p1, p2, t1, t2).item() == pytest.approx(ref, rel=1e-12)
    assert BYOLLoss()(p1, p2, t1, t2).item() == pytest.approx(ref, rel=1e-12)
    aligned = normalized_mse(p1, 3.0 * p1)
    assert aligned.item() == pytest.approx(0.0, abs=1e-12)
    assert normalized_mse(p1, -p1).item() == pytest.approx(4.0, abs=1e-12)


def test_simsiam_matches_equation() -> None:
    p1, p2, z1, z2 = _views(1)
    ref = sum(-0.5 * _cos(p1[i], z2[i]) - 0.5 * _cos(p2[i], z1[i]) for i in range(5)) / 5
    assert simsiam_loss(p1, p2, z1, z2).item() == pytest.approx(ref, rel=1e-12)
    assert SimSiamLoss()(p1, p2, z1, z2).item() == pytest.approx(ref, rel=1e-12)
    assert negative_cosine(p1, 2 * p1).item() == pytest.approx(-1.0, abs=1e-12)


@pytest.mark.parametrize("fn", [byol_loss, simsiam_loss])
def test_symmetric_in_views_and_no_gradient_to_targets(fn: object) -> None:
    p1, p2, t1, t2 = _views(2)
    a = fn(p1, p2, t1, t2)  # type: ignore[operator]
    b = fn(p2, p1, t2, t1)  # type: ignore[operator]
    assert a.item() == pytest.approx(b.item(), rel=1e-12)
    a.backward()
    assert p1.grad is not None and p2.grad is not None
    assert t1.grad is None and t2.grad is None


def test_shape_errors() -> None:
    with pytest.raises(InputError, match="target: shape"):
        normalized_mse(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(InputError, match="z: 3-D"):
        negative_cosine(torch.zeros(3, 2), torch.zeros(1, 3, 2))
