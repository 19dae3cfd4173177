"""The article's "charged particles" picture, made real.

``n`` free 2-D embeddings, L2-normalised onto the unit circle, start bunched in an arc and
follow gradient descent on one of two objectives:

- pure attraction, the article's ``sum_ij ||u_i - u_j||^2``
  (:func:`collapselab.losses.pairwise_attraction_loss`): every particle pulls every other
  one; they meet in one point (complete collapse).
- NT-Xent (:func:`collapselab.losses.nt_xent`) between two noisy views of each particle:
  a particle attracts its own other view and is pushed away from all the others; they
  spread around the circle. For unit vectors the repulsive log-sum-exp is the
  Gaussian-potential energy of Wang & Isola's uniformity, the "charge" of the analogy.

The snapshots are drawn by :func:`collapselab.report.figures_demo.particles_figure`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from collapselab.errors import ConfigError
from collapselab.losses import nt_xent, pairwise_attraction_loss
from collapselab.metrics.geometry import uniformity


@dataclass(frozen=True)
class ParticleRun:
    """Snapshots of one objective: ``positions[k]`` is ``(n, 2)`` at ``steps[k]``."""

    objective: str
    steps: list[int]
    positions: list[np.ndarray]
    uniformity: list[float]
    mean_cosine: list[float]
    loss: list[float]

    def to_dict(self) -> dict[str, object]:
        return {
            "objective": self.objective,
            "steps": self.steps,
            "uniformity": self.uniformity,
            "mean_cosine": self.mean_cosine,
            "loss": self.loss,
            "positions": [p.round(5).tolist() for p in self.positions],
        }


def _mean_cosine(u: torch.Tensor) -> float:
    n = u.shape[0]
    s = u.sum(0)
    return float((s @ s - n) / (n * (n - 1)))


def simulate(
    objective: str,
    n: int = 24,
    steps: int = 300,
    lr: float = 0.5,
    temperature: float = 0.5,
    noise: float = 0.05,
    snapshots: tuple[int, ...] = (0, 10, 50, 150, 300),
    seed: int = 0,
) -> ParticleRun:
    """Run plain gradient descent on ``n`` 2-D particles for one objective.

    Args:
        objective: ``"attraction"`` or ``"infonce"``.
        n: particles.
        steps: gradient steps (SGD, learning rate ``lr``).
        temperature: NT-Xent temperature.
        noise: std of the Gaussian noise making the two views of a particle.
        snapshots: steps at which positions are recorded.
    """
    g = torch.Generator().manual_seed(seed)
    angles = torch.rand(n, generator=g, dtype=torch.float64) * 1.2  # an arc of ~70 degrees
    z = torch.stack([angles.cos(), angles.sin()], 1).requires_grad_(True)
    opt = torch.optim.SGD([z], lr=lr)
    rec: dict[str, list] = {k: [] for k in ("steps", "pos", "unif", "cos", "loss")}
    for step in range(steps + 1):
        u = F.normalize(z, dim=1)
        if objective == "attraction":
            # normalised by n^2 so the step size means the same for any n
            loss = pairwise_attraction_loss(u) / n**2
        elif objective == "infonce":
            e1 = noise * torch.randn(z.shape, generator=g, dtype=z.dtype)
            e2 = noise * torch.randn(z.shape, generator=g, dtype=z.dtype)
            loss = nt_xent(u + e1, u + e2, temperature=temperature)
        else:
            raise ConfigError(f"objective must be 'attraction' or 'infonce', got {objective!r}")
        if step in snapshots:
            ud = u.detach()
            rec["steps"].append(step)
            rec["pos"].append(ud.numpy().copy())
            rec["unif"].append(uniformity(ud))
            rec["cos"].append(_mean_cosine(ud))
            rec["loss"].append(float(loss.detach()))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ParticleRun(objective, rec["steps"], rec["pos"], rec["unif"], rec["cos"], rec["loss"])
