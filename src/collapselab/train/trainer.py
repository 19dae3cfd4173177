"""The training loop: data views -> method step -> optimizer, watched by the monitor.

``train(config)`` runs one method on one data set and returns the summary (kNN, linear,
few-label accuracy, effective rank and verdict of the test-set embeddings). It runs the
same way in one process or under ``torchrun`` (DDP: gloo on CPU, NCCL on GPU).

Determinism: the model is initialised from ``seed``; the data order and the augmentations
come from two explicit generators; every rank draws the augmentations of the whole global
batch and keeps its shard, so a run on W ranks sees exactly the views a single process
would, and batch norm / NT-Xent negatives / Barlow statistics span the global batch. A
checkpoint stores all generator states, so ``--resume`` continues bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import torch
import torch.distributed as tdist

from collapselab import dist
from collapselab._atomic import write_text
from collapselab._json import jsonable
from collapselab._pool import blas_threads, torch_threads
from collapselab.data import Dataset, ImageAugment, VectorAugment, default_augment, load_dataset
from collapselab.data.augment import Augment
from collapselab.diagnose import Measurement, measure
from collapselab.errors import ConfigError, NonFiniteLossError
from collapselab.methods import Method, build_method
from collapselab.metrics import Moments
from collapselab.models import build_encoder
from collapselab.monitor import AlarmPolicy, CollapseMonitor, MonitorState, OnCollapse
from collapselab.train.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    save_checkpoint,
)
from collapselab.train.config import TrainConfig, config_from_json, config_json
from collapselab.train.evaluate import FeatureEvaluation, evaluate_features
from collapselab.train.runlog import EarlyWarning, early_warning, read_metrics

SUMMARY_NAME = "summary.json"
METRICS_NAME = "metrics.jsonl"

#: config fields that may differ between a run and its resumption
_RESUMABLE_CHANGES = {"resume", "out", "threads", "evaluate", "max_steps", "checkpoint_every"}


@dataclass(frozen=True)
class Progress:
    """What the progress callback receives after each logged step."""

    step: int  # completed steps
    total_steps: int
    epoch: int
    loss: float
    lr: float
    effective_rank: float | None  # latest monitor evaluation
    verdict: str | None
    seconds: float


@dataclass(frozen=True)
class TrainSummary:
    """What a run ends with (``out/summary.json`` holds :meth:`to_dict`).

    Attributes:
        method, data, steps, epochs, batch_size, world_size: the run.
        collapse_expected: the method is a collapse ablation.
        first_collapse_step: the monitor's first alarm (None: never).
        train_seconds, seconds: training time, and with the evaluation.
        config: the resolved :class:`TrainConfig` as a dict.
        early_warning: how early the alarm came against the loss curve (rank 0).
        evaluation: kNN / linear / few-label accuracies of the representation.
        representation: the :class:`~collapselab.diagnose.Measurement` of the test-set
            representations (encoder outputs), measured against the untrained encoder's.
        projection: the Measurement of the test-set projector outputs.
    """

    method: str
    data: str
    steps: int
    epochs: int
    batch_size: int
    world_size: int
    collapse_expected: bool
    first_collapse_step: int | None
    train_seconds: float
    seconds: float
    config: dict[str, Any]
    early_warning: EarlyWarning | None = None
    evaluation: FeatureEvaluation | None = None
    representation: Measurement | None = None
    projection: Measurement | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready record (the keys of ``summary.json``)."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in ("method", "data", "steps", "epochs", "batch_size", "world_size",
                      "collapse_expected", "first_collapse_step", "train_seconds")
        }  # fmt: skip
        if self.early_warning is not None:
            out["early_warning"] = self.early_warning.to_dict()
        if self.evaluation is not None:
            out.update(self.evaluation.to_dict())
        for prefix, ms in (("", self.representation), ("projection_", self.projection)):
            if ms is not None:
                out[f"{prefix}effective_rank"] = ms.metrics.effective_rank
                out[f"{prefix}relative_variance"] = ms.metrics.relative_variance
                out[f"{prefix}std_of_l2_normalized"] = ms.metrics.std_of_l2_normalized
                out[f"{prefix}verdict"] = ms.verdict
                out[f"{prefix}severity"] = ms.severity
                out[f"{prefix}warning"] = ms.warning
        out["seconds"] = self.seconds
        out["config"] = self.config
        return out


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device: str) -> _Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1), else run alone."""
    want_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_distributed():
        if not tdist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        tdist.init_process_group(backend="nccl" if want_cuda else "gloo")
        owns = True
    else:
        owns = False
    rank, world = dist.rank(), dist.world_size()
    if want_cuda:
        local = dist.local_rank()
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    return _Dist(rank, world, dev, owns)


def _lr_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _build_augment(data: Dataset, options: dict[str, Any]) -> Augment:
    base = default_augment(data)
    if not options:
        return base
    import dataclasses

    names = {f.name for f in dataclasses.fields(base)}
    unknown = set(options) - names
    if unknown:
        raise ConfigError(
            f"augment_options: unknown field(s) {sorted(unknown)}; fields: {sorted(names)}"
        )
    fixed: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    try:
        out: Augment = dataclasses.replace(base, **fixed)  # type: ignore[arg-type]
        return out
    except TypeError as exc:  # pragma: no cover - dataclasses.replace type errors
        raise ConfigError(f"augment_options: {exc}") from None


def _make_optimizer(
    method: Method, cfg: TrainConfig, lr: float, wd: float
) -> torch.optim.Optimizer:
    groups = method.param_groups(wd)
    for g in groups:
        g["base_lr"] = lr * g.pop("lr_scale", 1.0)
        g["lr"] = g["base_lr"]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=lr)


def _check_resume(saved: TrainConfig, now: TrainConfig) -> None:
    a, b = saved.to_dict(), now.to_dict()
    diff = sorted(k for k in a if k not in _RESUMABLE_CHANGES and a[k] != b[k])
    if diff:
        raise ConfigError(
            "--resume: settings differ from the checkpointed run: "
            + ", ".join(f"{k}={b[k]!r} (was {a[k]!r})" for k in diff)
        )


@torch.no_grad()
def _embed_all(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
               device: torch.device, batch: int = 1024) -> torch.Tensor:  # fmt: skip
    return torch.cat([fn(x[s : s + batch].to(device)).float().cpu()
                      for s in range(0, x.shape[0], batch)])  # fmt: skip


def train(
    config: TrainConfig,
    progress: Callable[[Progress], None] | None = None,
    on_monitor: Callable[[MonitorState], None] | None = None,
    on_collapse: Callable[[MonitorState], None] | None = None,
) -> TrainSummary:
    """Train ``config.method`` on ``config.data`` and evaluate it.

    Args:
        config: the run's settings (see :class:`TrainConfig`).
        progress: called on rank 0 every ``log_every`` steps (the CLI draws its bar).
        on_monitor: called on rank 0 with each monitor evaluation.
        on_collapse: called on rank 0 when the monitor's collapse alarm fires (the state
            stayed at warning level or worse for ``monitor_patience`` evaluations) and
            ``config.on_collapse`` is ``"warn"`` or ``"stop"``; when given, it tells of
            the alarm instead of the policy's warnings / log records (the CLI prints one
            line).

    Returns:
        The :class:`TrainSummary` (its ``to_dict()`` is written to ``out/summary.json``
        when ``out`` is set).

    Raises:
        ConfigError: invalid settings, or a resume whose settings differ.
        InputError: data files missing; unreadable checkpoint.
        NonFiniteLossError: the loss became NaN/Inf (the message gives the step).
        CollapseDetected: ``on_collapse="raise"`` and the alarm fired. With
            ``on_collapse="stop"`` the run ends cleanly after the step whose evaluation
            fired it (checkpoint, evaluation and summary as at the last step).
    """
    cfg = config.resolved()
    assert cfg.epochs is not None
    # process-wide settings changed for the run and restored after it, whatever happens
    flush_before = flush_denormal_enabled()
    try:
        torch.set_flush_denormal(True)  # denormals slow CPUs ~10x as embeddings collapse
        with torch_threads(cfg.threads or None):
            ctx = _setup_distributed(cfg.device)
            try:
                with blas_threads(cfg.threads) if cfg.threads else contextlib.nullcontext():
                    return _train(cfg, ctx, progress, on_monitor, on_collapse)
            finally:
                if ctx.owns_group and dist.is_distributed():
                    tdist.destroy_process_group()
    finally:
        torch.set_flush_denormal(flush_before)


def flush_denormal_enabled() -> bool:
    """Whether torch flushes denormals to zero on this thread (torch has no getter: with
    flushing on, the smallest float64 denormal reads back as 0)."""
    return torch.tensor([1e-323], dtype=torch.float64).item() == 0.0


def _train(
    cfg: TrainConfig,
    ctx: _Dist,
    progress: Callable[[Progress], None] | None,
    on_monitor: Callable[[MonitorState], None] | None,
    on_collapse: Callable[[MonitorState], None] | None,
) -> TrainSummary:
    assert cfg.epochs is not None
    t_start = time.perf_counter()
    if cfg.batch_size % ctx.world:
        raise ConfigError(
            f"--batch-size {cfg.batch_size} must be divisible by the {ctx.world} processes"
        )
    data = load_dataset(cfg.data, cfg.data_root)
    n_train = data.x_train.shape[0]
    if cfg.batch_size > n_train:
        raise ConfigError(f"--batch-size {cfg.batch_size} exceeds the {n_train} training examples")
    augment = _build_augment(data, cfg.augment_options)
    steps_per_epoch = n_train // cfg.batch_size  # drop the last partial batch
    total_steps = cfg.epochs * steps_per_epoch
    run_steps = min(total_steps, cfg.max_steps or total_steps)
    warmup = int(cfg.warmup_fraction * total_steps)

    torch.manual_seed(cfg.seed)
    try:
        encoder = build_encoder(cfg.encoder, data.input_shape)
    except ValueError as exc:
        raise ConfigError(f"--encoder: {exc}") from None
    method = build_method(cfg.method, encoder, cfg.method_options).to(ctx.device)
    lr = cfg.lr if cfg.lr is not None else method.config.lr
    wd = cfg.weight_decay if cfg.weight_decay is not None else method.config.weight_decay
    optimizer = _make_optimizer(method, cfg, lr, wd)
    model: torch.nn.Module = method
    if ctx.world > 1:
        # buffers (BN statistics, queues, centres) agree across ranks by construction:
        # no per-forward broadcast (the keyword was renamed in recent torch)
        import inspect

        ddp = torch.nn.parallel.DistributedDataParallel
        new_kw = "forward_sync_buffers" in inspect.signature(ddp.__init__).parameters
        sync: dict[str, Any] = {("forward_sync_buffers" if new_kw else "broadcast_buffers"): False}
        model = ddp(
            method,
            device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            **sync,
        )
    g_data = torch.Generator().manual_seed(cfg.seed)
    g_aug = torch.Generator(device=ctx.device).manual_seed(cfg.seed + 1)

    # the alarm is told on rank 0 only: through the caller's on_collapse when given
    tell = on_collapse if ctx.main and cfg.on_collapse in ("warn", "stop") else None
    policy = AlarmPolicy.build(
        on_collapse=cast(OnCollapse, cfg.on_collapse),
        patience=cfg.monitor_patience,
        emit=ctx.main and on_collapse is None,
    )
    monitor = CollapseMonitor(every=cfg.monitor_every, window=cfg.monitor_window, alarm=policy)
    start_rep = None  # the untrained encoder's test-set representation: the baseline
    if cfg.evaluate:
        method.eval()
        start_rep = _embed_all(method.embed, data.x_test, ctx.device)
        method.train()
    out_dir = Path(cfg.out) if cfg.out else None
    step, perm = 0, torch.empty(0, dtype=torch.int64)
    elapsed_before = 0.0
    if cfg.resume:
        assert out_dir is not None
        ck = load_checkpoint(out_dir / CHECKPOINT_NAME)
        _check_resume(config_from_json(ck["config"]), cfg)
        method.load_state_dict(ck["method"])
        optimizer.load_state_dict(ck["optimizer"])
        g_data.set_state(ck["rng_data"])
        g_aug.set_state(ck["rng_aug"].to(g_aug.get_state().device))
        torch.set_rng_state(ck["rng_torch"])
        monitor.load_state_dict(ck["monitor"])
        step, perm = int(ck["step"]), ck["perm"]
        elapsed_before = float(ck["elapsed"])
        start_rep = ck.get("start_rep", start_rep)
    log: TextIO | None = None
    history: list[dict[str, Any]] = []  # step records, for the early-warning judgement
    if out_dir is not None and ctx.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        log = _open_log(out_dir / METRICS_NAME, keep_before=step if cfg.resume else 0)
        if cfg.resume:
            history = [r for r in read_metrics(out_dir / METRICS_NAME) if r["event"] == "step"]

    def checkpoint() -> None:
        if out_dir is None or not ctx.main:
            return
        save_checkpoint(out_dir / CHECKPOINT_NAME, {
            "config": config_json(cfg), "step": step, "perm": perm,
            "method": method.state_dict(), "optimizer": optimizer.state_dict(),
            "rng_data": g_data.get_state(), "rng_aug": g_aug.get_state().cpu(),
            "rng_torch": torch.get_rng_state(), "monitor": monitor.state_dict(),
            "elapsed": elapsed_before + time.perf_counter() - t_start, "start_rep": start_rep,
        })  # fmt: skip

    local = cfg.batch_size // ctx.world
    x_all = data.x_train.to(ctx.device)
    model.train()
    try:
        while step < run_steps and not monitor.should_stop:
            i = step % steps_per_epoch
            if i == 0:
                perm = torch.randperm(n_train, generator=g_data)
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size].to(ctx.device)
            v1, v2 = (v[ctx.rank * local : (ctx.rank + 1) * local]
                      for v in _views(x_all[idx], augment, g_aug))  # fmt: skip
            factor = _lr_factor(step, total_steps, warmup, cfg.min_lr_fraction)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * (1.0 if g.get("fixed_lr") else factor)
            out = model(v1, v2)
            loss_value = _global_mean(out.loss.detach(), ctx)
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"step {step}: loss is {loss_value} ({cfg.method}); the run diverged: "
                    f"lower --lr (now {lr:g}) or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            method.after_optimizer_step(step + 1, total_steps)
            state = (
                monitor.update(out.embeddings, step, paired=out.paired) if cfg.monitor else None
            )
            if state is not None and monitor.fired and tell is not None:
                tell(state)
            if ctx.main:
                if state is not None:
                    if on_monitor is not None:
                        on_monitor(state)
                    if log is not None:
                        _write(log, {"event": "monitor", **state.to_dict()})
                if step % cfg.log_every == 0 or step == run_steps - 1 or monitor.should_stop:
                    seconds = elapsed_before + time.perf_counter() - t_start
                    terms = {k: v for k, v in out.terms.items() if k != "loss"}
                    lr_now = optimizer.param_groups[0]["lr"]
                    record = {"event": "step", "step": step, "epoch": step // steps_per_epoch,
                              "lr": lr_now, "loss": loss_value, **terms}  # fmt: skip
                    history.append(record)
                    if log is not None:
                        _write(log, record)
                    if progress is not None:
                        last = monitor.last
                        progress(Progress(
                            step + 1, run_steps, step // steps_per_epoch, loss_value, lr_now,
                            None if last is None else last.metrics["effective_rank"],
                            None if last is None else last.verdict, seconds,
                        ))  # fmt: skip
            step += 1
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < run_steps:
                checkpoint()
        checkpoint()
    finally:
        if log is not None:
            log.close()

    train_seconds = elapsed_before + time.perf_counter() - t_start
    ew = None
    if ctx.main and history:
        ew = early_warning(history, monitor.first_collapse_step, type(method).loss_floor)
    evaluation = rep = proj = None
    if cfg.evaluate:
        evaluation, rep, proj = _evaluate(method, data, ctx, start_rep)
    summary = TrainSummary(
        method=cfg.method,
        data=cfg.data,
        steps=step,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        world_size=ctx.world,
        collapse_expected=type(method).collapse_expected,
        first_collapse_step=monitor.first_collapse_step,
        train_seconds=train_seconds,
        seconds=elapsed_before + time.perf_counter() - t_start,
        config=cfg.to_dict(),
        early_warning=ew,
        evaluation=evaluation,
        representation=rep,
        projection=proj,
    )
    if out_dir is not None and ctx.main:
        text = json.dumps(jsonable(summary.to_dict(), finite=False), indent=2)
        write_text(out_dir / SUMMARY_NAME, text + "\n", fsync=False)
    return summary


def _views(
    x: torch.Tensor, augment: Augment, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    return augment(x, g), augment(x, g)


def _global_mean(loss: torch.Tensor, ctx: _Dist) -> float:
    """Mean of the per-rank losses (one tiny all-reduce); NaN on any rank propagates."""
    if ctx.world > 1:
        loss = loss.clone()
        tdist.all_reduce(loss)
        loss /= ctx.world
    return float(loss.item())


def _evaluate(
    method: Method, data: Dataset, ctx: _Dist, start_rep: torch.Tensor | None
) -> tuple[FeatureEvaluation | None, Measurement, Measurement]:
    """Accuracies of the frozen representation and the Measurements of the test-set
    representations (against the untrained encoder's, ``start_rep``) and projections."""
    method.eval()
    rep_train = _embed_all(method.embed, data.x_train, ctx.device)
    rep_test = _embed_all(method.embed, data.x_test, ctx.device)
    proj_test = _embed_all(method.project, data.x_test, ctx.device)
    evaluation = None
    if ctx.main:
        evaluation = evaluate_features(rep_train, data.y_train, rep_test, data.y_test)
    base = None if start_rep is None else Moments.of(start_rep)
    rep = measure(Moments.of(rep_test), baseline=base)
    proj = measure(Moments.of(proj_test))
    method.train()
    return evaluation, rep, proj


def _open_log(path: Path, keep_before: int) -> TextIO:
    """Open metrics.jsonl for appending; on resume keep only records of earlier steps."""
    if keep_before and path.exists():
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the interruption
            if int(rec.get("step", -1)) < keep_before:
                kept.append(line + "\n")
        write_text(path, "".join(kept), fsync=False)
    elif path.exists():
        path.unlink()
    return path.open("a", encoding="utf-8")


def _write(log: TextIO, record: dict[str, Any]) -> None:
    log.write(json.dumps(jsonable(record, finite=False)) + "\n")
    log.flush()


__all__ = ["Progress", "train", "ImageAugment", "VectorAugment"]
