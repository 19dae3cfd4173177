"""Tian, Chen & Ganguli (2021), "Understanding self-supervised learning dynamics without
contrastive pairs" (ICML 2021, arXiv:2102.06810), reproduced in their linear setting.

Their linear model: an online linear encoder ``f = W x``, a linear predictor
``Wp``, a target ``f_a = W_a x`` whose weights are an EMA of ``W``, and the stop-gradient
loss of their Eq. 1, ``J = 1/2 E ||Wp W x1 - sg(W_a x2)||^2`` (symmetrised over the two
views), trained by SGD with weight decay ``eta`` on ``W`` and ``Wp`` and a predictor
learning rate ``alpha_p`` times the encoder's. Data ``x ~ N(0, I)``, views
``x + sigma * N(0, I)``.

What :func:`run` measures:

- **Eigenspace alignment**: with ``F = E[f f^T] = U diag(s) U^T``
  (clean inputs), the variance-weighted cosine between each eigenvector and its image under
  the predictor, ``sum_j s_j cos(Wp u_j, u_j) / sum_j s_j``: 1 when every eigenvector of
  ``F`` is an eigenvector of ``Wp`` with positive eigenvalue. Recorded over training.
- **Collapse**: ``relative_variance = tr F_end / tr F_start`` (the trivial fixed point of
  their analysis is ``W -> 0``) and, scale-free, ``normalized_std`` =
  ``sqrt(d) * std_of_l2_normalized(f)`` (1 for an isotropic ``f``, 0 when all rows are
  parallel).
- **DirectPred**: ``Wp`` is not trained but set every step to
  ``U_hat diag(p) U_hat^T`` with ``p_j = sqrt(s_j / max_k s_k) + eps`` from the
  eigendecomposition of ``F_hat``, a moving average of the batch correlation ``f f^T`` of
  the online branch; ``eps = 0.01`` and ``F_hat <- 0.3 F_hat + 0.7 f f^T`` as the official
  code's ``dyn_eps=0.01 dyn_lambda=0.3``.

Two losses, named by :data:`LOSS_LABELS` in every table: ``loss="l2"`` is the paper's
Eq. 1 (unnormalised), the one its analysis is about; ``loss="byol"`` is BYOL's normalised
``2 - 2 cos`` (collapselab's :func:`~collapselab.losses.byol.byol_loss`), the one the
paper's deep-network experiments train. They disagree on the fixed predictors: under Eq. 1
a fixed ``Wp = I`` gives ``dW/dt = -(sigma^2 + eta) W`` and collapses; with ``Wp``
sharing F's eigenvectors, an eigendirection with predictor eigenvalue ``p`` grows only
while ``(1 + sigma^2) p^2 - p + eta < 0`` (``0.056 < p < 0.444`` at ``sigma = 1``,
``eta = 0.05``), and DirectPred always gives the top direction ``p = 1 + eps``, so it
shrinks, and the rest follow: DirectPred under Eq. 1 collapses too. Under the normalised
loss, which is blind to scale, neither collapses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch

from collapselab.losses.byol import byol_loss
from collapselab.metrics import effective_rank, std_of_l2_normalized

#: an Eq. 1 run counts as collapsed when tr F_end / tr F_start ends below this
COLLAPSED_BELOW = 0.05
#: a normalised-loss run counts as collapsed when the effective rank of f ends below this
#: (one direction left: a linear map of symmetric data to one line keeps rows at +-u, so
#: the normalised std stays large and cannot tell)
COLLAPSED_ERANK = 2.0
#: what each loss is called in tables
LOSS_LABELS: dict[str, str] = {
    "l2": "Eq. 1 (unnormalised)",
    "byol": "BYOL normalised (2 - 2 cos)",
}


@dataclass(frozen=True)
class TianConfig:
    """One run of the linear BYOL / SimSiam model of Tian et al. (2021)."""

    dim: int = 16  # input = representation width
    noise: float = 1.0  # augmentation noise std sigma (data std 1)
    ema: float = 0.0  # target momentum; 0: target = online weights (SimSiam, no EMA)
    weight_decay: float = 0.1  # eta, on W and Wp (SGD's coupled decay, as in Eq. 1's analysis)
    predictor_lr_ratio: float = 1.0  # alpha_p: predictor lr / encoder lr
    predictor: Literal["sgd", "directpred", "identity"] = "sgd"  # identity: Wp = I, fixed
    loss: Literal["l2", "byol"] = "l2"  # l2: Eq. 1; byol: 2 - 2 cos (BYOL Eq. 2)
    lr: float = 0.05
    steps: int = 1500
    batch: int = 64
    predictor_init: float = 0.01  # Wp entries ~ N(0, (predictor_init)^2 / dim): small
    directpred_rho: float = 0.3  # F_hat <- rho F_hat + (1 - rho) f f^T / B
    directpred_eps: float = 0.01  # added to every p_j; the official code's dyn_eps=0.01
    eval_every: int = 100  # steps between alignment measurements
    eval_rows: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class TianRun:
    """Result of :func:`run`.

    Attributes:
        config: the settings.
        steps: the steps at which ``alignment`` was measured (0 = initialisation).
        alignment: eigenspace alignment between ``Wp`` and ``F`` at those steps.
        relative_variance: ``tr F_end / tr F_start``.
        normalized_std: ``sqrt(d) * std_of_l2_normalized`` of the final clean ``f``.
        effective_rank: collapselab's effective rank of the final ``f``.
        collapsed: Eq. 1: ``relative_variance < COLLAPSED_BELOW``; normalised loss:
            ``effective_rank < COLLAPSED_ERANK`` (or not finite).
        final_loss: last training loss (nan if training diverged).
        trace_f: ``tr F`` at the steps of ``alignment`` (what collapse of Eq. 1 shrinks;
            measured on the same clean inputs, drawing nothing).
    """

    config: TianConfig
    steps: tuple[int, ...]
    alignment: tuple[float, ...]
    relative_variance: float
    normalized_std: float
    effective_rank: float
    collapsed: bool
    final_loss: float
    trace_f: tuple[float, ...] = ()

    @property
    def loss_name(self) -> str:
        """The loss trained, as tables name it (:data:`LOSS_LABELS`)."""
        return LOSS_LABELS[self.config.loss]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (with ``loss_name``)."""
        return {**asdict(self), "loss_name": self.loss_name}


def eigenspace_alignment(f_corr: torch.Tensor, wp: torch.Tensor) -> float:
    """``sum_j s_j cos(Wp u_j, u_j) / sum_j s_j`` for ``F = U diag(s) U^T``.

    Args:
        f_corr: (d, d) symmetric correlation matrix ``F``.
        wp: (d, d) predictor (``p = Wp f``).
    """
    s, u = torch.linalg.eigh(f_corr)  # s: (d,), u: (d, d) columns u_j
    s = s.clamp_min(0)
    image = wp @ u  # (d, d): column j is Wp u_j
    cos = (image * u).sum(0) / image.norm(dim=0).clamp_min(1e-300)  # (d,)
    return float((s * cos).sum() / s.sum().clamp_min(1e-300))


def directpred_predictor(f_hat: torch.Tensor, eps: float) -> torch.Tensor:
    """DirectPred's ``Wp = U diag(sqrt(s / max s) + eps) U^T`` (Tian et al. 2021)."""
    s, u = torch.linalg.eigh(f_hat)
    s = s.clamp_min(0)
    p = (s / s.max().clamp_min(1e-300)).sqrt() + eps  # (d,)
    return (u * p) @ u.T  # (d, d)


def _loss(cfg: TianConfig, p1: torch.Tensor, p2: torch.Tensor,
          t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:  # fmt: skip
    if cfg.loss == "byol":
        return byol_loss(p1, p2, t1, t2)
    # Eq. 1 averaged over the two directions (each view's prediction regresses the other
    # view's target), so its gradient is Eq. 1's and the weight-decay threshold theirs
    j1 = 0.5 * (p1 - t2.detach()).pow(2).sum(1).mean()
    j2 = 0.5 * (p2 - t1.detach()).pow(2).sum(1).mean()
    return 0.5 * (j1 + j2)


def run(cfg: TianConfig) -> TianRun:
    """Train the linear model of Tian et al. and record alignment and collapse."""
    g = torch.Generator().manual_seed(cfg.seed)
    dt, d = torch.float64, cfg.dim
    w = (torch.randn(d, d, dtype=dt, generator=g) / d**0.5).requires_grad_()  # online
    wp = (cfg.predictor_init * torch.randn(d, d, dtype=dt, generator=g) / d**0.5).requires_grad_()
    if cfg.predictor == "identity":
        wp = torch.eye(d, dtype=dt)
    w_target = w.detach().clone()
    groups: list[dict[str, Any]] = [{"params": [w]}]
    if cfg.predictor == "sgd":
        groups.append({"params": [wp], "lr": cfg.lr * cfg.predictor_lr_ratio})
    opt = torch.optim.SGD(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    x_eval = torch.randn(cfg.eval_rows, d, dtype=dt, generator=g)  # (M, d) clean inputs
    f_hat = torch.zeros(d, d, dtype=dt)

    def corr() -> torch.Tensor:
        f = x_eval @ w.detach().T  # (M, d)
        return f.T @ f / cfg.eval_rows  # (d, d) F = E[f f^T]

    var0 = float(torch.trace(corr()))
    steps, align, trf = [0], [eigenspace_alignment(corr(), wp.detach())], [var0]
    loss = torch.zeros(())
    for step in range(1, cfg.steps + 1):
        x = torch.randn(cfg.batch, d, dtype=dt, generator=g)
        x1 = x + cfg.noise * torch.randn(cfg.batch, d, dtype=dt, generator=g)
        x2 = x + cfg.noise * torch.randn(cfg.batch, d, dtype=dt, generator=g)
        f1, f2 = x1 @ w.T, x2 @ w.T  # (B, d) online representations
        if cfg.predictor == "directpred":
            batch_corr = f1.detach().T @ f1.detach() / cfg.batch  # (d, d)
            f_hat = batch_corr if step == 1 else cfg.directpred_rho * f_hat + (
                1 - cfg.directpred_rho) * batch_corr  # fmt: skip
            with torch.no_grad():
                wp.copy_(directpred_predictor(f_hat, cfg.directpred_eps))
        with torch.no_grad():
            t1, t2 = x1 @ w_target.T, x2 @ w_target.T  # (B, d) targets, no gradient
        loss = _loss(cfg, f1 @ wp.T, f2 @ wp.T, t1, t2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            w_target.lerp_(w.detach(), 1.0 - cfg.ema)  # EMA; ema = 0 copies W
        if not torch.isfinite(loss):
            break
        if step % cfg.eval_every == 0 or step == cfg.steps:
            steps.append(step)
            f_corr = corr()
            align.append(eigenspace_alignment(f_corr, wp.detach()))
            trf.append(float(torch.trace(f_corr)))
    with torch.no_grad():
        f = x_eval @ w.T
        rel_var = float(torch.trace(corr())) / var0
        nstd = std_of_l2_normalized(f) * d**0.5
        erank = (
            float("nan")
            if not torch.isfinite(f).all()
            else effective_rank(torch.linalg.eigvalsh(torch.cov(f.T)).numpy())
        )
    # Eq. 1's trivial fixed point is W -> 0; the normalised loss is blind to scale (weight
    # decay shrinks W harmlessly), so there collapse means all variance on one line
    collapsed = rel_var < COLLAPSED_BELOW if cfg.loss == "l2" else not erank >= COLLAPSED_ERANK
    return TianRun(
        cfg, tuple(steps), tuple(align), rel_var, nstd, erank, bool(collapsed),
        float(loss.detach()), tuple(trf),
    )  # fmt: skip


def run_seeds(cfg: TianConfig, seeds: Iterable[int]) -> list[TianRun]:
    """:func:`run` of ``cfg`` once per seed (everything else unchanged)."""
    return [run(replace(cfg, seed=int(s))) for s in seeds]
