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


def linear_encoder_loss(loss: LossFn, x: torch.Tensor, d_out: int) -> LossFn:
    """``loss`` as a function of the flat parameters ``theta = (vec W, b)`` of the encoder
    ``z = x W^T + b`` (``W``: (d_out, d_in) flattened row-major, then ``b``: (d_out,)), the
    parameterisation of the article's demos (``nn.Linear``). Feed it to :func:`hessian` for the
    curvature in parameter space; the demos collapse through ``W -> 0``.
    """
    m = d_out * x.shape[1]

    def f(theta: torch.Tensor) -> torch.Tensor:
        w = theta[:m].reshape(d_out, x.shape[1])
        return loss(x @ w.T + theta[m:])  # (N, d_in) @ (d_in, d_out) + (d_out,)

    return f


@dataclass(frozen=True)
class AdamRun:
    """Adam on a linear encoder started at ``W = delta W0`` (``delta = 0``: exact collapse).

    Attributes:
        delta: scale of the starting weights.
        dtype: ``float32`` or ``float64``.
        initial_spread: spread of ``z = x W^T + b`` at the start (0 at exact collapse).
        first_grad_norm: ``|dL/dW|`` at the start (rounding noise when ``delta = 0``).
        final_spread: spread after ``steps`` Adam steps.
        steps: Adam steps.
        lr: Adam's learning rate.
    """

    delta: float
    dtype: str
    initial_spread: float
    first_grad_norm: float
    final_spread: float
    steps: int
    lr: float


def adam_near_collapse(
    loss: LossFn,
    delta: float,
    dtype: torch.dtype = torch.float32,
    steps: int = 100,
    lr: float = 1e-3,
    n: int = 64,
    d_in: int = 8,
    d_out: int = 6,
    seed: int = 0,
) -> AdamRun:
    """Adam (PyTorch defaults, ``eps = 1e-8``) on ``z = x W^T + b`` from ``W = delta W0``.

    Adam divides the gradient by its running RMS, so near collapse it takes steps of size
    ``~lr`` however small the gradient is, as long as ``|g| >> eps``: float rounding of a
    gradient that is 0 in exact arithmetic (~1e-7 in float32) is enough to move the weights.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g).to(dtype)
    w0 = torch.randn(d_out, d_in, generator=g).to(dtype) / d_in**0.5
    w = (delta * w0).requires_grad_(True)
    b = torch.randn(d_out, generator=g).to(dtype).requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=lr)

    def z_now() -> torch.Tensor:
        with torch.no_grad():
            return (x @ w.T + b).double()

    initial = spread(z_now())
    first = 0.0
    for step in range(steps):
        value = loss(x @ w.T + b)
        opt.zero_grad()
        value.backward()
        if step == 0:
            first = float(w.grad.norm()) if w.grad is not None else 0.0
        opt.step()
    return AdamRun(delta, str(dtype).replace("torch.", ""), initial, first, spread(z_now()),
                   steps, lr)  # fmt: skip
