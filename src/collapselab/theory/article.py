"""The article's formulas and demos, transcribed as functions: the subjects under test.

Each function reproduces one formula or code listing of the seed article ("Why Embedding
Models Collapse: A Mathematical and Optimization Perspective") exactly as printed, so a check
can compare it with autograd, a library loss or a measurement. Nothing here is "fixed": the
corrections live in the checks that test these functions. The demos take explicit seeds
(the article seeds nothing; every ``torch.Generator`` here is local, no global RNG is touched).

Shapes: ``z`` is (N, d); ``anchors``, ``positives`` are (N, d); ``candidates`` is (K, d).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from collapselab.losses import article_info_nce, variance_loss

LossFn = Callable[[torch.Tensor], torch.Tensor]


def variance(z: torch.Tensor) -> torch.Tensor:
    """Article, "Gradient Analysis of Collapse": ``Var(Z) = (1/N) sum_i ||z_i - mu||^2``.

    It is ``d * variance_loss(z)`` (the library's / first demo's per-coordinate mean).
    """
    return z.shape[1] * variance_loss(z)


def variance_gradient(z: torch.Tensor) -> torch.Tensor:
    """Article: ``grad_{z_i} Var(Z) = 2 (z_i - mu)``, row i of the returned (N, d) tensor."""
    return 2.0 * (z - z.mean(dim=0, keepdim=True))


def softmax_probabilities(
    anchors: torch.Tensor, candidates: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Article, "Softmax Probability Interpretation": ``P(k|i) = softmax_k(z_i^T z_k / tau)``.

    Returns:
        (N, K) row-stochastic matrix.
    """
    return torch.softmax(anchors @ candidates.T / temperature, dim=1)  # (N, d) @ (d, K)


def infonce_anchor_gradient(
    anchors: torch.Tensor,
    positives: torch.Tensor,
    candidates: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Article, "Gradient of InfoNCE Loss": ``(1/tau) (sum_k P(k|i) z_k - z_i^+)``, per row i.

    Returns:
        (N, d): row i is the article's ``grad_{z_i} L_i``.
    """
    p = softmax_probabilities(anchors, candidates, temperature)  # (N, K)
    return (p @ candidates - positives) / temperature  # (N, K) @ (K, d) -> (N, d)


def perturbation_gradient(
    p: torch.Tensor, eps_candidates: torch.Tensor, eps_positives: torch.Tensor
) -> torch.Tensor:
    """Article, "Why Collapse is Unstable": ``sum_k P(k|i) eps_k - eps_i^+`` (no 1/tau).

    Args:
        p: (N, K) softmax probabilities at the perturbed point.
        eps_candidates: (K, d) perturbations of the candidates.
        eps_positives: (N, d) perturbations of the positives.
    """
    return p @ eps_candidates - eps_positives


def second_moment(z: torch.Tensor) -> torch.Tensor:
    """Article, "Spectral Interpretation": ``C = (1/N) Z^T Z`` (uncentred), (d, d)."""
    return z.T @ z / z.shape[0]


def covariance(z: torch.Tensor) -> torch.Tensor:
    """Article, "Variance Preservation Mechanism": ``C = (1/N) sum (z_i - mu)(z_i - mu)^T``."""
    zc = z - z.mean(dim=0, keepdim=True)
    return zc.T @ zc / z.shape[0]


def energy(anchors: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Article, "Connection to Energy-Based Models": ``E(z_i, z_k) = -z_i^T z_k``, (N, K)."""
    return -(anchors @ candidates.T)


def eigenvalues(z: torch.Tensor) -> torch.Tensor:
    """The first demo's ``eigenvalues(z)``, verbatim (centred, ascending, as eigvalsh returns)."""
    z = z - z.mean(dim=0)
    cov = z.T @ z / z.shape[0]
    return torch.linalg.eigvalsh(cov)


def linear(d_in: int, d_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear(d_in, d_out)`` with PyTorch's default initialisation drawn from ``generator``.

    PyTorch initialises weight and bias as U(-1/sqrt(d_in), 1/sqrt(d_in))
    (``kaiming_uniform_(a=sqrt(5))``); drawing them from a local generator makes the demo
    reproducible without seeding the global RNG.
    """
    layer = nn.Linear(d_in, d_out)
    bound = 1.0 / math.sqrt(d_in)
    with torch.no_grad():
        layer.weight.copy_((torch.rand(d_out, d_in, generator=generator) * 2 - 1) * bound)
        layer.bias.copy_((torch.rand(d_out, generator=generator) * 2 - 1) * bound)
    return layer


@dataclass(frozen=True)
class DemoRun:
    """A replay of one of the article's demos.

    Attributes:
        printed_steps: the steps at which the demo prints (``step % 50 == 0``).
        printed: the printed values (variance, or "min eig"), computed by the article's code.
        z_init: (N, d_out) embeddings of the untrained model (float32, detached).
        z_final: (N, d_out) embeddings after the last step.
        losses: the loss at every printed step.
        model: the trained encoder.
        x: the (N, d_in) input.
    """

    printed_steps: list[int]
    printed: list[float]
    z_init: torch.Tensor
    z_final: torch.Tensor
    losses: list[float]
    model: nn.Linear
    x: torch.Tensor


def run_variance_demo(
    loss: LossFn = variance_loss,
    seed: int = 0,
    steps: int = 500,
    lr: float = 1e-3,
    n: int = 512,
    d_in: int = 32,
    d_out: int = 128,
) -> DemoRun:
    """The article's first demo ("Demonstration in PyTorch"), with an explicit seed.

    ``model = nn.Linear(32, 128)``, ``Adam(lr=1e-3)``, ``x = randn(512, 32)``, 500 steps of
    ``collapse_loss`` (= the library's :func:`~collapselab.losses.variance_loss`), printing
    ``z.var(dim=0).mean()`` of the pre-step ``z`` every 50 steps.
    """
    return _replay(loss, lambda z: z.var(dim=0).mean().item(), seed, steps, lr, n, d_in, d_out)


def run_infonce_demo(
    loss: LossFn = article_info_nce,
    seed: int = 0,
    steps: int = 500,
    lr: float = 1e-3,
    n: int = 512,
    d_in: int = 32,
    d_out: int = 128,
) -> DemoRun:
    """The article's second demo ("Empirical Demonstration"), with an explicit seed.

    ``model = nn.Linear(32, 128)``, ``Adam`` (default lr 1e-3), 500 steps of
    ``info_nce(z) = CrossEntropyLoss()(z @ z.T, arange(N))`` (= the library's
    :func:`~collapselab.losses.article_info_nce`), printing ``eigvalsh(torch.cov(z.T)).min()``
    of the pre-step ``z`` every 50 steps. (The article computes the eigenvalues at every step
    but prints only every 50th; computing only those gives the same printout.)
    """
    return _replay(
        loss,
        lambda z: torch.linalg.eigvalsh(torch.cov(z.detach().T)).min().item(),
        seed, steps, lr, n, d_in, d_out,
    )  # fmt: skip


def _replay(
    loss: LossFn,
    printout: Callable[[torch.Tensor], float],
    seed: int,
    steps: int,
    lr: float,
    n: int,
    d_in: int,
    d_out: int,
) -> DemoRun:
    """The loop both demos share: ``model = Linear(d_in, d_out)``, ``x = randn(n, d_in)``,
    Adam; every 50 steps the article prints ``printout(z)`` of the pre-step ``z``. The
    generator draws the weights before ``x``; the optimizer draws nothing, so the order
    of its construction does not matter."""
    g = torch.Generator().manual_seed(seed)
    model = linear(d_in, d_out, g)
    x = torch.randn(n, d_in, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.no_grad():
        z_init = model(x)
    printed_steps: list[int] = []
    printed: list[float] = []
    losses: list[float] = []
    for step in range(steps):
        z = model(x)
        value = loss(z)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        if step % 50 == 0:
            printed_steps.append(step)
            printed.append(printout(z))
            losses.append(value.item())
    with torch.no_grad():
        z_final = model(x)
    return DemoRun(printed_steps, printed, z_init, z_final, losses, model, x)
