"""The article's two PyTorch demos traced step by step, as written and corrected.

The replays that reproduce the article's printouts exactly live in
:mod:`collapselab.theory.article` (and the theory checks referee them); this module adds the
per-step traces the report plots: the article prints one number every 50 steps, which
cannot show what its text claims.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from collapselab.diagnose import measure_array
from collapselab.losses import article_info_nce, nt_xent
from collapselab.metrics import compute_metrics
from collapselab.theory.article import linear


@dataclass
class Trace:
    """Per-step numbers of one demo variant (every ``every`` steps)."""

    name: str
    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    min_eig: list[float] = field(default_factory=list)  # smallest eigenvalue of torch.cov(z.T)
    kth_eig: list[float] = field(default_factory=list)  # the k-th largest (k = input rank + 1)
    effective_rank: list[float] = field(default_factory=list)
    total_variance: list[float] = field(default_factory=list)
    k: int = 0
    final_verdict: str = ""

    def to_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items()}


def _record(tr: Trace, step: int, z: torch.Tensor, loss: float) -> None:
    zd = z.detach().double()
    eig = torch.linalg.eigvalsh(torch.cov(zd.T))  # ascending, as the article computes it
    met = compute_metrics(zd)
    tr.steps.append(step)
    tr.loss.append(loss)
    tr.min_eig.append(float(eig[0]))
    tr.kth_eig.append(float(eig.flip(0)[tr.k - 1]))
    tr.effective_rank.append(met.effective_rank)
    tr.total_variance.append(met.total_variance)


def trace_demo(
    variant: str, steps: int = 500, every: int = 10, seed: int = 0, n: int = 512
) -> Trace:
    """Train one variant and trace it.

    Variants:
        ``variance``: the first demo as written (variance loss, Linear(32, 128), Adam 1e-3).
        ``infonce-article``: the second demo as written (self-pair ``CE(z z^T, arange)``,
            Linear(32, 128), Adam 1e-3).
        ``infonce-corrected``: two noisy views, L2-normalised NT-Xent with tau = 0.1, and an
            encoder whose output rank is not capped by its input (128 -> 256 -> 128 MLP on
            128-d inputs), Adam 1e-3.
    """
    g = torch.Generator().manual_seed(seed)
    model: nn.Module
    if variant == "infonce-corrected":
        d_in = 128
        model = nn.Sequential(linear(d_in, 256, g), nn.ReLU(), linear(256, 128, g))
    else:
        d_in = 32
        model = linear(d_in, 128, g)
    x = torch.randn(n, d_in, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    tr = Trace(variant, k=min(d_in + 1, 128))
    loss_fn: Callable[[torch.Tensor], torch.Tensor]
    for step in range(steps + 1):
        if variant == "infonce-corrected":
            v1 = model(x + 0.1 * torch.randn(x.shape, generator=g))
            v2 = model(x + 0.1 * torch.randn(x.shape, generator=g))
            loss = nt_xent(v1, v2, temperature=0.1)
            z = F.normalize(model(x), dim=1) if step % every == 0 else v1
        else:
            z = model(x)
            loss_fn = article_info_nce if variant == "infonce-article" else _variance
            loss = loss_fn(z)
        if step % every == 0:
            _record(tr, step, z, float(loss.detach()))
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        zf = F.normalize(model(x), dim=1) if variant == "infonce-corrected" else model(x)
    tr.final_verdict = measure_array(zf).verdict
    return tr


def _variance(z: torch.Tensor) -> torch.Tensor:
    from collapselab.losses import variance_loss

    return variance_loss(z)


def plot_traces(traces: list[Trace]):  # type: ignore[no-untyped-def]
    """Three panels: loss, smallest and k-th eigenvalue (log |.|), effective rank."""
    from collapselab.report.plots import OKABE_ITO, new_figure

    fig = new_figure(ncols=3, width=4.2)
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for i, tr in enumerate(traces):
        c = OKABE_ITO[i % len(OKABE_ITO)]
        ax1.plot(tr.steps, tr.loss, color=c, label=tr.name)
        ax2.semilogy(
            tr.steps,
            [abs(v) + 1e-30 for v in tr.min_eig],
            color=c,
            ls=":",
            label=f"{tr.name}: |min eig| (printed)",
        )
        ax2.semilogy(tr.steps, tr.kth_eig, color=c, label=f"{tr.name}: eig #{tr.k}")
        ax3.plot(tr.steps, tr.effective_rank, color=c, label=tr.name)
    ax1.set_title("Loss")
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax2.set_title("What 'min eig' can show")
    ax2.set_xlabel("step")
    ax2.set_ylabel("eigenvalue of torch.cov(z.T) (log)")
    ax3.set_title("Effective rank (of 128)")
    ax3.set_xlabel("step")
    ax3.set_ylabel("effective rank (directions)")
    for ax in (ax1, ax2, ax3):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    return fig
