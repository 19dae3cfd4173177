"""Label-free model selection, validated: which unsupervised metric predicts accuracy?

The metrics of :mod:`collapselab.metrics.label_free` (RankMe, LiDAR, alpha-ReQ, the
effective rank, the std of L2-normalised rows, Wang & Isola's uniformity and alignment)
each claim to rank checkpoints without labels. This module trains a sweep of
self-supervised runs (methods x temperature x augmentation strength x projector width x
learning rate) with :func:`collapselab.train.train`, measures every metric on each run's
test-set representation, evaluates it with labels (linear probe, kNN:
:func:`collapselab.train.evaluate.evaluate_features`) and reports Spearman and Kendall rank
correlations with percentile-bootstrap 95% intervals (runs resampled), within each method
and across methods; :func:`validation_table` is the table that
:func:`collapselab.experiments.rank.rank_runs` (``collapselab rank``) reads to order new
checkpoints or embedding files by the best-validated metric.

Conventions:

- Every metric is oriented by its paper's claim (``MetricSpec.sign``: +1 higher is better,
  -1 lower is better); a correlation reported here is that of ``sign * metric`` with
  accuracy, so a negative value means the claimed direction fails.
- Metrics are measured on the test split's representation (encoder output in evaluation
  mode; no labels read). Views for LiDAR and alignment come from the data set's *default*
  augmentation (:func:`collapselab.data.default_augment`, generator seed 0), the same for
  every run, so runs trained with other augmentation strengths are measured alike.
- Runs use the MLP encoder (512-256; a CNN costs ~10x more per step on CPU). Fashion-MNIST
  runs train on the full 60000-image training split; metrics and accuracies use the whole
  10000-image test split, the probes are fitted on a fixed subset of 4000 training images
  (seed 0).
- The unit of the statistics is the setting (:func:`setting_means`: seeds averaged), the
  independent draw of the design; besides the correlations, :func:`regrets` gives the
  accuracy lost by each metric's pick, :func:`noise_floor` how much of the target is signal
  and :func:`power` the design's power to detect a true rho of 0.5.

Each finished run is cached as ``CACHE/<key>/result.json`` (written atomically, so an
interrupted run leaves no entry; its half-trained ``train/`` folder is trained again). The
trainer's ``train/checkpoint.pt`` stays next to it: ``collapselab rank`` reads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from collapselab._atomic import atomic_open
from collapselab._json import jsonable
from collapselab._pool import torch_threads
from collapselab.errors import InputError
from collapselab.metrics.label_free import (  # METRIC_NAMES: re-exported
    METRIC_NAMES,
    METRICS,
    label_free_metrics,
    metric_spec,
)

if TYPE_CHECKING:
    import torch

    from collapselab.data import Dataset
    from collapselab.methods import Method

#: bump when training, measuring or evaluating changes what a cached run holds
CACHE_VERSION = 2
#: bump when a label-free metric's definition changes: cached runs are re-measured from
#: their checkpoints (seconds), not retrained
METRICS_VERSION = 3
#: the validation table ``collapselab rank`` reads (written by benchmarks/bench_selection.py)
VALIDATED_NAME = "selection_validated.json"

LIDAR_IMAGES = 1000  # n: test images used as LiDAR's surrogate classes (> d = 256)
LIDAR_VIEWS = 10  # q: augmented views per image
EVAL_SUBSET = {"fashion-mnist": (4000, 10000)}  # (train, test) images evaluated per data set
BOOTSTRAP = 1000  # bootstrap resamples of the runs
LEVEL = 0.95  # interval coverage
TARGETS = ("linear", "knn")  # the accuracies each metric is correlated with


# --------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: a method and its hyperparameters.

    Attributes:
        data: ``digits`` or ``fashion-mnist``.
        method: registry name (:data:`collapselab.methods.METHODS`).
        temperature: NT-Xent / InfoNCE temperature (contrastive methods), else None.
        augment: augmentation strength, a factor on the default augmentation's magnitudes
            (:func:`augment_options`); 1 is the default.
        proj_width: hidden and output width of the projector.
        lr: AdamW peak learning rate.
        epochs: training epochs (digits: 5 steps / epoch, Fashion-MNIST: 234); the
            learning-rate schedule spans them.
        seed: model init, data order, augmentations.
        encoder: ``mlp`` (default: the CNN costs ~10x more per step on CPU) or ``cnn``.
        steps: stop after this many steps (None: at the end of the schedule).
    """

    data: str
    method: str
    temperature: float | None
    augment: float
    proj_width: int
    lr: float
    epochs: int
    seed: int = 0
    encoder: str = "mlp"
    steps: int | None = None

    def key(self) -> str:
        """Cache folder name: readable settings and a hash of them and the code version."""
        blob = json.dumps({**dataclasses.asdict(self), "v": CACHE_VERSION}, sort_keys=True)
        h = hashlib.sha1(blob.encode()).hexdigest()[:10]
        t = "" if self.temperature is None else f"-t{self.temperature:g}"
        return (f"{self.data}-{self.method}{t}-a{self.augment:g}-w{self.proj_width}"
                f"-lr{self.lr:g}-s{self.seed}-{h}")  # fmt: skip

    def config(self, out: Path, threads: int = 1) -> Any:
        """The :class:`~collapselab.train.TrainConfig` of this run, writing to ``out``."""
        from collapselab.train.config import TrainConfig

        options: dict[str, Any] = {"proj_hidden_dim": self.proj_width,
                                   "proj_dim": self.proj_width}  # fmt: skip
        if self.temperature is not None:
            options["temperature"] = self.temperature
        return TrainConfig(
            method=self.method, data=self.data,
            encoder=self.encoder,
            epochs=self.epochs, max_steps=self.steps, lr=self.lr, seed=self.seed,
            threads=threads, out=str(out),
            monitor=False, evaluate=False, checkpoint_every=0, log_every=50,
            method_options=options, augment_options=augment_options(self.data, self.augment),
        )  # fmt: skip


def augment_options(data: str, strength: float) -> dict[str, Any]:
    """Overrides of the default augmentation scaled by ``strength`` (1: the default).

    Rotation, translation, brightness, contrast, noise and erasing probability are
    multiplied by ``strength`` (capped: brightness / contrast 0.9, probability 1, rotation
    60 degrees); the crop keeps ``1 - strength * (1 - lo)`` of the area at least (floor
    0.08, the Inception crop's). Vector data: mask probability and noise scale.
    """
    from collapselab.data import ImageAugment, VectorAugment

    if data not in ("digits", "fashion-mnist"):
        base: Any = VectorAugment()
        return {"mask_prob": min(base.mask_prob * strength, 0.9),
                "noise_std": base.noise_std * strength}  # fmt: skip
    base = (ImageAugment(crop_scale=(0.3, 1.0), hflip_prob=0.5, max_rotation=10.0)
            if data == "fashion-mnist" else ImageAugment())  # fmt: skip
    lo = max(0.08, 1.0 - strength * (1.0 - base.crop_scale[0]))
    return {
        "crop_scale": [min(lo, 1.0), 1.0],
        "max_rotation": min(base.max_rotation * strength, 60.0),
        "max_translate": base.max_translate * strength,
        "brightness": min(base.brightness * strength, 0.9),
        "contrast": min(base.contrast * strength, 0.9),
        "noise_std": base.noise_std * strength,
        "erase_prob": min(base.erase_prob * strength, 1.0),
    }


#: the sweep's methods, each with its default learning rate (AdamW, batch 256)
SWEEP_METHODS = {"simclr": 2e-3, "vicreg": 1e-3, "byol": 2e-3, "barlow": 1e-3}
SWEEP_AUGMENT = (0.5, 1.0, 2.0)  # augmentation strengths
SWEEP_WIDTHS = (32, 128, 512)  # projector widths (a Latin square over the 3 x 3 grid)
SWEEP_TEMPERATURES = (0.05, 0.2, 1.0)  # SimCLR's knob
SWEEP_LR_FACTORS = (0.25, 1.0, 4.0)  # the other methods' knob: x their default lr
SWEEP_SEEDS = (0, 1, 2)
SWEEP_DATA = "fashion-mnist"
SWEEP_EPOCHS = 1  # the schedule: one Fashion-MNIST epoch, 234 steps of 256 images
SWEEP_STEPS = 160  # steps trained (41k images): 68% of the cosine schedule


def sweep_settings() -> list[SweepRun]:
    """The 36 settings of the full sweep (seed 0), interleaved across methods.

    Per method a 3 x 3 grid: augmentation strength (0.5, 1, 2) x one method knob (SimCLR:
    temperature 0.05, 0.2, 1; VICReg, BYOL, Barlow Twins: learning rate x 0.25, 1, 4 of
    the default), with the projector width (32, 128, 512) on a Latin square over the grid
    (each width once per strength and once per knob level). Fashion-MNIST, MLP encoder,
    160 steps of a one-epoch (234-step) warm-up + cosine schedule: the checkpoint is taken
    at 68% of the schedule (learning rate a quarter of its peak), which keeps one run at
    ~12 s of one CPU core.
    """
    grids: list[list[SweepRun]] = []
    for method, lr0 in SWEEP_METHODS.items():
        runs = []
        for i, a in enumerate(SWEEP_AUGMENT):
            for j in range(3):
                w = SWEEP_WIDTHS[(i + j) % 3]
                if method == "simclr":
                    t, lr = SWEEP_TEMPERATURES[j], lr0
                else:
                    t, lr = None, lr0 * SWEEP_LR_FACTORS[j]
                runs.append(SweepRun(SWEEP_DATA, method, t, a, w, lr, SWEEP_EPOCHS,
                                     steps=SWEEP_STEPS))  # fmt: skip
        grids.append(runs)
    return [g[i] for i in range(max(map(len, grids))) for g in grids if i < len(g)]


def sweep_runs(full: bool = True) -> list[SweepRun]:
    """The sweep: ``full`` (:func:`sweep_settings` x :data:`SWEEP_SEEDS`: 108 runs) or
    the 6-run digits subset of the test (10 steps each).

    Full: seeds in the outer loop, so any prefix covers every setting once before any
    is repeated (a cut-short sweep is still balanced over methods and settings).
    """
    if not full:
        tiny = (("simclr", 0.2, 1.0, 64), ("simclr", 0.05, 2.0, 16), ("simclr", 1.0, 0.5, 64),
                ("vicreg", None, 1.0, 64), ("vicreg", None, 2.0, 16),
                ("alignment", None, 1.0, 64))  # fmt: skip
        return [SweepRun("digits", m, t, a, w, 2e-3, 2) for m, t, a, w in tiny]
    return [dataclasses.replace(r, seed=s) for s in SWEEP_SEEDS for r in sweep_settings()]


@dataclass(frozen=True)
class RunResult:
    """A finished run: its settings, label-free metrics and labelled accuracies.

    Attributes:
        run: the settings (:class:`SweepRun` as a dict).
        metrics: :data:`METRICS` values by name (test-set representation).
        linear: linear-probe accuracy on the test split.
        knn: kNN (k=20, cosine) accuracy on the test split.
        seconds: training and measuring time.
        metrics_version: the :data:`METRICS_VERSION` the metrics were measured with.
    """

    run: dict[str, Any]
    metrics: dict[str, float]
    linear: float
    knn: float
    seconds: float
    metrics_version: int = 0

    @property
    def method(self) -> str:
        return str(self.run["method"])

    @property
    def data(self) -> str:
        return str(self.run["data"])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        return cls(**d)


def _subset(data: Dataset) -> Dataset:
    """The evaluation subset of ``data`` (:data:`EVAL_SUBSET`; fixed, seed 0)."""
    import torch

    from collapselab.data import Dataset

    sizes = EVAL_SUBSET.get(data.name)
    if sizes is None:
        return data
    g = np.random.default_rng(0)
    tr = np.sort(g.permutation(data.x_train.shape[0])[: sizes[0]])
    te = np.sort(g.permutation(data.x_test.shape[0])[: sizes[1]])
    t = torch.from_numpy
    return Dataset(data.name, data.x_train[t(tr)], data.y_train[t(tr)],
                   data.x_test[t(te)], data.y_test[t(te)], data.num_classes)  # fmt: skip


def _embed(method: Method, x: torch.Tensor, batch: int = 1024) -> NDArray[np.float64]:
    import torch

    with torch.no_grad():
        parts = [method.embed(x[s : s + batch]).double().numpy() for s in range(0, len(x), batch)]
    return np.concatenate(parts)


def _views(data: Dataset, n: int = LIDAR_IMAGES, q: int = LIDAR_VIEWS) -> torch.Tensor:
    """``(n, q, ...)`` augmented views of the first ``n`` test images (default
    augmentation, generator seed 0: the same views for every run)."""
    import torch

    from collapselab.data import default_augment

    aug, g = default_augment(data), torch.Generator().manual_seed(0)
    x = data.x_test[:n]
    return torch.stack([aug(x, g) for _ in range(q)], dim=1)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """torch and BLAS on one thread inside the block (small matrices on a shared machine:
    extra threads only spin; see :mod:`collapselab._pool`'s thread notes)."""
    from collapselab.metrics.moments import single_threaded_blas

    with torch_threads(1), single_threaded_blas():
        yield


def measure_method(method: Method, data: Dataset) -> dict[str, float]:
    """Label-free metrics of a trained method's test-set representation (no labels)."""
    method.eval()
    with _one_thread():
        rep = _embed(method, data.x_test)
        v = _views(data)
        n, q = v.shape[:2]
        views = _embed(method, v.reshape(n * q, *v.shape[2:])).reshape(n, q, -1)
        return label_free_metrics(rep, views=views)


def load_trained(checkpoint: str | Path) -> tuple[Method, Dataset]:
    """The method of a ``collapselab train`` checkpoint, and its (evaluation) data.

    Raises:
        InputError: not a readable collapselab checkpoint, or its data are missing.
    """
    from collapselab.data import load_dataset
    from collapselab.methods import build_method
    from collapselab.models import build_encoder
    from collapselab.train.checkpoint import load_checkpoint

    ck = load_checkpoint(checkpoint)
    try:
        cfg = json.loads(ck["config"])
        data = _subset(load_dataset(cfg["data"], cfg.get("data_root")))
        method = build_method(cfg["method"], build_encoder(cfg["encoder"], data.input_shape),
                              cfg.get("method_options") or {})  # fmt: skip
        method.load_state_dict(ck["method"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise InputError(f"{checkpoint}: not a collapselab train checkpoint ({exc})") from None
    return method, data


def run_one(run: SweepRun, cache: str | Path, threads: int = 1) -> RunResult:
    """Train, measure and evaluate ``run``, or read its cached result.

    The result is ``cache/<run.key()>/result.json`` (atomic write); the trainer's run
    folder (checkpoint, metrics.jsonl) is ``cache/<key>/train``.
    """
    from collapselab.train.evaluate import evaluate_features
    from collapselab.train.trainer import train

    folder = Path(cache) / run.key()
    path = folder / "result.json"
    if path.is_file():
        cached = RunResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
        ck = folder / "train" / "checkpoint.pt"
        if cached.metrics_version == METRICS_VERSION or not ck.is_file():
            return cached
        method, data = load_trained(ck)  # metric definitions changed: re-measure only
        result = dataclasses.replace(cached, metrics=measure_method(method, data),
                                     metrics_version=METRICS_VERSION)  # fmt: skip
    else:
        t0 = time.perf_counter()
        train(run.config(folder / "train", threads))
        method, data = load_trained(folder / "train" / "checkpoint.pt")
        metrics = measure_method(method, data)
        with _one_thread():
            ev = evaluate_features(_embed(method, data.x_train), data.y_train,
                                   _embed(method, data.x_test), data.y_test)  # fmt: skip
        result = RunResult(dataclasses.asdict(run), metrics, ev.linear_accuracy,
                           ev.knn_accuracy, time.perf_counter() - t0,
                           METRICS_VERSION)  # fmt: skip
    with atomic_open(path, "w", fsync=False) as fh:
        json.dump(result.to_dict(), fh, indent=1)
    return result


def run_sweep(
    runs: Sequence[SweepRun],
    cache: str | Path,
    threads: int = 1,
    on_run: Callable[[int, int, SweepRun], None] | None = None,
) -> list[RunResult]:
    """:func:`run_one` for every run (finished runs come from the cache)."""
    out = []
    for i, run in enumerate(runs):
        if on_run is not None:
            on_run(i, len(runs), run)
        out.append(run_one(run, cache, threads))
    return out


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Correlation:
    """Rank correlation of ``sign * metric`` with an accuracy over a set of runs.

    Attributes:
        metric, target: the metric name and ``linear`` or ``knn``.
        data: the data set.
        scope: ``all`` (across methods) or a method name (within it).
        n: runs.
        spearman, kendall: Spearman rho and Kendall tau-b with 95% bootstrap intervals.
    """

    metric: str
    target: str
    data: str
    scope: str
    n: int
    spearman: Interval
    kendall: Interval

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def rank_correlations(
    x: NDArray[np.float64], y: NDArray[np.float64], block: int = 1 << 22
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Spearman rho and Kendall tau-b of each row pair of ``x``, ``y`` (shape ``(B, n)``).

    Spearman: Pearson correlation of average ranks (ties share their mean rank). Kendall
    tau-b: ``sum_ij s^x_ij s^y_ij / sqrt(sum (s^x_ij)^2 sum (s^y_ij)^2)`` with
    ``s_ij = sign(v_i - v_j)``, i.e. ``(P - Q) / sqrt((P + Q + T_x)(P + Q + T_y))`` as in
    scipy.stats.kendalltau. Rows where ``x`` or ``y`` is constant give nan. Vectorised
    over rows (``block`` bounds the ``(b, n, n)`` sign tensors), so a 1000-resample
    bootstrap costs milliseconds instead of 2000 scipy calls.
    """
    from scipy.stats import rankdata

    x, y = np.atleast_2d(x), np.atleast_2d(y)
    rx, ry = rankdata(x, axis=1), rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(1) / np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    tau = np.empty(x.shape[0])
    step = max(1, block // max(x.shape[1] ** 2, 1))
    for s in range(0, x.shape[0], step):
        sx = np.sign(x[s : s + step, :, None] - x[s : s + step, None, :])  # (b, n, n)
        sy = np.sign(y[s : s + step, :, None] - y[s : s + step, None, :])  # (b, n, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau[s : s + step] = (sx * sy).sum((1, 2)) / np.sqrt(
                (sx**2).sum((1, 2)) * (sy**2).sum((1, 2))
            )
    return np.clip(rho, -1.0, 1.0), np.clip(tau, -1.0, 1.0)


def bootstrap_correlation(
    x: ArrayLike, y: ArrayLike, n_boot: int = BOOTSTRAP, level: float = LEVEL, seed: int = 0
) -> tuple[Interval, Interval]:
    """Spearman and Kendall (tau-b) correlation of paired samples with percentile
    bootstrap intervals: the pairs are resampled with replacement ``n_boot`` times;
    resamples in which ``x`` or ``y`` is constant (no rank order) are skipped.

    Returns:
        ``(spearman, kendall)``; nan values when fewer than 3 finite pairs.
    """
    from scipy import stats

    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    nan = Interval(float("nan"), float("nan"), float("nan"))
    if xa.size < 3 or np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return nan, nan
    points = (float(stats.spearmanr(xa, ya)[0]), float(stats.kendalltau(xa, ya)[0]))
    idx = np.random.default_rng(seed).integers(0, xa.size, size=(n_boot, xa.size))
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    out = []
    for point, boot in zip(points, rank_correlations(xa[idx], ya[idx]), strict=True):
        b = boot[np.isfinite(boot)]
        lo, hi = np.percentile(b, q) if b.size else (float("nan"), float("nan"))
        out.append(Interval(point, float(lo), float(hi)))
    return out[0], out[1]


def correlations(
    results: Sequence[RunResult], n_boot: int = BOOTSTRAP, min_runs: int = 5
) -> list[Correlation]:
    """Every metric against both accuracies, per data set: across methods (scope
    ``all``) and within each method with at least ``min_runs`` runs."""
    out: list[Correlation] = []
    for data in sorted({r.data for r in results}):
        rows = [r for r in results if r.data == data]
        scopes = [("all", rows)] + [
            (m, [r for r in rows if r.method == m]) for m in sorted({r.method for r in rows})
        ]
        for scope, sel in scopes:
            if len(sel) < min_runs:
                continue
            for spec in METRICS:
                x = np.array([spec.sign * r.metrics.get(spec.name, math.nan) for r in sel])
                for target in TARGETS:
                    y = np.array([getattr(r, target) for r in sel])
                    s, k = bootstrap_correlation(x, y, n_boot)
                    n = int(np.isfinite(x).sum())
                    out.append(Correlation(spec.name, target, data, scope, n, s, k))
    return out


def setting_key(run: dict[str, Any]) -> str:
    """A run's setting: its hyperparameters without the seed (runs differing only in seed
    are repeats of one setting)."""
    return json.dumps({k: v for k, v in run.items() if k != "seed"}, sort_keys=True)


def setting_means(results: Sequence[RunResult]) -> list[RunResult]:
    """One result per setting (:func:`setting_key`): the mean over its seeds of every
    metric (nan if any seed's is nan) and of both accuracies; ``run["seed"]`` becomes the
    list of seeds, ``seconds`` their sum. Settings are the independent units of the
    study: the seeds of one setting share its hyperparameters, so resampling runs as if
    independent would overstate the evidence."""
    groups: dict[str, list[RunResult]] = {}
    for r in results:
        groups.setdefault(setting_key(r.run), []).append(r)
    out = []
    for rs in groups.values():
        names = sorted(set().union(*(r.metrics for r in rs)))
        metrics = {n: float(np.mean([r.metrics.get(n, math.nan) for r in rs])) for n in names}
        run = {**rs[0].run, "seed": sorted(r.run.get("seed", 0) for r in rs)}
        out.append(RunResult(run, metrics, float(np.mean([r.linear for r in rs])),
                             float(np.mean([r.knn for r in rs])),
                             float(sum(r.seconds for r in rs)),
                             min(r.metrics_version for r in rs)))  # fmt: skip
    return out


def pick_regret(score: ArrayLike, acc: ArrayLike) -> float:
    """Accuracy lost by picking the item of highest ``score`` instead of the most accurate
    one: ``max(acc) - acc[argmax(score)]`` (nan scores are never picked; nan if all are).
    The first of tied scores is picked."""
    sc, ac = np.asarray(score, dtype=np.float64), np.asarray(acc, dtype=np.float64)
    ok = np.isfinite(sc)
    if not ok.any():
        return math.nan
    pick = int(np.argmax(np.where(ok, sc, -np.inf)))
    return float(ac.max() - ac[pick])


def regrets(results: Sequence[RunResult], target: str = "linear") -> dict[str, Any]:
    """Regret of each metric's pick, in accuracy points (x 100), per data set.

    Per metric: ``all`` (picking among every setting mean), each method's (picking among
    its settings), ``per_seed`` (picking among the runs of one seed, against that seed's
    best run; one value per seed) and their mean. ``random``: the expected regret of a
    uniformly random pick (mean of ``max - acc``), the floor a metric must beat.
    """
    means = setting_means(results)
    out: dict[str, Any] = {}
    for data in sorted({r.data for r in means}):
        rows = [r for r in means if r.data == data]
        raw = [r for r in results if r.data == data]
        methods = sorted({r.method for r in rows})
        seeds = sorted({int(r.run.get("seed", 0)) for r in raw})

        def acc(rs: Sequence[RunResult]) -> NDArray[np.float64]:
            return 100 * np.array([getattr(r, target) for r in rs])

        def score(rs: Sequence[RunResult], sign: int, name: str) -> NDArray[np.float64]:
            return np.array([sign * r.metrics.get(name, math.nan) for r in rs])

        entry: dict[str, Any] = {"random": {
            "all": float(np.mean(acc(rows).max() - acc(rows))),
            **{m: float(np.mean(acc(sel).max() - acc(sel)))
               for m in methods for sel in [[r for r in rows if r.method == m]]}}}  # fmt: skip
        for spec in METRICS:
            e: dict[str, Any] = {"all": pick_regret(score(rows, spec.sign, spec.name), acc(rows))}
            for m in methods:
                sel = [r for r in rows if r.method == m]
                e[m] = pick_regret(score(sel, spec.sign, spec.name), acc(sel))
            per_seed = []
            for sd in seeds:
                sel = [r for r in raw if int(r.run.get("seed", 0)) == sd]
                per_seed.append(pick_regret(score(sel, spec.sign, spec.name), acc(sel)))
            e["per_seed"] = per_seed
            e["per_seed_mean"] = float(np.mean(per_seed)) if per_seed else math.nan
            entry[spec.name] = e
        out[data] = entry
    return out


def noise_floor(results: Sequence[RunResult], target: str = "linear") -> dict[str, Any]:
    """How much of the target's spread is signal, per data set, in accuracy points.

    ``seed_sd``: pooled standard deviation of one run's accuracy over seeds of a setting;
    ``sampling_se``: binomial standard error of one accuracy on the evaluated test images
    (``n_test``), at the mean accuracy; ``between_sd``: standard deviation of the setting
    means; ``reliability``: the share of the setting means' variance that is not seed
    noise, ``1 - seed_sd^2 / (k between_sd^2)`` with ``k`` seeds per setting (the
    reliability of a k-seed mean, Spearman-Brown); ``range``: min and max setting mean;
    ``distinct``: distinct run accuracies (of ``runs``).
    """
    out: dict[str, Any] = {}
    for data in sorted({r.data for r in results}):
        raw = [r for r in results if r.data == data]
        groups: dict[str, list[float]] = {}
        for r in raw:
            groups.setdefault(setting_key(r.run), []).append(100 * getattr(r, target))
        means = np.array([np.mean(v) for v in groups.values()])
        reps = [v for v in groups.values() if len(v) >= 2]
        pooled = (float(np.sqrt(np.mean([np.var(v, ddof=1) for v in reps])))
                  if reps else math.nan)  # fmt: skip
        k = float(np.mean([len(v) for v in groups.values()]))
        between = float(np.std(means, ddof=1)) if means.size > 1 else math.nan
        n_test = EVAL_SUBSET.get(data, (0, 0))[1] or None
        p = float(np.mean([getattr(r, target) for r in raw]))
        out[data] = {
            "runs": len(raw), "settings": len(groups), "seeds_per_setting": k,
            "seed_sd": pooled,
            "sampling_se": 100 * math.sqrt(p * (1 - p) / n_test) if n_test else math.nan,
            "n_test": n_test, "between_sd": between,
            "reliability": 1 - pooled**2 / (k * between**2) if between > 0 else math.nan,
            "range": [float(means.min()), float(means.max())],
            "distinct": len({round(100 * getattr(r, target), 6) for r in raw}),
        }  # fmt: skip
    return out


#: Spearman's rho: var(atanh rho_hat) ~ 1.06 / (n - 3) (Fieller, Hartley & Pearson 1957)
SPEARMAN_Z_VAR = 1.06


def power_fisher(n: int, rho: float = 0.5, alpha: float = 0.05) -> float:
    """Probability that a two-sided test at level ``alpha`` finds a Spearman correlation
    of true value ``rho`` significant with ``n`` independent pairs, by Fisher's z with
    Spearman's variance ``1.06 / (n - 3)``."""
    from scipy.stats import norm

    if n <= 3:
        return math.nan
    shift = math.atanh(rho) / math.sqrt(SPEARMAN_Z_VAR / (n - 3))
    z = float(norm.ppf(1 - alpha / 2))
    return float(norm.cdf(shift - z) + norm.cdf(-shift - z))


def power_simulated(
    n: int, rho: float = 0.5, alpha: float = 0.05, sims: int = 20000, seed: int = 0
) -> float:
    """:func:`power_fisher` by simulation: ``sims`` samples of ``n`` pairs from a Gaussian
    copula whose Spearman correlation is ``rho`` (Pearson ``2 sin(pi rho / 6)``), each
    tested as :func:`scipy.stats.spearmanr` does (t with ``n - 2`` degrees of freedom)."""
    from scipy.stats import t as student

    r = 2 * math.sin(math.pi * rho / 6)
    g = np.random.default_rng(seed)
    x = g.normal(size=(sims, n))
    y = r * x + math.sqrt(1 - r * r) * g.normal(size=(sims, n))
    rs, _ = rank_correlations(x, y, block=1 << 20)
    with np.errstate(divide="ignore"):
        tt = rs * np.sqrt((n - 2) / np.maximum(1 - rs**2, 1e-300))
    p = 2 * student.sf(np.abs(tt), n - 2)
    return float(np.mean(p < alpha))


def power(n: int, rho: float = 0.5, alpha: float = 0.05) -> dict[str, Any]:
    """Both power estimates for ``n`` independent settings (for the results file)."""
    return {"n": n, "rho": rho, "alpha": alpha, "fisher_z": power_fisher(n, rho, alpha),
            "simulated": power_simulated(n, rho, alpha)}  # fmt: skip


def validation_table(
    corrs: Sequence[Correlation],
    target: str = "linear",
    regret: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``collapselab rank`` reads: per metric and data set, the across-method
    Spearman correlation with ``target`` accuracy and its interval (``spearman``, over
    ``n`` units: setting means when ``corrs`` came from :func:`setting_means`), the
    within-method Spearman (``within``) and Kendall tau (``kendall_within``) intervals, and
    the regret of the metric's pick (``regret``, :func:`regrets`); metrics ordered best
    first by their worst lower bound over data sets (a metric is as trustworthy as its
    weakest validation). ``extra`` is merged into the top level (level, power, ...)."""
    table: dict[str, Any] = {}
    for spec in METRICS:
        per_data: dict[str, Any] = {}
        for c in corrs:
            if c.metric != spec.name or c.target != target:
                continue
            entry = per_data.setdefault(c.data, {"within": {}, "kendall_within": {}})
            if c.scope == "all":
                entry.update({"n": c.n, "spearman": dataclasses.asdict(c.spearman),
                              "kendall": dataclasses.asdict(c.kendall)})  # fmt: skip
            else:
                entry["within"][c.scope] = dataclasses.asdict(c.spearman)
                entry["kendall_within"][c.scope] = dataclasses.asdict(c.kendall)
        for data, entry in per_data.items():
            if regret and data in regret and spec.name in regret[data]:
                entry["regret"] = regret[data][spec.name]
                entry["regret_random"] = regret[data]["random"]
        if per_data:
            worst = min((e["spearman"]["lo"] for e in per_data.values() if "spearman" in e),
                        default=math.nan)  # fmt: skip
            table[spec.name] = {"sign": spec.sign, "needs_views": spec.needs_views,
                                "worst_lo": worst, "data": per_data}  # fmt: skip
    order = sorted(table, key=lambda k: -nan_to_low(table[k]["worst_lo"]))
    return {"target": target, **(extra or {}), "order": order, "metrics": table}


def nan_to_low(v: float | None) -> float:
    """``v``, or -inf where it is None or not finite (sorts it last, best first)."""
    return -math.inf if v is None or not math.isfinite(v) else v


json_ready = jsonable  # the ground floor's one JSON cleaner, under its old name


def results_from_json(path: str | Path) -> list[RunResult]:
    """The runs stored in a ``selection.json`` results file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return [RunResult.from_dict(r) for r in data["runs"]]


def rows(corrs: Iterable[Correlation], scope: str = "all") -> list[list[str]]:
    """Table rows (data, metric, target, n, rho [lo, hi], tau [lo, hi]) of one scope."""
    def f(i: Interval) -> str:
        return f"{i.value:+.2f} [{i.lo:+.2f}, {i.hi:+.2f}]"

    return [[c.data, metric_spec(c.metric).label, c.target, str(c.n), f(c.spearman), f(c.kendall)]
            for c in corrs if c.scope == scope]  # fmt: skip


ArrayLike = Any

__all__ = [
    "BOOTSTRAP",
    "LEVEL",
    "METRICS_VERSION",
    "METRICS",
    "METRIC_NAMES",
    "TARGETS",
    "VALIDATED_NAME",
    "Correlation",
    "Interval",
    "RunResult",
    "SweepRun",
    "augment_options",
    "bootstrap_correlation",
    "correlations",
    "json_ready",
    "label_free_metrics",
    "load_trained",
    "measure_method",
    "metric_spec",
    "nan_to_low",
    "noise_floor",
    "pick_regret",
    "power",
    "power_fisher",
    "power_simulated",
    "rank_correlations",
    "regrets",
    "results_from_json",
    "rows",
    "run_one",
    "run_sweep",
    "setting_key",
    "setting_means",
    "sweep_runs",
    "sweep_settings",
    "validation_table",
]
