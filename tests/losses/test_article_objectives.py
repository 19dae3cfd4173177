"""The article's collapse-prone objectives and its demo InfoNCE, checked against its code."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from collapselab.errors import InputError
from collapselab.losses import (
    PairwiseAttractionLoss,
    VarianceLoss,
    article_info_nce,
    pairwise_attraction_loss,
    variance_loss,
)


def _attraction_loop(z: torch.Tensor) -> float:
    # The article's L = sum_{i,j} ||z_i - z_j||^2, literally.
    n = z.shape[0]
    return sum(float(((z[i] - z[j]) ** 2).sum()) for i in range(n) for j in range(n))


def test_attraction_equals_double_loop() -> None:
    z = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert pairwise_attraction_loss(z).item() == pytest.approx(_attraction_loop(z), rel=1e-12)
    assert PairwiseAttractionLoss()(z).item() == pytest.approx(_attraction_loop(z), rel=1e-12)


def test_attraction_gradient_and_collapse_minimum() -> None:
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(pairwise_attraction_loss(z), z)
    expected = 4 * z.shape[0] * (z - z.mean(0))  # d/dz_i sum_ij ||z_i - z_j||^2
    torch.testing.assert_close(g, expected.detach(), rtol=1e-12, atol=1e-12)
    collapsed = torch.full((6, 4), 3.0, dtype=torch.float64, requires_grad=True)
    loss = pairwise_attraction_loss(collapsed)
    (g0,) = torch.autograd.grad(loss, collapsed)
    assert loss.item() == 0.0 and g0.abs().max().item() == 0.0


def test_variance_loss_is_the_article_collapse_loss() -> None:
    def collapse_loss(z: torch.Tensor) -> torch.Tensor:  # verbatim from the article's demo
        mean = z.mean(dim=0)
        return ((z - mean) ** 2).mean()

    z = torch.randn(512, 128, generator=torch.Generator().manual_seed(1))
    assert torch.equal(variance_loss(z), collapse_loss(z))
    assert torch.equal(VarianceLoss()(z), collapse_loss(z))
    # Var(Z)/d with the article's Var(Z) = 1/N sum ||z_i - mu||^2, computed in float64.
    z64 = z.double()
    var = ((z64 - z64.mean(0)) ** 2).sum(1).mean() / z.shape[1]
    assert variance_loss(z).item() == pytest.approx(var.item(), rel=1e-5)


def test_variance_gradient_vanishes_at_collapse() -> None:
    z = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(variance_loss(z), z)
    torch.testing.assert_close(g, (2 * (z - z.mean(0)) / z.numel()).detach())
    c = torch.ones(8, 3, dtype=torch.float64, requires_grad=True)
    (g0,) = torch.autograd.grad(variance_loss(c), c)
    assert g0.abs().max().item() == 0.0


def test_article_info_nce_matches_the_demo() -> None:
    def info_nce(z: torch.Tensor) -> torch.Tensor:  # verbatim from the article's demo
        sim = z @ z.T
        labels = torch.arange(z.size(0))
        return nn.CrossEntropyLoss()(sim, labels)

    model = nn.Linear(32, 128)
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(2))
    z = model(x)
    assert torch.equal(article_info_nce(z), info_nce(z))
    # Independent float64 loop: -log softmax(z_i . z_k)_{k=i}, mean over i.
    z64 = torch.randn(7, 3, dtype=torch.float64)
    rows = []
    for i in range(7):
        logits = [float(z64[i] @ z64[k]) for k in range(7)]
        m = max(logits)
        lse = m + math.log(sum(math.exp(v - m) for v in logits))
        rows.append(lse - logits[i])
    assert article_info_nce(z64).item() == pytest.approx(sum(rows) / 7, rel=1e-12)


@pytest.mark.parametrize("fn", [pairwise_attraction_loss, variance_loss, article_info_nce])
def test_bad_shapes_are_input_errors(fn: object) -> None:
    with pytest.raises(InputError, match=r"z: 1-D tensor"):
        fn(torch.zeros(5))  # type: ignore[operator]
