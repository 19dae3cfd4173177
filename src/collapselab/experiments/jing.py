"""Jing et al. (2022), "Understanding Dimensional Collapse in Contrastive Self-supervised
Learning" (ICLR 2022, arXiv:2110.09348), reproduced at small scale.

Three results of the paper, each a function returning typed records:

- **Strong augmentation** (their Lemma 1 and Theorem 1): a linear model
  ``z = W x`` trained by InfoNCE. For their Euclidean InfoNCE (Eq. 1, logits
  ``-||z_i - z'_j||^2 / 2``) the gradient is exactly ``dL/dW = W X`` with
  ``X = Sigma_1 - Sigma_0`` (:func:`jing_gradient_closed_form`): ``Sigma_1`` the
  ``(1 - alpha_ii)``-weighted covariance of positive-pair differences (the augmentation),
  ``Sigma_0`` the ``alpha_ij``-weighted covariance of negative-pair differences (the
  data). Gradient flow ``dW/dt = -W X`` shrinks ``W`` along the eigenvectors of ``X``
  with positive eigenvalue: directions where the augmentation varies more than the data.
  :func:`linear_contrastive` trains the model and returns the embedding spectrum.
- **Implicit regularisation** (their Theorem 2): a two-layer linear network
  ``z = W2 W1 x`` from a small initialisation collapses even under weak augmentation,
  where the single-layer model does not (:func:`linear_contrastive` with ``layers=2``).
- **Projector and DirectCLR**: on a real data set, SimCLR's InfoNCE on the
  representation itself (no projector), through a linear projector, through the usual
  2-layer MLP, and DirectCLR (InfoNCE on the first ``d0`` representation dimensions, no
  projector); :func:`projector_study` returns, for each, the spectrum of the
  representation, that of the embedding the loss sees (the projector's output) and the
  linear probe accuracy.

Three InfoNCE forms train the linear models: collapselab's
:func:`~collapselab.losses.nt_xent` (SimCLR's normalised form, the one the paper's
ImageNet experiments train), the Euclidean form of the paper's analysis
(:func:`euclidean_info_nce`), and the raw dot-product form of the authors' own toy tasks
(:func:`dot_info_nce`, ``logits = z1 z2^T / tau`` with ``tau = 0.1``, no normalisation;
``toy_task/case_1.py`` and ``case_2.py`` of their DirectCLR repository). :data:`AUTHORS_CASE1`
and :data:`AUTHORS_CASE2` are those two toy settings.

On real data the projector study measures both the representation ``h`` (what DirectCLR
is about) and the embedding ``z = head(h)`` that the loss sees (what the paper's Fig. 2
shows collapsing).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from collapselab.data import load_dataset
from collapselab.data.augment import default_augment, two_views
from collapselab.errors import ConfigError
from collapselab.losses import nt_xent
from collapselab.methods.simclr import SimCLRConfig
from collapselab.metrics import compute_metrics
from collapselab.models import MLPHead
from collapselab.models.encoders import MLPEncoder
from collapselab.train.evaluate import linear_probe_accuracy

#: a direction counts as collapsed when its singular value is below this fraction of the
#: largest (the paper's figures show collapsed singular values 3-10 decades down; 1e-3 is
#: far above float64 round-off and far below any direction the data keeps)
COLLAPSE_RTOL = 1e-3

LossName = Literal["nt-xent", "euclidean", "dot"]
#: what each loss is called in tables
LOSS_LABELS: dict[str, str] = {
    "nt-xent": "NT-Xent (cosine)",
    "euclidean": "Euclidean InfoNCE (Eq. 1)",
    "dot": "dot-product InfoNCE (authors' toy)",
}


def euclidean_info_nce(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Jing et al. Eq. 1: InfoNCE with logits ``-||z1_i - z2_j||^2 / 2``, mean over i.

    Args:
        z1: first view, (N, d).
        z2: second view, (N, d); row i is the positive of ``z1[i]``, the other rows its
            negatives.
    """
    logits = -0.5 * torch.cdist(z1, z2).pow(2)  # (N, N)
    return F.cross_entropy(logits, torch.arange(z1.shape[0], device=z1.device))


def dot_info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """The InfoNCE of the authors' toy tasks: logits ``z1 z2^T / tau`` (no normalisation),
    cross-entropy of each row of ``z1`` against its positive, mean over rows.

    Args:
        z1: first view, (N, d).
        z2: second view, (N, d); row i is the positive of ``z1[i]``.
        temperature: tau (the authors use 0.1).
    """
    logits = z1 @ z2.T / temperature  # (N, N)
    return F.cross_entropy(logits, torch.arange(z1.shape[0], device=z1.device))


def jing_gradient_closed_form(w: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Lemma 1 of Jing et al.: ``dL/dW = W (Sigma_1 - Sigma_0)`` for ``z = W x``.

    With ``alpha_ij = softmax_j(-||W(x1_i - x2_j)||^2 / 2)`` and ``d_ij = x1_i - x2_j``:
    ``Sigma_1 = (1/N) sum_i (1 - alpha_ii) d_ii d_ii^T``,
    ``Sigma_0 = (1/N) sum_i sum_{j != i} alpha_ij d_ij d_ij^T`` (the 1/N of the mean loss).

    Args:
        w: (k, D) weights.
        x1, x2: (N, D) inputs of the two views.

    Returns:
        (k, D), the gradient of :func:`euclidean_info_nce` of ``(x1 W^T, x2 W^T)``.
    """
    n = x1.shape[0]
    diff = x1[:, None, :] - x2[None, :, :]  # (N, N, D): d_ij
    alpha = torch.softmax(-0.5 * (diff @ w.T).pow(2).sum(-1), dim=1)  # (N, N)
    eye = torch.eye(n, dtype=x1.dtype)
    weight = eye * (1 - alpha) - (1 - eye) * alpha  # +(1 - a_ii) on i = j, -a_ij off it
    x_mat = torch.einsum("ij,ijp,ijq->pq", weight, diff, diff) / n  # (D, D) Sigma_1 - Sigma_0
    return w @ x_mat


@dataclass(frozen=True)
class LinearConfig:
    """A linear contrastive model on Gaussian data with additive-noise augmentation."""

    dim: int = 16  # input and embedding width
    layers: int = 1  # 1: z = W x (Theorem 1); 2: z = W2 W1 x (Theorem 2)
    init_scale: float = 1.0  # entries ~ N(0, init_scale^2 / dim); Theorem 2 needs it small
    #: data std per direction: data_std_top ... data_std_top * data_decay (log-spaced)
    data_std_top: float = 1.0
    data_decay: float = 1.0  # 1: isotropic data
    noise: float = 0.2  # augmentation noise std in every direction ("weak")
    strong_noise: float = 2.0  # noise std of the strongly augmented directions
    strong_dims: int = 0  # number of directions (the last ones) with strong_noise
    loss: LossName = "nt-xent"
    temperature: float = 0.5  # nt-xent and dot
    lr: float = 0.5  # plain SGD: the discrete gradient flow of the paper's analysis
    steps: int = 2000
    batch: int = 128
    eval_rows: int = 2000  # fresh clean inputs whose embedding spectrum is reported
    bias: bool = False  # a bias on the (single) layer, as the authors' case 1 nn.Linear
    #: None: a fresh batch each step; else a fixed training set of this many rows, each
    #: batch drawn from it without replacement (the authors: 10000)
    train_rows: int | None = None
    #: normal: entries ~ N(0, init_scale^2 / dim); nn-linear: torch's nn.Linear default,
    #: weights and bias ~ U(-1/sqrt(dim), 1/sqrt(dim)) (the authors' case 1); exp-decay:
    #: each layer U diag(exp(-k * init_decay)) V^T, k = 0..dim-1, with U, V from the SVD
    #: of a U[0, 1) matrix (the authors' case 2)
    init: Literal["normal", "nn-linear", "exp-decay"] = "normal"
    init_decay: float = 0.35
    seed: int = 0


#: the authors' toy case 1 (strong augmentation): nn.Linear(16, 16) with bias, noise of
#: std 1.5 on the last 8 of 16 dims only, raw dot-product InfoNCE (tau 0.1), SGD lr 0.001,
#: batch 128 from a fixed set of 10000, 10000 steps (their README's ``--noise 1.5``)
AUTHORS_CASE1 = LinearConfig(
    noise=0.0, strong_noise=1.5, strong_dims=8, loss="dot", temperature=0.1, lr=0.001,
    steps=10000, batch=128, eval_rows=1000, bias=True, train_rows=10000, init="nn-linear",
)  # fmt: skip
#: the authors' toy case 2 (implicit regularisation): two 16 x 16 linear layers without
#: bias, singular values exp(-0.35 k) at init, noise 0.001 on every dim, dot-product
#: InfoNCE (tau 0.1), SGD lr 0.01, batch 128 from a fixed set of 10000, 10000 steps
AUTHORS_CASE2 = LinearConfig(
    layers=2, noise=0.001, loss="dot", temperature=0.1, lr=0.01, steps=10000, batch=128,
    eval_rows=1000, train_rows=10000, init="exp-decay",
)  # fmt: skip


@dataclass(frozen=True)
class Spectrum:
    """Sorted singular values of a centred embedding matrix and what they say.

    Attributes:
        name: the run.
        singular_values: descending, of the centred ``(N, d)`` matrix.
        effective_rank: collapselab's canonical effective rank (variance entropy).
        numerical_rank: collapselab's numerical rank (round-off tolerance).
        collapsed_dims: directions with singular value below ``COLLAPSE_RTOL`` of the top.
        linear_accuracy: linear-probe accuracy on the test split, when labels exist.
        loss: final training loss.
    """

    name: str
    singular_values: tuple[float, ...]
    effective_rank: float
    numerical_rank: int
    collapsed_dims: int
    linear_accuracy: float | None = None
    loss: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def spectrum_of(name: str, z: torch.Tensor | np.ndarray, **kw: Any) -> Spectrum:
    """:class:`Spectrum` of an ``(N, d)`` embedding matrix, from :func:`compute_metrics`."""
    m = compute_metrics(z)
    sv = np.sqrt(np.clip(m.eigenvalues, 0.0, None) * m.n)  # centred singular values
    top = float(sv[0]) if sv.size else 0.0
    collapsed = int(np.count_nonzero(sv < COLLAPSE_RTOL * top)) if top > 0 else m.d
    return Spectrum(
        name, tuple(float(s) for s in sv), float(m.effective_rank), int(m.numerical_rank),
        collapsed, **kw,
    )  # fmt: skip


def _loss(cfg: LinearConfig, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    if cfg.loss == "euclidean":
        return euclidean_info_nce(z1, z2)
    if cfg.loss == "dot":
        return dot_info_nce(z1, z2, temperature=cfg.temperature)
    return nt_xent(z1, z2, temperature=cfg.temperature)


def _init_layer(cfg: LinearConfig, g: torch.Generator) -> torch.Tensor:
    d, dt = cfg.dim, torch.float64
    if cfg.init == "normal":
        return cfg.init_scale * torch.randn(d, d, dtype=dt, generator=g) / d**0.5
    if cfg.init == "nn-linear":
        return (2 * torch.rand(d, d, dtype=dt, generator=g) - 1) / d**0.5
    u, _, vt = torch.linalg.svd(torch.rand(d, d, dtype=dt, generator=g))
    s = torch.exp(-cfg.init_decay * torch.arange(d, dtype=dt))  # (d,)
    return (u * s) @ vt  # (d, d)


def linear_contrastive(cfg: LinearConfig, name: str = "linear") -> Spectrum:
    """Train ``z = W_L ... W_1 x (+ b)`` by InfoNCE on two noisy views of Gaussian data.

    Data ``x ~ N(0, diag(s^2))``; each view adds ``N(0, diag(sigma^2))`` noise with
    ``sigma = cfg.noise``, except the last ``cfg.strong_dims`` directions where it is
    ``cfg.strong_noise``. Float64, plain SGD, a fresh batch each step (or batches from a
    fixed set of ``cfg.train_rows``).

    Returns:
        The spectrum of the embeddings of ``cfg.eval_rows`` fresh clean inputs; ``extra``
        holds the singular values of the end-to-end weight matrix and the loss's name.
    """
    g = torch.Generator().manual_seed(cfg.seed)
    dt, d = torch.float64, cfg.dim
    std = cfg.data_std_top * torch.logspace(0, np.log10(cfg.data_decay), d, dtype=dt)  # (d,)
    noise = torch.full((d,), cfg.noise, dtype=dt)
    if cfg.strong_dims:
        noise[d - cfg.strong_dims :] = cfg.strong_noise
    ws = [_init_layer(cfg, g).requires_grad_() for _ in range(cfg.layers)]
    # nn.Linear's bias init, U(-1/sqrt(d), 1/sqrt(d)); the spectrum is of centred z, which
    # a bias does not move, but it is trained as in the authors' case 1 (drawn only then,
    # so the runs without a bias keep their random stream)
    b = (
        ((2 * torch.rand(d, dtype=dt, generator=g) - 1) / d**0.5).requires_grad_()
        if cfg.bias else torch.zeros(d, dtype=dt)
    )  # fmt: skip
    opt = torch.optim.SGD([*ws, b] if cfg.bias else ws, lr=cfg.lr)
    pool = (
        None if cfg.train_rows is None
        else std * torch.randn(cfg.train_rows, d, dtype=dt, generator=g)  # (R, d)
    )  # fmt: skip

    def end_to_end() -> torch.Tensor:
        w = ws[0]
        for v in ws[1:]:
            w = v @ w  # (d, d)
        return w

    def embed(x: torch.Tensor) -> torch.Tensor:
        return x @ end_to_end().T + b  # (B, d)

    loss = torch.zeros(())
    for _ in range(cfg.steps):
        if pool is None:
            x = std * torch.randn(cfg.batch, d, dtype=dt, generator=g)  # (B, d)
        else:
            x = pool[torch.randperm(pool.shape[0], generator=g)[: cfg.batch]]  # (B, d)
        x1 = x + noise * torch.randn(cfg.batch, d, dtype=dt, generator=g)
        x2 = x + noise * torch.randn(cfg.batch, d, dtype=dt, generator=g)
        loss = _loss(cfg, embed(x1), embed(x2))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = std * torch.randn(cfg.eval_rows, d, dtype=dt, generator=g)
        w_sv = torch.linalg.svdvals(end_to_end()).tolist()
        return spectrum_of(
            name, embed(x), loss=float(loss.detach()),
            extra={"weight_singular_values": w_sv, "loss_name": LOSS_LABELS[cfg.loss]},
        )  # fmt: skip


# --------------------------------------------------------------------------- real data


@dataclass(frozen=True)
class ProjectorConfig:
    """SimCLR variants and DirectCLR on a small image data set (Jing et al., scaled down)."""

    data: str = "digits"
    hidden: tuple[int, ...] = (256, 64)  # MLPEncoder widths; the last is the representation
    d0: int = 16  # DirectCLR: InfoNCE on the first d0 representation dims (paper: 360/2048)
    temperature: float = SimCLRConfig.temperature  # collapselab's SimCLR default
    lr: float = SimCLRConfig.lr  # AdamW, collapselab's SimCLR default
    weight_decay: float = 1e-4
    epochs: int = 40
    batch: int = 256
    train_rows: int | None = None  # subsample the training split (Fashion-MNIST)
    seed: int = 0


#: the heads compared: representation h -> what the InfoNCE sees
HEADS = ("no-projector", "linear-projector", "mlp-projector", "directclr")


def _head(kind: str, width: int, d0: int) -> nn.Module:
    if kind == "no-projector":
        return nn.Identity()
    if kind == "linear-projector":
        return MLPHead(width, width, width, num_layers=1, batch_norm=False)
    if kind == "mlp-projector":
        return MLPHead(width, 4 * width, width, num_layers=2)
    if kind == "directclr":
        return _FirstDims(d0)
    raise ConfigError(f"unknown head {kind!r}; choose one of {', '.join(HEADS)}")


class _FirstDims(nn.Module):
    """DirectCLR's fixed "projector": the first ``d0`` coordinates, ``(B, d) -> (B, d0)``."""

    def __init__(self, d0: int) -> None:
        super().__init__()
        self.d0 = d0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h[:, : self.d0]


@dataclass(frozen=True)
class ProjectorRun:
    """One head of :func:`projector_study`.

    Attributes:
        name: the head (:data:`HEADS`).
        representation: spectrum of the encoder's output ``h`` on the test split, with the
            linear-probe accuracy (train split -> test split).
        embedding: spectrum of ``z = head(h)`` on the test split, what the InfoNCE sees
            (the paper's Fig. 2 is of this): ``h`` itself without a projector, its first
            ``d0`` dims for DirectCLR.
    """

    name: str
    representation: Spectrum
    embedding: Spectrum

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def projector_study(cfg: ProjectorConfig, heads: tuple[str, ...] = HEADS) -> list[ProjectorRun]:
    """Train one encoder per head with SimCLR's NT-Xent; report representation and embedding.

    Every run shares the seed (same encoder initialisation and the same views).
    """
    data = load_dataset(cfg.data)
    x_tr, y_tr = data.x_train, data.y_train
    if cfg.train_rows is not None:
        x_tr, y_tr = x_tr[: cfg.train_rows], y_tr[: cfg.train_rows]
    augment = default_augment(data)
    in_dim = int(np.prod(data.input_shape))
    out = []
    for kind in heads:
        torch.manual_seed(cfg.seed)
        encoder = MLPEncoder(in_dim, cfg.hidden)
        head = _head(kind, encoder.out_dim, cfg.d0)
        model = nn.Sequential(encoder, head)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        g = torch.Generator().manual_seed(cfg.seed)
        loss = torch.zeros(())
        for _ in range(cfg.epochs):
            perm = torch.randperm(x_tr.shape[0], generator=g)
            for s in range(0, x_tr.shape[0] - cfg.batch + 1, cfg.batch):
                v1, v2 = two_views(x_tr[perm[s : s + cfg.batch]], augment, g)
                loss = nt_xent(model(v1), model(v2), temperature=cfg.temperature)
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            h_tr = encoder(x_tr)
            h_te = encoder(data.x_test)
            z_te = head(h_te).double().numpy()
        h_tr_np, h_te_np = h_tr.double().numpy(), h_te.double().numpy()
        acc = linear_probe_accuracy(h_tr_np, y_tr.numpy(), h_te_np, data.y_test.numpy())
        last = float(loss.detach())
        out.append(ProjectorRun(
            kind, spectrum_of(kind, h_te_np, linear_accuracy=acc, loss=last),
            spectrum_of(kind, z_te, loss=last),
        ))  # fmt: skip
    return out
