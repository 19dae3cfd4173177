"""The article's formulas, transcribed as functions: the subjects under test.

Each function reproduces one formula of the seed article ("Why Embedding Models Collapse: A
Mathematical and Optimization Perspective") exactly as printed, so a check can compare it with
autograd, a library loss or a measurement. Nothing here is "fixed": the corrections live in
the checks that test these functions. The article's two PyTorch demos live in
:mod:`collapselab.theory.demos`.

Shapes: ``z`` is (N, d); ``anchors``, ``positives`` are (N, d); ``candidates`` is (K, d).
"""

from __future__ import annotations

import torch

from collapselab.losses import variance_loss


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
