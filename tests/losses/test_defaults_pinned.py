"""Loss defaults pinned by hand-computed values (issue 28): Barlow Twins' lambda = 0.0051
and NT-Xent's tau = 0.1 (the mutants tried are listed in each test's docstring)."""

from __future__ import annotations

import math

import pytest
import torch

from collapselab.losses import (
    BarlowTwinsLoss,
    NTXentLoss,
    barlow_twins_components,
    barlow_twins_loss,
    nt_xent,
)
from collapselab.losses.nt_xent import TEMPERATURE
from collapselab.methods import build_method
from collapselab.methods.redundancy import BarlowConfig
from collapselab.models import build_encoder

F64 = torch.float64

# ------------------------------------------------------------------------- Barlow Twins
# Columns of the 4 x 4 Hadamard matrix without its all-ones column: each has mean 0 and
# biased variance 1, and any two are orthogonal (dot 0; with itself 4). Standardised with
# BatchNorm's eps they are h / s, s^2 = 1 + 1e-5, so C_ij = h_i . h'_j / (4 s^2).
H1 = [1.0, 1.0, -1.0, -1.0]
H2 = [1.0, -1.0, 1.0, -1.0]
H3 = [1.0, -1.0, -1.0, 1.0]


def _cols(*cols: list[float]) -> torch.Tensor:
    return torch.tensor(cols, dtype=F64).T  # (4, len(cols))


Z1 = _cols(H1, H2, H3)
Z2 = _cols(H1, H3, H1)  # C = [[1, 0, 1], [0, 0, 0], [0, 1, 0]] / s^2
S2 = 1.0 + 1e-5
INVARIANCE = (1 / S2 - 1) ** 2 + 1.0 + 1.0  # (1 - C_11)^2 + (1 - C_22)^2 + (1 - C_33)^2
REDUNDANCY = 2.0 / S2**2  # C_13^2 + C_32^2


def test_barlow_twins_terms_and_default_lambda_by_hand() -> None:
    """Mutants: losses/barlow_twins.py barlow_twins_loss ``lambda_: float = 0.0051`` ->
    ``0.005``; BarlowTwinsLoss.__init__ ``lambda_: float = 0.0051`` -> ``0.005``;
    ``redundancy = off_diagonal(c).pow(2).sum()`` -> ``... / 2``; ``eps: float = 1e-5`` ->
    ``0`` in barlow_twins_components."""
    inv, red = barlow_twins_components(Z1, Z2)
    assert float(inv) == pytest.approx(INVARIANCE, rel=1e-14)
    assert float(red) == pytest.approx(REDUNDANCY, rel=1e-14)
    expected = INVARIANCE + 0.0051 * REDUNDANCY  # 2.0101998...
    assert float(barlow_twins_loss(Z1, Z2)) == pytest.approx(expected, rel=1e-14)
    module = BarlowTwinsLoss()
    assert module.lambda_ == 0.0051
    assert float(module(Z1, Z2)) == pytest.approx(expected, rel=1e-14)
    # only the redundancy term: identical perfectly correlated columns give C = J / s^2
    z = _cols(H1, H1)
    only = 2 * (1 / S2 - 1) ** 2 + 0.0051 * 2 / S2**2
    assert float(barlow_twins_loss(z, z)) == pytest.approx(only, rel=1e-12)


def test_barlow_method_uses_the_paper_lambda() -> None:
    """Mutant: methods/redundancy.py BarlowConfig ``lambda_: float = 0.0051`` -> ``0.005``
    (the method's step loss is invariance + 0.0051 redundancy; with a 512-wide projector
    the redundancy is in the thousands, so 1e-4 in lambda moves the loss by far more than
    float32 rounding)."""
    assert BarlowConfig().lambda_ == 0.0051
    torch.manual_seed(0)
    method = build_method("barlow", build_encoder("cnn", (1, 8, 8)))
    g = torch.Generator().manual_seed(0)
    out = method(torch.rand(16, 1, 8, 8, generator=g), torch.rand(16, 1, 8, 8, generator=g))
    t = out.terms
    assert t["redundancy"] > 100
    assert t["loss"] == pytest.approx(t["invariance"] + 0.0051 * t["redundancy"], rel=1e-6)
    assert t["loss"] != pytest.approx(t["invariance"] + 0.005 * t["redundancy"], rel=1e-6)


# ---------------------------------------------------------------------------- NT-Xent
# Rows a = e1, b = e2 (view 1) and c = (1, 1)/sqrt2, d = (1, -1)/sqrt2 (view 2, normalised
# by the loss); positives a-c and b-d. Cosines: a.b = c.d = 0, a.c = a.d = b.c = 1/sqrt2,
# b.d = -1/sqrt2. With k = 1 / (sqrt2 tau):
#   l(a) = l(c) = -k + log(1 + 2 e^k),   l(b) = l(d) = k + log(1 + e^k + e^-k),
#   L = (log(1 + 2 e^k) + log(1 + e^k + e^-k)) / 2.
V1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64)
V2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=F64)


def _by_hand(tau: float) -> float:
    k = 1.0 / (math.sqrt(2.0) * tau)
    return (math.log(1 + 2 * math.exp(k)) + math.log(1 + math.exp(k) + math.exp(-k))) / 2


def test_nt_xent_default_tau_by_hand() -> None:
    """Mutants: losses/nt_xent.py ``TEMPERATURE = 0.1`` -> ``0.2``; nt_xent
    ``temperature: float = TEMPERATURE`` -> ``0.5``; NTXentLoss ``default_temperature =
    TEMPERATURE`` -> ``0.5``; ``pos = ... * scale`` -> ``pos = ...`` (unscaled positive)."""
    assert TEMPERATURE == 0.1
    expected = _by_hand(0.1)  # 7.0704...
    assert float(nt_xent(V1, V2)) == pytest.approx(expected, rel=1e-12)
    assert NTXentLoss().temperature == 0.1
    assert float(NTXentLoss()(V1, V2)) == pytest.approx(expected, rel=1e-12)
    assert float(nt_xent(V1, V2, temperature=0.5)) == pytest.approx(_by_hand(0.5), rel=1e-12)
    # positives identical, negatives orthogonal: L = log(1 + 2 e^(-1/tau)) at tau = 0.1
    assert float(nt_xent(V1, V1)) == pytest.approx(math.log1p(2 * math.exp(-10.0)), rel=1e-9)
