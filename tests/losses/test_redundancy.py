"""Barlow Twins and VICReg: loops from the papers, exact values on known inputs."""

from __future__ import annotations

import math

import pytest
import torch

from collapselab.errors import InputError
from collapselab.losses import (
    BarlowTwinsLoss,
    VICRegLoss,
    barlow_twins_components,
    barlow_twins_loss,
    vicreg_components,
    vicreg_loss,
)

F64 = torch.float64


def _rand(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _whitened(n: int, d: int, seed: int, ddof: int) -> torch.Tensor:
    # Columns with mean 0 and covariance exactly I (divisor n - ddof).
    x = _rand(n, d, seed)
    q, _ = torch.linalg.qr(x - x.mean(0))
    return q * math.sqrt(n - ddof)


def _col_stats(z: torch.Tensor, ddof: int) -> tuple[list[float], list[float]]:
    n, d = z.shape
    means = [sum(float(z[b, j]) for b in range(n)) / n for j in range(d)]
    var = [sum((float(z[b, j]) - means[j]) ** 2 for b in range(n)) / (n - ddof) for j in range(d)]
    return means, var


def _barlow_loop(z1: torch.Tensor, z2: torch.Tensor, eps: float) -> tuple[float, float]:
    # Zbontar et al. Eq. 1-2 on batch-normalised columns (biased variance + eps).
    n, d = z1.shape
    (m1, v1), (m2, v2) = _col_stats(z1, 0), _col_stats(z2, 0)
    a = [[(float(z1[b, i]) - m1[i]) / math.sqrt(v1[i] + eps) for i in range(d)] for b in range(n)]
    c = [[(float(z2[b, j]) - m2[j]) / math.sqrt(v2[j] + eps) for j in range(d)] for b in range(n)]
    cc = [[sum(a[b][i] * c[b][j] for b in range(n)) / n for j in range(d)] for i in range(d)]
    on = sum((1 - cc[i][i]) ** 2 for i in range(d))
    off = sum(cc[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on, off


def _vicreg_loop(z1: torch.Tensor, z2: torch.Tensor, gamma: float, eps: float) -> tuple:  # type: ignore[type-arg]
    # Bardes et al. Eq. 1-6 (invariance as the official mse_loss: mean over n*d entries).
    n, d = z1.shape
    inv = sum((float(z1[b, j]) - float(z2[b, j])) ** 2 for b in range(n) for j in range(d))
    inv /= n * d
    var_terms, cov_terms = [], []
    for z in (z1, z2):
        means, _ = _col_stats(z, 1)
        cov = [
            [
                sum((float(z[b, i]) - means[i]) * (float(z[b, j]) - means[j]) for b in range(n))
                / (n - 1)
                for j in range(d)
            ]
            for i in range(d)
        ]
        var_terms.append(sum(max(0.0, gamma - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d)
        cov_terms.append(sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d)
    return inv, sum(var_terms) / 2, sum(cov_terms)


def test_barlow_matches_loop() -> None:
    z1, z2 = _rand(7, 4, 0) * 3 + 1, _rand(7, 4, 1)
    on, off = _barlow_loop(z1, z2, 1e-5)
    terms = barlow_twins_components(z1, z2)
    assert terms.invariance.item() == pytest.approx(on, rel=1e-10)
    assert terms.redundancy.item() == pytest.approx(off, rel=1e-10)
    loss = barlow_twins_loss(z1, z2, lambda_=0.01)
    assert loss.item() == pytest.approx(on + 0.01 * off, rel=1e-10)
    assert BarlowTwinsLoss(0.01).components(z1, z2).invariance.item() == pytest.approx(on)
    assert BarlowTwinsLoss(0.01)(z1, z2).item() == pytest.approx(on + 0.01 * off, rel=1e-10)


def test_barlow_identical_whitened_views() -> None:
    z = _whitened(32, 6, seed=2, ddof=0)
    terms = barlow_twins_components(z, z)
    # C = I / (1 + eps) exactly: diagonal term (1 - 1/(1+eps))^2 d ~ 6e-10, off-diagonal 0.
    assert terms.invariance.item() == pytest.approx(6 * (1e-5 / (1 + 1e-5)) ** 2, rel=1e-6)
    assert terms.redundancy.item() < 1e-25
    other = barlow_twins_components(z, _rand(32, 6, 3))
    assert other.invariance.item() > 1.0


def test_barlow_invariant_to_column_affine_maps() -> None:
    z1, z2 = _rand(16, 5, 4), _rand(16, 5, 5)
    a = barlow_twins_loss(z1, z2, eps=1e-12)
    b = barlow_twins_loss(2.0 * z1 + 4.0, 0.5 * z2 - 1.0, eps=1e-12)
    assert a.item() == pytest.approx(b.item(), rel=1e-9)


def test_vicreg_matches_loop() -> None:
    z1, z2 = _rand(6, 4, 6) * 0.5, _rand(6, 4, 7) * 2
    inv, var, cov = _vicreg_loop(z1, z2, 1.0, 1e-4)
    t = vicreg_components(z1, z2)
    assert (t.invariance.item(), t.variance.item(), t.covariance.item()) == pytest.approx(
        (inv, var, cov), rel=1e-10
    )
    assert vicreg_loss(z1, z2).item() == pytest.approx(25 * inv + 25 * var + cov, rel=1e-10)
    module = VICRegLoss(invariance_weight=1.0, variance_weight=2.0, covariance_weight=3.0)
    assert module(z1, z2).item() == pytest.approx(inv + 2 * var + 3 * cov, rel=1e-10)
    assert module.components(z1, z2).covariance.item() == pytest.approx(cov, rel=1e-10)


def test_vicreg_known_values() -> None:
    # Fully collapsed: no invariance or covariance cost, variance term gamma - sqrt(eps).
    c = torch.ones(10, 8, dtype=F64)
    t = vicreg_components(c, c)
    assert (t.invariance.item(), t.covariance.item()) == (0.0, 0.0)
    assert t.variance.item() == pytest.approx(1.0 - math.sqrt(1e-4), rel=1e-12)
    # Unit covariance: no variance or covariance cost; a shift by 1 costs invariance 1.
    w = _whitened(20, 5, seed=8, ddof=1)
    t = vicreg_components(w, w + 1.0)
    assert t.invariance.item() == pytest.approx(1.0, rel=1e-12)
    assert t.variance.item() == 0.0
    assert t.covariance.item() < 1e-25
    assert vicreg_loss(w, w + 1.0).item() == pytest.approx(25.0, rel=1e-12)
    # Two identical unit-variance columns: C = [[1, 1], [1, 1]], c(Z) = 2 / 2 per branch.
    x = _whitened(20, 1, seed=9, ddof=1)
    dup = torch.cat([x, x], dim=1)
    assert vicreg_components(dup, dup).covariance.item() == pytest.approx(2.0, rel=1e-12)


def test_redundancy_losses_need_two_rows() -> None:
    with pytest.raises(InputError, match="vicreg: batch of 1 rows"):
        vicreg_loss(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(InputError, match="barlow_twins: batch of 1 rows"):
        barlow_twins_loss(torch.zeros(1, 3), torch.zeros(1, 3))
