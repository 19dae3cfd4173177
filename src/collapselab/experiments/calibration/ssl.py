"""Self-supervised and supervised cases of the calibration corpus (groups ``ssl-digits``,
``ssl-fashion``, ``supervised``).

Every run trains a small network with one of :data:`collapselab.methods.METHODS` (or with
cross-entropy) for a fixed number of steps, a cosine schedule over its last snapshot, and
keeps the test-set representation (``method.embed``, encoder output) and projector output
(``method.project``) at a few snapshot steps, plus step 0 (the untrained network), which
is every later snapshot's ``baseline`` (the run's own start). The training loop is the
trainer's (:mod:`collapselab.train.trainer`) in compact form: AdamW with the method's
``lr`` / ``weight_decay`` and parameter groups, linear warm-up over 5% of the steps then
cosine to 0, two augmented views per batch, ``after_optimizer_step``; embeddings are taken
in evaluation mode, as the trainer's final evaluation does. At step 0 the batch-norm
running statistics are still at their initial values (mean 0, variance 1: the identity),
so the untrained network's outputs share a large common component (relative variance
0.02 on digits, mean cosine 0.98) while keeping the classes apart (kNN 0.958): a healthy
case, and a baseline whose relative variance every trained snapshot exceeds.

Runs (digits: the 8x8 scikit-learn digits, the default small CNN, batch 128; Fashion-MNIST:
a fixed 10000-image training subset and 2000-image test subset, the MLP encoder, batch
256 -- a CNN on 28x28 images costs ~10x more per step and per embedding on one core):

- every healthy method on digits, snapshots at 30, 100, 300 steps;
- the collapse ablations (``byol-no-predictor``, ``simsiam-no-stopgrad``, ``alignment``,
  ``variance``) on digits at 10, 20, 30, 60, 130, 300 steps (onset and end state);
- SimCLR with very strong augmentation, with inputs projected on their top-4 principal
  directions, with temperature 0.01; VICReg without its covariance term (Jing et al.
  2022's dimensional collapse is looked for here);
- Fashion-MNIST: SimCLR and VICReg (healthy), alignment and BYOL without predictor;
- supervised: the same encoder plus a linear classifier trained with cross-entropy to
  near-zero training loss (neural collapse), on digits and Fashion-MNIST.

Labels (the downstream outcome; never from :mod:`collapselab.diagnose` nor from a
quantity the verdict draws a line on):

- downstream quality ``q`` is the kNN accuracy (k = 20, cosine) of the test matrix
  (the representation, or the projector output for a projector case) against the
  training matrix (:func:`collapselab.train.evaluate.evaluate_features`); the healthy
  reference ``ref`` is the better of SimCLR's representation on the same data at the
  end of its run and the raw pixels (digits: SimCLR 0.980, pixels 0.969; Fashion-MNIST
  subset with the MLP: SimCLR 0.792, pixels 0.811, an untrained MLP 0.799);
- a run "collapses later" when the kNN of its start is at least ``0.9 ref`` and that of
  its last snapshot below (it loses a quality it had);
- ``hurt`` when ``q < 0.9 ref``, or, in a run that collapses later, when ``q`` already
  fell by 10% or more from the run's start (collapse under way);
- ``ambiguous`` for a snapshot of a run that collapses later whose quality is still
  intact (an early warning is as right as none);
- ``healthy`` otherwise;
- the structural kind (second axis) comes from the objective, never from the matrix:
  ``complete`` for the objectives whose optimum is one point (``alignment``,
  ``variance``, SimSiam without stop-gradient, BYOL without predictor), ``dimensional``
  for inputs projected on their top-4 principal directions (rank 4 by construction),
  none otherwise;
- supervised features (cross-entropy to near-zero training loss): ``healthy`` when the
  test accuracy is at least 0.9 x the raw-pixel kNN, with ``classes`` set and without
  (neural collapse, rank ``C - 1`` by design, is the healthy end state of supervised
  training, Papyan et al. 2020).

Trained snapshots are cached as ``.npz`` files under ``cache`` (default
``benchmarks/calibration/cache/ssl/``), one per run, named by a hash of every setting of
the run and :data:`CACHE_VERSION`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from collapselab._atomic import atomic_open
from collapselab.data import Dataset, default_augment, load_dataset
from collapselab.experiments.calibration import Case, Label
from collapselab.methods import build_method
from collapselab.models import build_encoder
from collapselab.train.evaluate import evaluate_features, knn_accuracy

#: bump when training or evaluation code changes what a cached run holds
CACHE_VERSION = 1
_REPO = Path(__file__).resolve().parents[4]
DEFAULT_CACHE = (_REPO if (_REPO / "benchmarks").is_dir() else Path()) / (
    "benchmarks/calibration/cache/ssl"
)

HEALTHY = ("simclr", "moco", "byol", "simsiam", "barlow", "vicreg", "dino")
ABLATIONS = ("byol-no-predictor", "simsiam-no-stopgrad", "alignment", "variance")
HEALTHY_STEPS = (30, 100, 300)
ONSET_STEPS = (10, 20, 30, 60, 130, 300)

HEALTHY_FRACTION = 0.9  # q >= 0.9 ref: healthy
DROP = 0.9  # q <= 0.9 start: quality dropped noticeably
#: the objectives whose optimum is one point: their collapse is complete by construction
POINT_OPTIMUM = ("alignment", "variance", "simsiam-no-stopgrad", "byol-no-predictor")

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Run:
    """One training run and the snapshot steps kept (step 0 is always kept)."""

    tag: str  # name in the case ids
    data: str  # "digits" or "fashion-mnist"
    method: str  # registry name, or "supervised"
    steps: tuple[int, ...]
    method_options: tuple[tuple[str, Any], ...] = ()
    augment_options: tuple[tuple[str, Any], ...] = ()
    input_rank: int | None = None  # project inputs on their top principal directions
    encoder: str = "auto"
    batch_size: int = 128
    train_subset: int | None = None
    test_subset: int | None = None
    seed: int = 0
    fast: bool = False

    @property
    def group(self) -> str:
        if self.method == "supervised":
            return "supervised"
        return "ssl-digits" if self.data == "digits" else "ssl-fashion"

    def key(self) -> str:
        d = dataclasses.asdict(self)
        d.pop("fast")
        d["version"] = CACHE_VERSION
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return f"{self.data}-{self.tag}-{hashlib.sha1(blob).hexdigest()[:12]}"


_FASHION: dict[str, Any] = {
    "encoder": "mlp",
    "batch_size": 256,
    "train_subset": 10000,
    "test_subset": 2000,
}
STRONG_AUGMENT = (
    ("crop_scale", (0.08, 0.3)), ("max_rotation", 45.0), ("max_translate", 0.25),
    ("noise_std", 0.3), ("erase_prob", 1.0), ("erase_scale", (0.2, 0.4)),
)  # fmt: skip


def runs(fast: bool = False) -> list[Run]:
    """The runs of the corpus (``fast``: the small digits subset only)."""
    out = [
        Run("fast-simclr", "digits", "simclr", (20, 60), fast=True),
        Run("fast-alignment", "digits", "alignment", (10, 20, 60), fast=True),
        Run("cnn", "digits", "supervised", (300,), fast=True),
    ]
    if fast:
        return out
    out += [Run(m, "digits", m, HEALTHY_STEPS) for m in HEALTHY]
    out += [Run(m, "digits", m, ONSET_STEPS) for m in ABLATIONS]
    out += [
        Run("simclr-strong-aug", "digits", "simclr", (100, 300), augment_options=STRONG_AUGMENT),
        Run("simclr-rank4-input", "digits", "simclr", (100, 300), input_rank=4),
        Run("simclr-temp0.01", "digits", "simclr", (100, 300), (("temperature", 0.01),)),
        Run("vicreg-no-cov", "digits", "vicreg", (100, 300), (("covariance_weight", 0.0),)),
    ]
    out += [Run(m, "fashion-mnist", m, (100, 300), **_FASHION) for m in ("simclr", "vicreg")]
    out += [
        Run(m, "fashion-mnist", m, (20, 60, 300), **_FASHION)
        for m in ("alignment", "byol-no-predictor")
    ]
    out.append(Run("mlp", "fashion-mnist", "supervised", (600,), **_FASHION))
    return out


# --------------------------------------------------------------------------- training


@lru_cache(maxsize=4)
def _data(name: str, train_subset: int | None, test_subset: int | None) -> Dataset:
    data = load_dataset(name)
    if train_subset is None and test_subset is None:
        return data
    g = np.random.default_rng(0)
    tr = np.sort(g.permutation(data.x_train.shape[0])[: train_subset or None])
    te = np.sort(g.permutation(data.x_test.shape[0])[: test_subset or None])
    t = torch.from_numpy
    return Dataset(data.name, data.x_train[t(tr)], data.y_train[t(tr)],
                   data.x_test[t(te)], data.y_test[t(te)], data.num_classes)  # fmt: skip


class _LowRankInput(nn.Module):
    """Projects inputs on the top ``rank`` principal directions of the training pixels
    (after augmentation: a fixed first layer), then runs ``encoder``."""

    mean: torch.Tensor
    basis: torch.Tensor

    def __init__(self, encoder: nn.Module, x_train: torch.Tensor, rank: int) -> None:
        super().__init__()
        flat = x_train.reshape(x_train.shape[0], -1).double()
        mean = flat.mean(0)
        _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
        self.register_buffer("mean", mean.float())
        self.register_buffer("basis", vt[:rank].float())  # (rank, D)
        self.encoder = encoder
        self.out_dim = int(getattr(encoder, "out_dim"))  # noqa: B009

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1) - self.mean
        low = (flat @ self.basis.T) @ self.basis + self.mean
        out: torch.Tensor = self.encoder(low.reshape(x.shape))
        return out


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@torch.no_grad()
def _apply(fn: Any, x: torch.Tensor, batch: int = 1024) -> F32:
    return torch.cat([fn(x[s : s + batch]) for s in range(0, x.shape[0], batch)]).numpy()


def _train(run: Run) -> dict[str, NDArray[Any]]:
    """Train ``run``; returns ``rep_train_S``, ``rep_test_S``, ``proj_test_S`` (and
    ``logits_*`` for supervised runs) for every snapshot step ``S`` (0 included)."""
    data = _data(run.data, run.train_subset, run.test_subset)
    torch.manual_seed(run.seed)
    encoder: nn.Module = build_encoder(run.encoder, data.input_shape)
    if run.input_rank is not None:
        encoder = _LowRankInput(encoder, data.x_train, run.input_rank)
    supervised = run.method == "supervised"
    model: nn.Module
    embed: Callable[[torch.Tensor], torch.Tensor]
    project: Callable[[torch.Tensor], torch.Tensor]
    groups: list[dict[str, Any]]
    if supervised:
        head = nn.Linear(int(getattr(encoder, "out_dim")), data.num_classes)  # noqa: B009
        model = nn.Sequential(encoder, head)
        params = list(model.parameters())
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": 5e-4},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]  # fmt: skip
        lr = 2e-3
        embed, project = encoder, model
    else:
        method = build_method(run.method, encoder, dict(run.method_options))
        model = method
        groups = method.param_groups(method.config.weight_decay)
        lr = method.config.lr
        embed, project = method.embed, method.project
        base = default_augment(data)
        augment = dataclasses.replace(base, **dict(run.augment_options))  # type: ignore[arg-type]
    for g in groups:
        g["base_lr"] = lr * g.pop("lr_scale", 1.0)
        g["lr"] = g["base_lr"]
    optimizer = torch.optim.AdamW(groups, lr=lr)
    g_data = torch.Generator().manual_seed(run.seed)
    g_aug = torch.Generator().manual_seed(run.seed + 1)
    n = data.x_train.shape[0]
    per_epoch = n // run.batch_size
    total = max(run.steps)
    warmup = max(1, int(0.05 * total))
    out: dict[str, NDArray[Any]] = {}

    def snapshot(step: int) -> None:
        model.eval()
        out[f"rep_train_{step}"] = _apply(embed, data.x_train)
        out[f"rep_test_{step}"] = _apply(embed, data.x_test)
        out[f"proj_test_{step}"] = _apply(project, data.x_test)
        if not supervised:
            out[f"proj_train_{step}"] = _apply(project, data.x_train)
        model.train()

    snapshot(0)
    perm = torch.empty(0, dtype=torch.int64)
    model.train()
    for step in range(total):
        i = step % per_epoch
        if i == 0:
            perm = torch.randperm(n, generator=g_data)
        x = data.x_train[perm[i * run.batch_size : (i + 1) * run.batch_size]]
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * (1.0 if g.get("fixed_lr") else _lr_factor(step, total, warmup))
        if supervised:
            y = data.y_train[perm[i * run.batch_size : (i + 1) * run.batch_size]]
            loss = nn.functional.cross_entropy(model(x), y)
        else:
            loss = method(augment(x, g_aug), augment(x, g_aug)).loss
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"{run.tag}: loss {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not supervised:
            method.after_optimizer_step(step + 1, total)
        if step + 1 in run.steps:
            snapshot(step + 1)
    if supervised:
        out["train_loss"] = np.array(_train_loss(model, data), dtype=np.float64)
    return out


@torch.no_grad()
def _train_loss(model: nn.Module, data: Dataset) -> float:
    model.eval()
    logits = torch.from_numpy(_apply(model, data.x_train))
    return float(nn.functional.cross_entropy(logits, data.y_train))


def _quality(rep_train: F32, rep_test: F32, data: Dataset, linear: bool = True) -> dict[str, float]:
    if not linear:
        return {"knn": knn_accuracy(rep_train.astype(np.float64), data.y_train.numpy(),
                                    rep_test.astype(np.float64), data.y_test.numpy())}  # fmt: skip
    tr, te = rep_train.astype(np.float64), rep_test.astype(np.float64)
    ev = evaluate_features(tr, data.y_train, te, data.y_test)
    return {"knn": ev.knn_accuracy, "linear": ev.linear_accuracy,
            "knn_5_per_class": ev.knn_accuracy_5_per_class}  # fmt: skip


def _load_run(run: Run, cache: Path) -> dict[str, NDArray[Any]]:
    """The run's snapshots and their quality, from ``cache`` or trained now."""
    path = cache / f"{run.key()}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    out = _train(run)
    data = _data(run.data, run.train_subset, run.test_subset)
    for s in (0, *run.steps):
        q = _quality(out[f"rep_train_{s}"], out[f"rep_test_{s}"], data)
        pknn = float("nan")
        if f"proj_train_{s}" in out:
            pq = _quality(out[f"proj_train_{s}"], out[f"proj_test_{s}"], data, linear=False)
            pknn = pq["knn"]
        out[f"quality_{s}"] = np.array([q["knn"], q["linear"], q["knn_5_per_class"], pknn])
    if run.method == "supervised":
        s = max(run.steps)
        logits = out[f"proj_test_{s}"]
        out["test_accuracy"] = np.array(float((logits.argmax(1) == data.y_test.numpy()).mean()))
    out = {k: v for k, v in out.items() if "_train_" not in k}  # not needed now
    with atomic_open(path, "wb", fsync=False) as fh:
        np.savez_compressed(fh, **out)  # type: ignore[arg-type]
    return out


@lru_cache(maxsize=4)
def _raw_knn(name: str, train_subset: int | None, test_subset: int | None) -> dict[str, float]:
    data = _data(name, train_subset, test_subset)
    flat = [t.reshape(t.shape[0], -1).numpy() for t in (data.x_train, data.x_test)]
    return _quality(flat[0], flat[1], data, linear=False)


# --------------------------------------------------------------------------- labels


def structure(z: NDArray[Any], top: int = 9) -> dict[str, float]:
    """``spread`` (RMS distance to the mean / norm of the mean), ``dims99``, ``top_share``
    (share of the centred variance in the ``top`` largest directions) and ``erank``
    (exp of the entropy of the normalised centred eigenvalues, Roy & Vetterli 2007)."""
    z64 = np.asarray(z, dtype=np.float64)
    mu = z64.mean(0)
    c = z64 - mu
    eig = np.clip(np.linalg.eigvalsh(c.T @ c / z64.shape[0])[::-1], 0.0, None)
    total = float(eig.sum())
    dims99 = int(np.searchsorted(np.cumsum(eig) / total, 0.99) + 1) if total > 0 else 0
    spread = math.sqrt(total) / max(float(np.linalg.norm(mu)), 1e-300)
    share = float(eig[:top].sum() / total) if total > 0 else 1.0
    p = eig[eig > 0] / total if total > 0 else np.ones(1)
    erank = float(np.exp(-(p * np.log(p)).sum()))
    return {"spread": spread, "dims99": float(dims99), "top_share": share, "erank": erank}


def _fmt(q: float) -> str:
    return f"{q:.3f}"


#: known misses of any geometric verdict, with the reason (docs/verdict.md)
BLIND_SPOTS = {
    "alignment-repr-10": (
        "onset at step 10: kNN 0.867 just under the 0.874 line, while the spectrum "
        "(effective rank 0.03 of the reference, 99% in 34% of the directions, spread 5x the "
        "start's) still looks like a healthy run's (fashion BYOL-no-predictor: 0.03, 22%)"),
}


def _label(q: float, q0: float, ref: float, onset: bool, what: str = "kNN") -> tuple[Label, str]:
    """The outcome of a matrix of downstream quality ``q`` (its run started at ``q0``);
    ``onset``: a snapshot of a run that collapses later."""
    nums = f"{what} {_fmt(q)} vs {_fmt(ref)} healthy ref (start {_fmt(q0)})"
    if q < HEALTHY_FRACTION * ref:
        return "hurt", f"{nums}: {what} < 0.9 x ref"
    if onset and q <= DROP * q0:
        return "hurt", f"{nums}: collapse under way, {what} down >= 10% from the start"
    if onset:
        return "ambiguous", (f"{nums}: quality intact in a run that collapses later (an early "
                             "warning is as right as none)")  # fmt: skip
    return "healthy", f"{nums}: {what} >= 0.9 x ref"


def _structure(run: Run) -> str | None:
    """The structural kind of a run's collapse, known from its objective or inputs."""
    if run.method in POINT_OPTIMUM:
        return "complete"
    return "dimensional" if run.input_rank is not None and run.input_rank <= 4 else None


def _f32(a: NDArray[Any]) -> F32:
    return np.ascontiguousarray(a, dtype=np.float32)


def _run_cases(run: Run, res: dict[str, NDArray[Any]], ref: float) -> Iterator[Case]:
    data = _data(run.data, run.train_subset, run.test_subset)
    raw = _raw_knn(run.data, run.train_subset, run.test_subset)["knn"]
    prefix = f"{run.group}/{run.data + '-' if run.group == 'supervised' else ''}{run.tag}"
    if run.method == "supervised":
        s = max(run.steps)
        z = _f32(res[f"rep_test_{s}"])
        acc = float(res["test_accuracy"])
        qual = {"test_accuracy": acc, "train_loss": float(res["train_loss"]),
                "knn": float(res[f"quality_{s}"][0]), "linear": float(res[f"quality_{s}"][1]),
                "raw_knn": raw}  # fmt: skip
        c = data.num_classes
        st = structure(z, top=c - 1)
        base = _f32(res["rep_test_0"])
        nc = (f"{st['top_share']:.1%} of the variance in the top C-1 = {c - 1} of {z.shape[1]} "
              f"dims, dims99 {int(st['dims99'])}")  # fmt: skip
        label: Label = "healthy" if acc >= HEALTHY_FRACTION * raw else "hurt"
        why = (f"test accuracy {acc:.3f} (raw-pixel kNN {raw:.3f}), train loss "
               f"{qual['train_loss']:.2g}; neural collapse: {nc}")  # fmt: skip
        yield Case(f"{prefix}-classes", "supervised", label, why, z, base, classes=c,
                   kind="representation", quality=qual, fast=run.fast)  # fmt: skip
        yield Case(f"{prefix}-noclasses", "supervised", label, f"classes not given; {why}", z,
                   base, kind="representation", quality=qual, fast=run.fast)  # fmt: skip
        return
    q0, p0 = float(res["quality_0"][0]), float(res["quality_0"][3])
    last = max(run.steps)
    # "a run that collapses later": its last snapshot lost quality (byol-no-predictor,
    # an ablation, keeps its quality on digits and is judged like a healthy run)
    collapsing = q0 >= HEALTHY_FRACTION * ref > float(res[f"quality_{last}"][0])
    kind = _structure(run)
    for s in (0, *run.steps):
        if s == 0 and run.tag not in ("simclr", "fast-simclr"):
            continue  # one untrained network per data set is enough
        rep, proj = _f32(res[f"rep_test_{s}"]), _f32(res[f"proj_test_{s}"])
        qv = res[f"quality_{s}"]
        qual = {"knn": float(qv[0]), "linear": float(qv[1]), "knn_5_per_class": float(qv[2]),
                "projector_knn": float(qv[3]), "ref_knn": ref, "raw_knn": raw,
                "start_knn": q0}  # fmt: skip
        onset = collapsing and 0 < s < last
        what = "untrained" if s == 0 else str(s)
        label, why = _label(qual["knn"], q0, ref, onset)
        name = f"{prefix}-repr-{what}"
        spot = BLIND_SPOTS.get(name.split("/", 1)[1].replace("fast-", ""))
        r64 = rep.astype(np.float64)
        if s == 0 and r64.var(0).sum() < 0.05 * (r64**2).sum(1).mean():
            spot = ("a random network before training (batch norm at its initial statistics): "
                    "every row within a few % of one vector, complete by geometry, while "
                    "cosine kNN still finds the classes in the residual")  # fmt: skip
        yield Case(name, run.group, label, why, rep, None if s == 0 else _f32(res["rep_test_0"]),
                   kind="representation", quality=qual, fast=run.fast,
                   structure=kind if label == "hurt" else None, blind_spot=spot)  # fmt: skip
        if s == 0:
            continue  # the untrained projector: the representation's case says it all
        plabel, pwhy = _label(qual["projector_knn"], p0, ref, onset, "projector kNN")
        yield Case(f"{prefix}-proj-{what}", run.group, plabel, pwhy, proj,
                   _f32(res["proj_test_0"]), kind="projector", quality=qual, fast=run.fast,
                   structure=kind if plabel == "hurt" else None)  # fmt: skip


def _reference(run: Run, results: dict[Run, dict[str, NDArray[Any]]]) -> float:
    """The better of the raw pixels' kNN and SimCLR's at the end of its run on the data."""
    raw = _raw_knn(run.data, run.train_subset, run.test_subset)["knn"]
    tag = "fast-simclr" if run.fast else "simclr"
    for other, res in results.items():
        if (other.data, other.tag, other.train_subset) == (run.data, tag, run.train_subset):
            return max(raw, float(res[f"quality_{max(other.steps)}"][0]))
    raise LookupError(f"no SimCLR reference run on {run.data}")


def cases(fast: bool = False, cache: str | Path | None = None) -> Iterator[Case]:
    """The labelled cases (``fast``: the small digits subset, < 40 s from an empty cache).

    Args:
        fast: only the runs marked ``fast`` (digits).
        cache: folder of the cached runs (default ``benchmarks/calibration/cache/ssl``).
    """
    folder = Path(cache) if cache is not None else DEFAULT_CACHE
    results = {run: _load_run(run, folder) for run in runs(fast)}
    for run, res in results.items():
        # the fast runs keep the fast reference so that their labels do not depend on mode
        sup = run.method == "supervised"
        ref = 0.0 if sup else _reference(run, results)
        yield from _run_cases(run, res, ref)


__all__ = ["CACHE_VERSION", "Run", "cases", "runs", "structure"]
