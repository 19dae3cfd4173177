"""Numerical tools of the theory checks: gradients, Hessians, spectra, perturbation growth.

Everything runs in float64 on small ``(N, d)`` problems. The Hessian is the central
finite difference of the autograd gradient (step ``h = 1e-5``, truncation error
``O(h^2 |f'''|) ~ 1e-10`` and rounding ``O(eps / h) ~ 1e-11``), so it works for every
library loss, including those whose custom backward is ``once_differentiable`` (the
contrastive log-sum-exp): a regression in a loss's backward shows up in the Hessian.
Tests cross-check it against ``torch.autograd.functional.hessian`` of reference formulas.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from collapselab.metrics import compute_metrics

LossFn = Callable[[torch.Tensor], torch.Tensor]

#: Finite-difference step of :func:`hessian` (see the module docstring for the error budget).
FD_STEP = 1e-5


def collapsed(n: int, d: int, norm: float, generator: torch.Generator) -> torch.Tensor:
    """An (n, d) float64 matrix whose rows all equal one random vector ``c`` with ``|c| = norm``."""
    c = torch.randn(d, generator=generator, dtype=torch.float64)
    c = c / c.norm() * norm
    return c.repeat(n, 1)


def gradient(loss: LossFn, z: torch.Tensor) -> torch.Tensor:
    """Autograd gradient of the scalar ``loss(z)`` with respect to ``z`` (same shape as z)."""
    y = z.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss(y), y)
    return g


def hessian(loss: LossFn, z: torch.Tensor, h: float = FD_STEP) -> torch.Tensor:
    """Hessian of ``loss`` at ``z`` (flattened row-major), by central differences of the
    autograd gradient, symmetrised. Shape (N*d, N*d), float64."""
    x = z.detach().to(torch.float64).reshape(-1)
    m = x.numel()
    out = torch.empty(m, m, dtype=torch.float64)
    for j in range(m):
        e = torch.zeros(m, dtype=torch.float64)
        e[j] = h
        plus = gradient(loss, (x + e).reshape(z.shape)).reshape(-1)
        minus = gradient(loss, (x - e).reshape(z.shape)).reshape(-1)
        out[:, j] = (plus - minus) / (2 * h)
    return 0.5 * (out + out.T)


@dataclass(frozen=True)
class CurvatureCounts:
    """Signs of a Hessian's eigenvalues, zero meaning ``|lam| <= rtol * max |lam|``."""

    negative: int
    zero: int
    positive: int
    min: float
    max: float

    @property
    def kind(self) -> str:
        """``minimum`` (PSD), ``maximum`` (NSD) or ``saddle`` (both signs), all modulo flat
        directions; ``flat`` if every eigenvalue is zero."""
        if self.negative and self.positive:
            return "saddle"
        if self.negative:
            return "maximum"
        if self.positive:
            return "minimum"
        return "flat"


def curvature(eigenvalues: torch.Tensor, rtol: float = 1e-6) -> CurvatureCounts:
    """Count negative / zero / positive eigenvalues (tolerance relative to the largest |lam|;
    1e-6 sits 4 orders above the finite-difference error of :func:`hessian`)."""
    scale = float(eigenvalues.abs().max())
    tol = rtol * scale if scale > 0 else 0.0
    return CurvatureCounts(
        negative=int((eigenvalues < -tol).sum()),
        zero=int((eigenvalues.abs() <= tol).sum()),
        positive=int((eigenvalues > tol).sum()),
        min=float(eigenvalues.min()),
        max=float(eigenvalues.max()),
    )


def spread(z: torch.Tensor, normalize: bool = False) -> float:
    """``sqrt(trace(C))``, the RMS distance of the rows from their mean (centred covariance
    from :func:`collapselab.metrics.compute_metrics`); on L2-normalised rows if ``normalize``."""
    rows = torch.nn.functional.normalize(z, dim=1) if normalize else z
    return float(compute_metrics(rows.detach()).total_variance) ** 0.5


@dataclass(frozen=True)
class Growth:
    """Gradient descent from ``collapse + eps``: how the spread of the rows evolved.

    Attributes:
        initial: spread after the perturbation.
        final: spread after ``steps`` steps.
        ratio: ``final / initial`` (> 1: the perturbation grew; < 1: it decayed).
        rate: measured per-step growth factor over the last quarter of the run.
        steps: number of gradient steps.
        lr: step size.
    """

    initial: float
    final: float
    ratio: float
    rate: float
    steps: int
    lr: float


def perturbation_growth(
    loss: LossFn,
    z0: torch.Tensor,
    eps: float,
    steps: int,
    lr: float,
    generator: torch.Generator,
    normalize: bool = False,
) -> Growth:
    """Plain gradient descent ``z <- z - lr grad L(z)`` from ``z0 + eps * xi`` (xi ~ N(0, I)).

    Linearised, the perturbation evolves by ``(I - lr H)``: along an eigenvector of the
    Hessian with eigenvalue ``lam`` it is multiplied by ``1 - lr lam`` per step, so negative
    curvature makes it grow and positive curvature makes it decay.

    Args:
        loss: scalar function of the (N, d) matrix.
        z0: the (collapsed) starting point, float64.
        eps: perturbation size.
        steps: gradient steps.
        lr: step size (keep ``lr * max|lam| < 1`` for a faithful gradient flow).
        generator: source of the perturbation.
        normalize: measure the spread of L2-normalised rows (for scale-invariant losses).
    """
    z = z0.detach().clone() + eps * torch.randn(z0.shape, generator=generator, dtype=z0.dtype)
    initial = spread(z, normalize)
    quarter = max(1, steps // 4)
    mark = initial
    for step in range(steps):
        if step == steps - quarter:
            mark = spread(z, normalize)
        z = z - lr * gradient(loss, z)
    final = spread(z, normalize)
    rate = (final / mark) ** (1.0 / quarter) if mark > 0 else float("nan")
    return Growth(initial, final, final / initial, rate, steps, lr)
