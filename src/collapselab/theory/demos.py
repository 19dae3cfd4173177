"""The article's two PyTorch demos, as written and corrected: the one implementation.

The theory checks (:mod:`collapselab.theory.claims_demos`) referee these runs and the report
(``collapselab demo``, :mod:`collapselab.experiments.demo`) plots them, so the two cannot show
different numbers for the same experiment. Three runs:

- :func:`run_variance_demo`: the first demo ("Demonstration in PyTorch") exactly as printed:
  ``nn.Linear(32, 128)``, ``Adam(lr=1e-3)``, ``x = randn(512, 32)``, 500 full-batch steps of
  ``collapse_loss`` (= :func:`~collapselab.losses.variance_loss`), float32.
- :func:`run_infonce_demo`: the second demo ("Empirical Demonstration") exactly as printed:
  the same encoder and optimizer, 500 steps of ``CrossEntropyLoss()(z @ z.T, arange(N))``
  (= :func:`~collapselab.losses.article_info_nce`).
- :func:`run_corrected_demo`: the second demo corrected: two Gaussian-noise views of each
  input, L2-normalised NT-Xent (:func:`~collapselab.losses.nt_xent`, tau = 0.1) and an encoder
  whose output rank is not capped by its input (``Linear(128, 128)``; with ``d_in=32`` the
  same loss on the article's encoder).

Every run takes an explicit seed; every random draw comes from a local ``torch.Generator``
(weights, then ``x``, then the views), no global RNG is touched. Each recorded step keeps the
article's own printout (its float32 code) beside collapselab's float64 metrics of the same
embeddings, and collapselab's verdict before and after training. Runs are cached: the theory
table and the report read the same run.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from collapselab.diagnose import measure_array
from collapselab.errors import ConfigError
from collapselab.losses import article_info_nce, nt_xent, variance_loss
from collapselab.metrics import EmbeddingMetrics, compute_metrics
from collapselab.theory.numerics import LossFn

#: The article prints every 50 steps (``if step % 50 == 0``); runs record at least these.
PRINT_EVERY = 50
#: Steps of both of the article's demos.
DEMO_STEPS = 500
#: Steps of the corrected second demo (enough for the effective rank to rise ~1.6x).
CORRECTED_STEPS = 100

#: ``(model, x) -> (loss, z)``: one step's loss and the embeddings the demo watches.
Objective = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


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


def eigenvalues(z: torch.Tensor) -> torch.Tensor:
    """The first demo's ``eigenvalues(z)``, verbatim (centred, ascending, as eigvalsh returns)."""
    z = z - z.mean(dim=0)
    cov = z.T @ z / z.shape[0]
    return torch.linalg.eigvalsh(cov)


def printed_variance(z: torch.Tensor) -> float:
    """The first demo's printout: ``z.var(dim=0).mean()`` (float32, unbiased)."""
    return float(z.detach().var(dim=0).mean())


def printed_min_eig(z: torch.Tensor) -> float:
    """The second demo's printout: ``torch.linalg.eigvalsh(torch.cov(z.T)).min()`` (float32)."""
    return float(torch.linalg.eigvalsh(torch.cov(z.detach().T)).min())


@dataclass(frozen=True)
class DemoRun:
    """One demo run, recorded every ``every`` steps (step 0 and the final step included).

    The values at step ``s`` are those of the embeddings before the ``s``-th update (the
    article prints the pre-step ``z``); the last recorded step is the trained model.

    Attributes:
        name: ``variance``, ``infonce-article`` or ``infonce-corrected``.
        encoder: e.g. ``"Linear(32, 128)"``.
        total_steps: optimizer steps taken.
        steps: the recorded steps.
        loss: the loss at each recorded step.
        printed: the article's printout of the watched embeddings at each recorded step
            (variance for the first demo, ``min eig`` for the second; float32, its own code).
        min_eig: smallest eigenvalue of the centred covariance (collapselab, float64, 1/N).
        kth_eig: its ``k``-th largest eigenvalue (``k = d_in + 1``: the first one beyond the
            rank an affine map of ``d_in`` inputs can reach).
        effective_rank: collapselab's effective rank (Roy & Vetterli) at each recorded step.
        total_variance: trace of the covariance at each recorded step.
        k: see ``kth_eig``.
        metrics_init: collapselab's metrics of the untrained model's embeddings.
        metrics_final: the same after training.
        z_init: (N, d_out) watched embeddings of the untrained model (float32, detached).
        z_final: (N, d_out) watched embeddings after the last step.
        model: the trained encoder.
        x: the (N, d_in) input.
    """

    name: str
    encoder: str
    total_steps: int
    steps: list[int]
    loss: list[float]
    printed: list[float]
    min_eig: list[float]
    kth_eig: list[float]
    effective_rank: list[float]
    total_variance: list[float]
    k: int
    metrics_init: EmbeddingMetrics
    metrics_final: EmbeddingMetrics
    z_init: torch.Tensor
    z_final: torch.Tensor
    model: nn.Linear
    x: torch.Tensor

    @functools.cached_property
    def verdict_init(self) -> str:
        """collapselab's verdict (:func:`~collapselab.diagnose.measure_array`) on the
        untrained model's embeddings (computed on first use)."""
        return measure_array(self.z_init.double()).verdict

    @functools.cached_property
    def final_verdict(self) -> str:
        """collapselab's verdict on the trained model's embeddings (computed on first use)."""
        return measure_array(self.z_final.double()).verdict

    def article_printout(self) -> tuple[list[int], list[float]]:
        """The steps and values the article's loop prints (``step % 50 == 0``, pre-step)."""
        picked = [(s, v) for s, v in zip(self.steps, self.printed, strict=True)
                  if s % PRINT_EVERY == 0 and s < self.total_steps]  # fmt: skip
        return [s for s, _ in picked], [v for _, v in picked]

    def article_losses(self) -> list[float]:
        """The loss at each step the article prints."""
        return [lo for s, lo in zip(self.steps, self.loss, strict=True)
                if s % PRINT_EVERY == 0 and s < self.total_steps]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The recorded numbers (no tensors), JSON-ready."""
        return {
            "name": self.name, "encoder": self.encoder, "total_steps": self.total_steps,
            "k": self.k, "steps": self.steps, "loss": self.loss, "printed": self.printed,
            "min_eig": self.min_eig, "kth_eig": self.kth_eig,
            "effective_rank": self.effective_rank, "total_variance": self.total_variance,
            "verdict_init": self.verdict_init, "final_verdict": self.final_verdict,
        }  # fmt: skip


def run_variance_demo(
    loss: LossFn = variance_loss,
    seed: int = 0,
    steps: int = DEMO_STEPS,
    every: int = PRINT_EVERY,
    d_in: int = 32,
    d_out: int = 128,
    n: int = 512,
    lr: float = 1e-3,
) -> DemoRun:
    """The article's first demo, with an explicit seed (cached: treat the run as read-only).

    Args:
        loss: the objective of ``z = model(x)`` (the article's ``collapse_loss`` by default;
            a test feeds others).
        seed: seeds the local generator (weights, then ``x``).
        steps: optimizer steps (the article: 500).
        every: steps between recorded points (the report traces every 10); must divide 50
            so that every printed step is recorded. Recording draws nothing: the values at
            a step do not depend on ``every``.
        d_in, d_out: the encoder ``Linear(d_in, d_out)`` (the article: 32, 128).
        n: batch (the article: 512).
        lr: Adam's learning rate (the article: 1e-3).
    """
    return _one_view("variance", loss, seed, steps, every, d_in, d_out, n, lr)


def run_infonce_demo(
    loss: LossFn = article_info_nce,
    seed: int = 0,
    steps: int = DEMO_STEPS,
    every: int = PRINT_EVERY,
    d_in: int = 32,
    d_out: int = 128,
    n: int = 512,
    lr: float = 1e-3,
) -> DemoRun:
    """The article's second demo, with an explicit seed (cached); arguments as
    :func:`run_variance_demo`. The article computes the eigenvalues at every step but
    prints only every 50th; computing only the recorded ones gives the same printout."""
    return _one_view("infonce-article", loss, seed, steps, every, d_in, d_out, n, lr)


def run_corrected_demo(
    seed: int = 0,
    steps: int = CORRECTED_STEPS,
    every: int = PRINT_EVERY,
    d_in: int = 128,
    d_out: int = 128,
    n: int = 512,
    noise: float = 0.1,
    temperature: float = 0.1,
    lr: float = 1e-3,
) -> DemoRun:
    """The second demo corrected (cached): two views ``x + noise * eps``, L2-normalised
    NT-Xent at ``temperature``, encoder ``Linear(d_in, d_out)``, Adam.

    The watched embeddings are the L2-normalised outputs of the clean inputs,
    ``normalize(model(x))``; their ``printed`` value is the article's ``min eig`` code.
    ``d_in=128`` (default) does not cap the output rank; ``d_in=32`` is the article's
    encoder under the corrected loss.
    """
    return _corrected(seed, steps, every, d_in, d_out, n, noise, temperature, lr)


# The runs are cached on every argument, passed positionally whatever the caller wrote, so
# the theory table and the report share one run when they ask for the same one.


@functools.lru_cache(maxsize=16)
def _one_view(
    name: str, loss: LossFn, seed: int, steps: int, every: int, d_in: int, d_out: int,
    n: int, lr: float,
) -> DemoRun:  # fmt: skip
    """The article's loop: ``z = model(x)``, ``loss(z)``, Adam; it watches ``z`` itself."""

    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = model(x)
        return loss(z), z

    printout = printed_variance if name == "variance" else printed_min_eig
    g = torch.Generator().manual_seed(seed)
    return _train(name, objective, printout, g, steps, every, d_in, d_out, n, lr)


@functools.lru_cache(maxsize=16)
def _corrected(
    seed: int, steps: int, every: int, d_in: int, d_out: int, n: int, noise: float,
    temperature: float, lr: float,
) -> DemoRun:  # fmt: skip
    def objective(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v1 = model(x + noise * torch.randn(x.shape, generator=g))  # (n, d_out)
        v2 = model(x + noise * torch.randn(x.shape, generator=g))
        with torch.no_grad():
            z = F.normalize(model(x), dim=1)
        return nt_xent(v1, v2, temperature=temperature), z

    g = torch.Generator().manual_seed(seed)
    return _train("infonce-corrected", objective, printed_min_eig, g, steps, every,
                  d_in, d_out, n, lr)  # fmt: skip


def _train(
    name: str, objective: Objective, printout: Callable[[torch.Tensor], float],
    g: torch.Generator, steps: int, every: int, d_in: int, d_out: int, n: int, lr: float,
) -> DemoRun:  # fmt: skip
    """Draw ``Linear(d_in, d_out)`` then ``x = randn(n, d_in)`` from ``g``, train with Adam
    for ``steps`` steps and record every ``every`` steps (recording draws nothing)."""
    if every < 1 or PRINT_EVERY % every:
        raise ConfigError(f"every: {every}; expected a divisor of {PRINT_EVERY}")
    model = linear(d_in, d_out, g)
    x = torch.randn(n, d_in, generator=g)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    k = min(d_in + 1, d_out)
    rec: dict[str, list[Any]] = {key: [] for key in (
        "steps", "loss", "printed", "min_eig", "kth_eig", "effective_rank", "total_variance",
        "metrics")}  # fmt: skip
    z = z_init = x
    for step in range(steps + 1):
        loss, z = objective(model, x)
        if step % every == 0 or step == steps:
            met = compute_metrics(z.detach().double())
            lam = met.eigenvalues  # descending
            for key, value in (
                ("steps", step), ("loss", float(loss.detach())), ("printed", printout(z)),
                ("min_eig", float(lam[-1])), ("kth_eig", float(lam[k - 1])),
                ("effective_rank", met.effective_rank), ("total_variance", met.total_variance),
                ("metrics", met),
            ):  # fmt: skip
                rec[key].append(value)
        if step == 0:
            z_init = z.detach().clone()
        if step == steps:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    metrics = rec.pop("metrics")
    z_final = z.detach().clone()
    return DemoRun(name=name, encoder=f"Linear({d_in}, {d_out})", total_steps=steps, k=k,
                   metrics_init=metrics[0], metrics_final=metrics[-1], z_init=z_init,
                   z_final=z_final, model=model, x=x, **rec)  # fmt: skip
