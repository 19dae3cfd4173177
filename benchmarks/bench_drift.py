"""Two-sample drift test (collapselab.drift.drift_test): false positives, power, speed.

Three parts, each cached under ``benchmarks/drift/cache/`` (resumable: an interrupted
run continues from the last saved split; a finished part is not recomputed):

- ``fpr``: false-positive rate of ``drift_test`` at alpha 0.05 on two disjoint random
  halves of one source (many seeded splits, Clopper-Pearson 95% intervals), for a Gaussian
  with a decaying spectrum (d = 64 and 384) and for real all-MiniLM-L6-v2 embeddings of
  WordNet glosses; also with the rows NOT shuffled (file order), to show what ordered rows do.
- ``power``: detection rate of known shifts applied to the current half: a rotation by
  theta in the plane pairs of the top-10 principal directions, a mean shift of s standard
  deviations along a random direction, and MiniLM fine-tuned for a few InfoNCE steps
  (reference: frozen-model embeddings of one half of the glosses, current: the other
  half embedded by the fine-tuned model); the smallest strength detected 80% of the time.
- ``speed``: wall time and peak memory of ``collapselab check CUR --baseline REF --json``
  against Evidently's EmbeddingsDriftMetric (its own venv, a subprocess with a 600 s
  timeout and an address-space cap) on float32 .npy files of N x 384 rows in all.

Writes ``benchmarks/results/drift.md`` and ``drift.json`` from every cached part (parts
never run are listed as such). Needs ``pip install "collapselab[text]"`` (the model),
``apt-get install wordnet-base`` and, for ``speed``, Evidently in a separate venv::

    python3 -m venv /work/venv-evidently
    /work/venv-evidently/bin/pip install evidently "pandas<3"

Usage::

    nice python benchmarks/bench_drift.py --data-dir /work/drift-data      # all parts
    nice python benchmarks/bench_drift.py --part fpr
    nice python benchmarks/bench_drift.py --part speed --sizes 1000000 --keep
    EVIDENTLY_PYTHON=/path/to/python nice python benchmarks/bench_drift.py --part speed

``--fresh`` recomputes the selected parts (cached embeddings are kept; delete the cache
folder to re-embed). ``--splits`` / ``--power-splits`` set the number of seeded splits.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import random
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import binomtest

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks" / "drift" / "cache"
RESULTS = ROOT / "benchmarks" / "results"
ALPHA = 0.05
WORDNET = Path(os.environ.get("COLLAPSELAB_WORDNET_DIR", "/usr/share/wordnet"))
POS_ORDER = ("noun", "verb", "adj", "adv")  # "file order": data.noun, data.verb, ...
EVIDENTLY_DEFAULT = "/work/venv-evidently/bin/python"
PARTS = ("fpr", "power", "speed")

# grids of the power part (strengths applied to the current half only)
ROTATION_DEG = {"gauss64": (2.0, 4.0, 6.0, 8.0, 10.0, 14.0),
                "minilm": (10.0, 20.0, 25.0, 30.0, 35.0, 45.0)}  # fmt: skip
MEAN_SHIFT_SD = {"gauss64": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3),
                 "minilm": (0.1, 0.2, 0.3, 0.5, 0.75, 1.0)}  # fmt: skip
FT_STEPS = (1, 3, 10)
FT_SETTINGS = {"batch_size": 32, "lr": 2e-5, "temperature": 0.05, "seed": 0}

Array = NDArray[np.float64]
Progress = Callable[[str], None]


def log(msg: str) -> None:
    print(msg, flush=True)


def save_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON atomically (a killed run never leaves half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------- sources


def gaussian_model(d: int, seed: int = 12345) -> tuple[Array, Array, Array]:
    """(mean, spectrum, basis) of the test Gaussian: eigenvalues 1/k, a random rotation."""
    rng = np.random.default_rng([seed, d])
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spectrum = 1.0 / np.arange(1, d + 1)
    mean = 0.1 * rng.standard_normal(d)
    return mean, spectrum, basis


def gaussian_sample(n: int, d: int, rng: np.random.Generator) -> Array:
    mean, spectrum, basis = gaussian_model(d)
    z = rng.standard_normal((n, d))
    return (z * np.sqrt(spectrum)) @ basis.T + mean


def read_glosses() -> list[tuple[str, int, str]]:
    """Every WordNet synset's gloss (definition part, examples dropped), in file order.

    Returns ``(pos, offset, gloss)``; duplicate glosses keep their first occurrence.
    """
    if not (WORDNET / "data.noun").is_file():
        sys.exit(f"{WORDNET}: no WordNet database; apt-get install wordnet-base")
    out, seen = [], set()
    for pos in POS_ORDER:
        with open(WORDNET / f"data.{pos}", encoding="latin-1") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue
                head, _, text = line.partition(" | ")
                quote = text.find('"')
                gloss = (text if quote < 0 else text[:quote]).strip().rstrip(";").strip()
                if gloss and gloss not in seen:
                    seen.add(gloss)
                    out.append((pos, int(head.split()[0]), gloss))
    return out


def gloss_pool(size: int) -> dict[str, Any]:
    """``size`` glosses drawn at random (seed 0) from all of WordNet, kept in file order."""
    path = CACHE / "minilm" / f"pool_{size}.json"
    cached = load_json(path)
    if cached is not None:
        return cached
    every = read_glosses()
    pick = sorted(random.Random(0).sample(range(len(every)), size))
    pool = {"size": size, "of": len(every), "pos": [every[i][0] for i in pick],
            "offset": [every[i][1] for i in pick], "text": [every[i][2] for i in pick]}  # fmt: skip
    save_json(path, pool)
    return pool


def _load_model() -> Any:
    from collapselab.text.model import load_model

    return load_model("all-MiniLM-L6-v2")


def frozen_embeddings(pool: dict[str, Any]) -> NDArray[np.float32]:
    """all-MiniLM-L6-v2 embeddings of the pool, embedded once and cached."""
    from collapselab.text.model import encode

    path = CACHE / "minilm" / f"frozen_{pool['size']}.npy"
    if path.is_file():
        return np.load(path)
    log(f"embedding {pool['size']} WordNet glosses with the frozen all-MiniLM-L6-v2 ...")
    t0 = time.perf_counter()
    z = encode(_load_model(), pool["text"], batch_size=64)
    log(f"  {time.perf_counter() - t0:.0f} s")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, z)
    return z


def finetuned_embeddings(pool: dict[str, Any], steps: Sequence[int]) -> dict[int, Any]:
    """The pool embedded by MiniLM after each of ``steps`` InfoNCE steps (one trajectory).

    Training data: WordNet (gloss, example) pairs whose synset is not in the pool
    (collapselab.text.data.wordnet_pairs), shuffled with seed 0; in-batch InfoNCE
    (collapselab.losses.info_nce, tau 0.05 = MultipleNegativesRankingLoss' scale 20), AdamW
    lr 2e-5, 32 pairs a step: collapselab's own fine-tuning defaults (FinetuneConfig).
    """
    steps = sorted(set(steps))
    paths = {k: CACHE / "minilm" / f"ft{k}_{pool['size']}.npy" for k in steps}
    meta_path = CACHE / "minilm" / f"ft_{pool['size']}.json"
    meta = load_json(meta_path) or {}
    if all(p.is_file() for p in paths.values()) and meta.get("settings") == FT_SETTINGS:
        return {k: np.load(p) for k, p in paths.items()} | {"meta": meta}
    import torch

    from collapselab.losses import info_nce
    from collapselab.text.data import wordnet_pairs
    from collapselab.text.experiment import flush_denormals
    from collapselab.text.model import encode, forward

    taken = set(zip(pool["pos"], pool["offset"], strict=True))
    pairs = [(p.gloss, p.example) for p in wordnet_pairs() if (p.pos, p.offset) not in taken]
    random.Random(FT_SETTINGS["seed"]).shuffle(pairs)
    torch.manual_seed(FT_SETTINGS["seed"])
    model = _load_model()
    opt = torch.optim.AdamW(model.parameters(), lr=FT_SETTINGS["lr"])
    b = FT_SETTINGS["batch_size"]
    out: dict[int, Any] = {}
    losses, t0 = [], time.perf_counter()
    log(f"fine-tuning MiniLM ({len(pairs)} training pairs) to step {steps[-1]} ...")
    with flush_denormals():
        for step in range(1, steps[-1] + 1):
            batch = pairs[(step - 1) * b : step * b]
            model.train()
            za = forward(model, [a for a, _ in batch])
            zb = forward(model, [e for _, e in batch])
            loss = info_nce(za, zb, temperature=FT_SETTINGS["temperature"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if step in paths:
                log(f"  step {step}: loss {losses[-1]:.4f}; embedding the pool ...")
                z = encode(model, pool["text"], batch_size=64)
                np.save(paths[step], z)
                out[step] = z
    meta = {"settings": FT_SETTINGS, "train_pairs": len(pairs), "losses": losses,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    save_json(meta_path, meta)
    return out | {"meta": meta}


# ---------------------------------------------------------------------------- shifts


def top_directions(ref: Array, k: int = 10) -> tuple[Array, Array, Array]:
    """(mean, top-k principal directions as columns, their eigenvalues) of ``ref``."""
    mean = ref.mean(axis=0)
    w, v = np.linalg.eigh(np.cov(ref, rowvar=False))
    return mean, v[:, ::-1][:, :k], w[::-1][:k]


def rotate_top(ref: Array, cur: Array, theta_deg: float, k: int = 10) -> Array:
    """Rotate ``cur`` about the reference mean by theta in the planes (v1,v2), (v3,v4), ...

    v1..v10 are the reference's top principal directions (distinct eigenvalues: a
    rotation inside an isotropic subspace would not change the distribution at all).
    """
    mean, v, _ = top_directions(ref, k)
    c, s = math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))
    p = (cur - mean) @ v  # (n, k) coordinates in the subspace
    q = p.copy()
    for j in range(0, k - 1, 2):
        q[:, j] = c * p[:, j] - s * p[:, j + 1]
        q[:, j + 1] = s * p[:, j] + c * p[:, j + 1]
    return cur + (q - p) @ v.T


def mean_shift(ref: Array, cur: Array, s: float, rng: np.random.Generator) -> Array:
    """Shift ``cur`` by s times the reference's standard deviation along a random unit u."""
    u = rng.standard_normal(ref.shape[1])
    u /= np.linalg.norm(u)
    return cur + s * float((ref @ u).std()) * u


# ---------------------------------------------------------------------------- cells


def _drift_test() -> Callable[..., Any]:
    try:
        from collapselab.drift import drift_test
    except ImportError as e:
        sys.exit(f"collapselab.drift.drift_test is not importable ({e}); parts fpr and "
                 "power need it")  # fmt: skip
    return drift_test  # type: ignore[no-any-return]


_MAKE: Callable[[int], tuple[Any, Any]] | None = None  # the cell's split maker (forked)


def _one_blas_thread() -> None:
    """One BLAS thread per process: on a shared 2-core machine OpenBLAS' threads on
    384 x 384 factorisations spin against each other (7x slower here)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1, user_api="blas")


def _test_split(i: int) -> tuple[int, float, list[float]]:
    from collapselab.drift import drift_test

    assert _MAKE is not None
    ref, cur = _MAKE(i)
    t0 = time.perf_counter()
    r = drift_test(ref, cur, seed=i, alpha=ALPHA)
    return i, time.perf_counter() - t0, [float(r.p_value), float(r.p_mean),
                                          float(r.p_bures), float(r.frechet)]  # fmt: skip


def run_cell(
    name: str,
    spec: dict[str, Any],
    splits: int,
    make: Callable[[int], tuple[Any, Any]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """``splits`` drift tests of ``make(i) -> (reference, current)``, saved as they go.

    Split i uses ``drift_test(..., seed=i)`` (defaults otherwise: 16 blocks, 199
    permutations). The cell file holds the spec and one entry per finished split; a rerun
    with the same spec resumes (or truncates to ``splits``), another spec starts over.
    ``args.jobs`` worker processes (forked), one BLAS thread each.
    """
    global _MAKE
    _drift_test()
    path = CACHE / "cells" / f"{name}.json"
    cell = None if args.fresh else load_json(path)
    if cell is None or cell.get("spec") != spec:
        cell = {"spec": spec, "p_value": [], "p_mean": [], "p_bures": [], "frechet": [],
                "seconds": []}  # fmt: skip
    done = len(cell["p_value"])
    if done >= splits:
        return {k: (v[:splits] if isinstance(v, list) else v) for k, v in cell.items()}
    _MAKE = make
    _one_blas_thread()
    t_start = t_last = time.perf_counter()
    todo = range(done, splits)
    pool = mp.get_context("fork").Pool(args.jobs, _one_blas_thread) if args.jobs > 1 else None
    try:
        results = pool.imap(_test_split, todo) if pool else map(_test_split, todo)
        for i, sec, vals in results:
            cell["seconds"].append(round(sec, 4))
            for key, v in zip(("p_value", "p_mean", "p_bures", "frechet"), vals, strict=True):
                cell[key].append(v)
            if time.perf_counter() - t_last > 30 or i == splits - 1:
                save_json(path, cell)
                t_last = time.perf_counter()
                rate = np.mean(np.array(cell["p_value"]) < ALPHA)
                wall = (t_last - t_start) / (i + 1 - done)
                log(f"  {name}: {i + 1}/{splits} splits, detected {rate:.3f}, "
                    f"{wall:.2f} s wall/split, ~{wall * (splits - i - 1) / 60:.1f} min left")
    finally:
        if pool:
            pool.terminate()
        _MAKE = None
    save_json(path, cell)
    return cell


def rates(cell: dict[str, Any]) -> dict[str, Any]:
    """Detection rate at alpha for each p-value, with Clopper-Pearson 95% intervals."""
    per = round(float(np.mean(cell["seconds"])), 4)
    out: dict[str, Any] = {"splits": len(cell["p_value"]), "seconds_per_test": per}
    for key in ("p_value", "p_mean", "p_bures"):
        p = np.asarray(cell[key])
        k = int((p < ALPHA).sum())
        ci = binomtest(k, len(p)).proportion_ci(0.95, method="exact")
        out[key] = {"detected": k, "rate": k / len(p), "ci95": [ci.low, ci.high],
                    "median_p": float(np.median(p))}  # fmt: skip
    out["median_frechet"] = float(np.median(cell["frechet"]))
    return out


def halves(n: int, rng: np.random.Generator) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    perm = rng.permutation(n)
    return perm[: n // 2], perm[n // 2 :]


def minilm_data(glosses: int) -> tuple[dict[str, Any], NDArray[np.float32]]:
    pool = gloss_pool(glosses)
    return pool, frozen_embeddings(pool)


# ---------------------------------------------------------------------------- part A


def part_fpr(args: argparse.Namespace) -> dict[str, Any]:
    n = args.gauss_n
    out: dict[str, Any] = {"alpha": ALPHA, "rows": []}
    for d, s in ((64, args.splits), (384, args.splits_384)):

        def make_g(i: int, d: int = d) -> tuple[Array, Array]:
            x = gaussian_sample(2 * n, d, np.random.default_rng([1, d, i]))
            return x[:n], x[n:]

        spec = {"source": "gauss", "d": d, "n": n, "v": 1}
        cell = run_cell(f"fpr_gauss{d}", spec, s, make_g, args)
        out["rows"].append({"source": f"Gaussian, eigenvalues 1/k, d={d}",
                            "rows": "a fresh sample each split (iid rows)", "n_per_side": n,
                            "d": d, **rates(cell)})  # fmt: skip
    pool, z = minilm_data(args.glosses)
    m = len(z) // 2

    def make_shuffled(i: int) -> tuple[Any, Any]:
        a, b = halves(len(z), np.random.default_rng([2, i]))
        return z[a], z[b]

    def make_sorted(i: int) -> tuple[Any, Any]:
        a, b = halves(len(z), np.random.default_rng([2, i]))
        return z[np.sort(a)], z[np.sort(b)]

    def make_first_second(i: int) -> tuple[Any, Any]:
        return z[:m], z[m:]

    spec = {"source": "minilm", "glosses": args.glosses, "v": 1}
    cases = [
        ("fpr_minilm_shuffled", make_shuffled, args.splits_384,
         "random halves, rows shuffled (the intended use)"),
        ("fpr_minilm_sorted", make_sorted, max(1, args.splits_384 // 4),
         "random halves, each half's rows put back in WordNet file order"),
        ("fpr_minilm_first_second", make_first_second, min(args.splits_384, 20),
         "first half vs second half in file order (one fixed split; only the "
         "permutation seed varies)"),
    ]  # fmt: skip
    for name, make, k, what in cases:
        cell = run_cell(name, spec, k, make, args)
        out["rows"].append({"source": "all-MiniLM-L6-v2, WordNet glosses", "rows": what,
                            "n_per_side": m, "d": int(z.shape[1]), **rates(cell)})  # fmt: skip
    pos_first = {p: pool["pos"][:m].count(p) for p in POS_ORDER}
    pos_second = {p: pool["pos"][m:].count(p) for p in POS_ORDER}
    out["first_second_pos"] = {"first": pos_first, "second": pos_second}
    out["pool"] = {"glosses": pool["size"], "of": pool["of"]}
    return out


# ---------------------------------------------------------------------------- part B


def smallest_detected(grid: Sequence[float], rate: Sequence[float], level: float = 0.8) -> Any:
    """Smallest strength with detection rate >= level, linear between grid points.

    Returns a number, ``"<= g0"`` when the first grid point already reaches it, or
    ``"> g_last"`` when none does.
    """
    for i, (g, r) in enumerate(zip(grid, rate, strict=True)):
        if r >= level:
            if i == 0:
                return f"<= {g:g}"
            g0, r0 = grid[i - 1], rate[i - 1]
            return round(g0 + (level - r0) * (g - g0) / (r - r0), 4)
    return f"> {grid[-1]:g}"


def part_power(args: argparse.Namespace) -> dict[str, Any]:
    n = args.gauss_n
    pool, z = minilm_data(args.glosses)
    z64 = z.astype(np.float64)
    splits = {"gauss64": args.power_splits, "minilm": args.power_splits_384}
    out: dict[str, Any] = {"alpha": ALPHA, "splits": splits, "shifts": []}

    def source(name: str) -> Callable[[int], tuple[Array, Array]]:
        if name == "gauss64":
            return lambda i: (lambda x: (x[:n], x[n:]))(
                gaussian_sample(2 * n, 64, np.random.default_rng([3, i])))  # fmt: skip
        return lambda i: (lambda ab: (z64[ab[0]], z64[ab[1]]))(
            halves(len(z64), np.random.default_rng([4, i])))  # fmt: skip

    labels = {"gauss64": f"Gaussian d=64, eigenvalues 1/k, n={n} per side",
              "minilm": f"all-MiniLM-L6-v2, {len(z) // 2} WordNet glosses per side"}  # fmt: skip
    for shift, grid_of in (("rotation", ROTATION_DEG), ("mean_shift", MEAN_SHIFT_SD)):
        for data in ("gauss64", "minilm"):
            grid, split, s = grid_of[data], source(data), splits[data]
            row: dict[str, Any] = {"shift": shift, "data": labels[data], "grid": list(grid),
                                   "splits": s,
                                   "unit": "degrees" if shift == "rotation" else "sd",
                                   "points": []}  # fmt: skip
            for g in grid:

                def make(i: int, g: float = g, split: Any = split,
                         shift: str = shift) -> tuple[Array, Array]:  # fmt: skip
                    ref, cur = split(i)
                    if shift == "rotation":
                        return ref, rotate_top(ref, cur, g)
                    return ref, mean_shift(ref, cur, g, np.random.default_rng([5, i]))

                spec = {"data": data, "shift": shift, "strength": g, "n": n,
                        "glosses": args.glosses, "v": 1}  # fmt: skip
                cell = run_cell(f"power_{shift}_{data}_{g:g}", spec, s, make, args)
                row["points"].append({"strength": g, **rates(cell)})
            for key in ("p_value", "p_mean", "p_bures"):
                row[f"smallest_80_{key}"] = smallest_detected(
                    grid, [p[key]["rate"] for p in row["points"]])
            out["shifts"].append(row)
    ft = finetuned_embeddings(pool, args.ft_steps)
    row = {"shift": "fine-tuned", "data": labels["minilm"], "grid": list(args.ft_steps),
           "splits": splits["minilm"],
           "unit": "steps", "points": [], "training": ft["meta"]}  # fmt: skip
    for k in sorted(set(args.ft_steps)):
        zk = ft[k].astype(np.float64)
        moved = 1.0 - np.sum(z64 * zk, axis=1) / (
            np.linalg.norm(z64, axis=1) * np.linalg.norm(zk, axis=1))

        def make_ft(i: int, zk: Array = zk) -> tuple[Array, Array]:
            a, b = halves(len(z64), np.random.default_rng([6, i]))
            return z64[a], zk[b]

        spec = {"data": "minilm", "shift": "finetune", "steps": k, "glosses": args.glosses,
                "ft": FT_SETTINGS, "v": 1}  # fmt: skip
        cell = run_cell(f"power_finetune_{k}", spec, splits["minilm"], make_ft, args)
        row["points"].append({"strength": k, "mean_one_minus_cos": float(moved.mean()),
                              **rates(cell)})  # fmt: skip
    for key in ("p_value", "p_mean", "p_bures"):
        row[f"smallest_80_{key}"] = smallest_detected(
            row["grid"], [p[key]["rate"] for p in row["points"]])
    out["shifts"].append(row)
    return out


# ---------------------------------------------------------------------------- part C

EVIDENTLY_CHILD = r"""
import faulthandler, json, resource, sys, time
t0 = time.perf_counter()
faulthandler.dump_traceback_later(float(sys.argv[4]))  # where it was, if it must be killed
def phase(name):
    print(f"PHASE {name} {time.perf_counter() - t0:.1f}", file=sys.stderr, flush=True)
import numpy as np, pandas as pd
import sklearn.manifold._t_sne as tsne_mod
import evidently
from evidently.legacy.report import Report
from evidently.legacy.metrics import EmbeddingsDriftMetric
from evidently.legacy.pipeline.column_mapping import ColumnMapping
from evidently.legacy.metrics.data_drift import embedding_drift_methods as edm
t_import = time.perf_counter() - t0
phase("imported")
tsne = {"s": 0.0}
_fit = tsne_mod.TSNE.fit_transform
def _timed(self, *a, **k):
    t = time.perf_counter()
    try:
        return _fit(self, *a, **k)
    finally:
        tsne["s"] += time.perf_counter() - t
tsne_mod.TSNE.fit_transform = _timed
ref_path, cur_path, method = sys.argv[1:4]
t1 = time.perf_counter()
ref_np = np.load(ref_path)
cur_np = np.load(cur_path)
cols = [f"e{i}" for i in range(ref_np.shape[1])]
ref = pd.DataFrame(ref_np, columns=cols, copy=False)
cur = pd.DataFrame(cur_np, columns=cols, copy=False)
del ref_np, cur_np
t_load = time.perf_counter() - t1
phase("loaded")
drift_method = None if method == "model" else getattr(edm, method)()
report = Report(metrics=[EmbeddingsDriftMetric("emb", drift_method=drift_method)])
t2 = time.perf_counter()
report.run(reference_data=ref, current_data=cur,
           column_mapping=ColumnMapping(embeddings={"emb": cols}))
res = report.as_dict()["metrics"][0]["result"]
t_report = time.perf_counter() - t2
print(json.dumps({"evidently": evidently.__version__, "import_s": t_import, "load_s": t_load,
                  "report_s": t_report, "tsne_s": tsne["s"],
                  "drift_score": float(res["drift_score"]),
                  "drift_detected": bool(res["drift_detected"]),
                  "method_name": res["method_name"],
                  "self_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def write_speed_data(data_dir: Path, n_total: int, d: int = 384) -> dict[str, Any]:
    """reference (first N/2 rows) and current (next N/2) float32 .npy files, streamed.

    Rows are iid Gaussian with eigenvalues 1/k (a fixed random rotation): no drift.
    """
    half = n_total // 2
    paths = {k: data_dir / f"drift_{k}_{n_total}.npy" for k in ("ref", "cur")}
    marker = data_dir / f"drift_{n_total}.done.json"
    info = load_json(marker)
    if info is not None and all(p.is_file() for p in paths.values()):
        return info | {"reused": True}
    from numpy.lib.format import open_memmap

    data_dir.mkdir(parents=True, exist_ok=True)
    _, spectrum, basis = gaussian_model(d, seed=777)
    scale = np.sqrt(spectrum).astype(np.float32)
    bt = basis.T.astype(np.float32)
    chunk = 200_000
    t0 = time.perf_counter()
    for j, key in enumerate(("ref", "cur")):
        out = open_memmap(paths[key], mode="w+", dtype=np.float32, shape=(half, d))
        for start in range(0, half, chunk):
            rng = np.random.default_rng([8, j, start // chunk])
            stop = min(half, start + chunk)
            zc = rng.standard_normal((stop - start, d), dtype=np.float32)
            out[start:stop] = (zc * scale) @ bt
        out.flush()
        del out
    info = {"n_total": n_total, "per_file": half, "d": d,
            "bytes_per_file": half * d * 4 + 128, "ref": str(paths["ref"]),
            "cur": str(paths["cur"]), "write_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    save_json(marker, info)
    return info | {"reused": False}


def page_cached(paths: Sequence[str]) -> float | None:
    """Fraction of the files' bytes in the page cache (util-linux fincore), or None."""
    if shutil.which("fincore") is None:
        return None
    try:
        res = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES,SIZE",
                              *paths], capture_output=True, text=True, timeout=60)  # fmt: skip
        cached = size = 0
        for line in res.stdout.split("\n"):
            if line.split():
                r, s = line.split()[:2]
                cached, size = cached + int(r), size + int(s)
        return round(cached / size, 3) if size else None
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def measured(cmd: list[str], timeout: float, as_cap: int | None = None,
             env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run ``cmd``; wall seconds and the child's own peak RSS (os.wait4), killed at timeout."""

    def limit() -> None:
        if as_cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (as_cap, as_cap))

    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, preexec_fn=limit, env=env)
        timed_out = False
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                timed_out = True
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        stdout, stderr = fo.read(), fe.read()
    return {"wall_s": round(wall, 2), "maxrss_bytes": ru.ru_maxrss * 1024, "rc": p.returncode,
            "timed_out": timed_out, "stdout": stdout, "stderr_tail": stderr[-2000:]}  # fmt: skip


def _mem_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_collapselab(info: dict[str, Any], timeout: float, one_thread: bool = False
                    ) -> dict[str, Any]:  # fmt: skip
    """``collapselab check CUR --baseline REF --json``; ``one_thread``: with
    OPENBLAS_NUM_THREADS=1 (and OMP/MKL likewise) in its environment."""
    cmd = [sys.executable, "-m", "collapselab", "check", info["cur"], "--baseline",
           info["ref"], "--json"]  # fmt: skip
    env = dict(os.environ)
    if one_thread:
        env |= {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cached, load = page_cached([info["ref"], info["cur"]]), load_average()
    r = measured(cmd, timeout, env=env)
    out = {"wall_s": r["wall_s"], "maxrss_bytes": r["maxrss_bytes"], "rc": r["rc"],
           "page_cached_before": cached, "load_before": load, "timed_out": r["timed_out"],
           "one_thread": one_thread}  # fmt: skip
    try:
        js = json.loads(r["stdout"])
    except json.JSONDecodeError:
        out["error"] = r["stderr_tail"][-500:] or "no JSON output"
        return out
    out["verdict"] = js.get("verdict")
    out["seconds_reported"] = js.get("seconds")
    drift = js.get("drift")
    if isinstance(drift, dict):
        out["drift"] = {k: drift.get(k) for k in ("p_value", "p_mean", "p_bures", "drifted",
                                                 "frechet", "blocks", "permutations")}  # fmt: skip
    else:
        out["drift"] = None
    return out


def run_evidently(py: str, info: dict[str, Any], method: str, timeout: float,
                  cap: int) -> dict[str, Any]:  # fmt: skip
    cached, load = page_cached([info["ref"], info["cur"]]), load_average()
    cmd = [py, "-c", EVIDENTLY_CHILD, info["ref"], info["cur"], method, str(timeout - 10)]
    r = measured(cmd, timeout, cap)
    out = {"method": method, "wall_s": r["wall_s"], "maxrss_bytes": r["maxrss_bytes"],
           "rc": r["rc"], "page_cached_before": cached, "load_before": load,
           "as_cap_bytes": cap}  # fmt: skip
    err = r["stderr_tail"]
    phases = [ln.split()[1:] for ln in err.splitlines() if ln.startswith("PHASE ")]
    out["phases_s"] = {k: float(v) for k, v in phases}
    if r["timed_out"]:
        out["outcome"] = f"did not finish in {timeout:.0f} s"
        # the innermost frames of the stack faulthandler printed 10 s before the kill
        frames = [ln.strip() for ln in err.splitlines() if ln.strip().startswith("File ")]
        out["where"] = frames[:4]
        done = ", ".join(f"{k} at {v:.0f} s" for k, v in out["phases_s"].items())
        inner = "?"
        if frames:  # File "/.../site-packages/pkg/mod.py", line 278 in func
            path, _, rest = frames[0][len('File "'):].partition('", line')
            inner = f"{path.split('site-packages/')[-1]} {rest.split(' in ')[-1]}"
        out["error"] = f"killed at {timeout:.0f} s ({done or 'nothing done'}; was in {inner})"
    elif r["rc"] == 0:
        try:
            out |= json.loads(r["stdout"].strip().splitlines()[-1])
            out["outcome"] = "ok"
        except (json.JSONDecodeError, IndexError):
            out["outcome"] = "no result"
            out["error"] = err[-500:]
    elif "MemoryError" in err or "Unable to allocate" in err or r["rc"] in (-9, 137):
        out["outcome"] = f"out of memory at the {cap / 2**30:.0f} GiB cap"
        out["error"] = err.strip().splitlines()[-1][-300:] if err.strip() else f"rc {r['rc']}"
    else:
        out["outcome"] = f"failed (rc {r['rc']})"
        out["error"] = err[-500:]
    return out


def part_speed(args: argparse.Namespace) -> dict[str, Any]:
    py = os.environ.get("EVIDENTLY_PYTHON", EVIDENTLY_DEFAULT)
    have_evidently = Path(py).is_file()
    if not have_evidently:
        log(f"Evidently's python {py} not found; create the venv with\n"
            "  python3 -m venv V && V/bin/pip install evidently \"pandas<3\"\n"
            "and set EVIDENTLY_PYTHON=V/bin/python; timing collapselab only")  # fmt: skip
    data_dir = Path(args.data_dir)
    out: dict[str, Any] = {"sizes": [], "evidently_python": py if have_evidently else None,
                           "timeout_s": args.timeout}  # fmt: skip
    for n_total in args.sizes:
        path = CACHE / f"speed_{n_total}.json"
        cached = None if args.fresh else load_json(path)
        if cached is not None and (cached.get("evidently") or not have_evidently):
            out["sizes"].append(cached)
            log(f"speed {n_total}: cached")
            continue
        log(f"speed {n_total}: writing {n_total // 2} + {n_total // 2} rows x 384 float32 "
            f"to {data_dir} ...")  # fmt: skip
        info = write_speed_data(data_dir, n_total)
        runs = 3 if n_total <= 1_000_000 else 1
        cl = []
        for k in range(runs):
            r = run_collapselab(info, args.timeout)
            log(f"  collapselab check run {k + 1}/{runs}: {r['wall_s']:.1f} s, peak RSS "
                f"{r['maxrss_bytes'] / 2**20:.0f} MiB, page cache before {r['page_cached_before']}")
            cl.append(r)
        r1 = run_collapselab(info, args.timeout, one_thread=True)
        log(f"  collapselab check, one BLAS thread: {r1['wall_s']:.1f} s, peak RSS "
            f"{r1['maxrss_bytes'] / 2**20:.0f} MiB")
        row: dict[str, Any] = {"n_total": n_total, "data": info, "collapselab": cl,
                               "collapselab_one_thread": r1,
                               "collapselab_median_wall_s": float(np.median(
                                   [r["wall_s"] for r in cl])),
                               "collapselab_median_maxrss_bytes": float(np.median(
                                   [r["maxrss_bytes"] for r in cl])),
                               "evidently": []}  # fmt: skip
        skip = False  # a size where the default method timed out / ran out: the others load
        # the same data the same way, and are skipped (said in the table)
        if have_evidently:
            avail = _mem_available()
            cap = 20 * 2**30
            if avail is not None:
                cap = max(4 * 2**30, min(cap, avail - 2 * 2**30))
            methods = ["model", "distance"] + (["mmd"] if n_total <= 1_000_000 else [])
            for m in methods:
                if skip:
                    why = "skipped: the default method did not finish at this size"
                    row["evidently"].append({"method": m, "outcome": "skipped", "wall_s": 0.0,
                                             "maxrss_bytes": None, "error": why})  # fmt: skip
                    continue
                log(f"  Evidently EmbeddingsDriftMetric({m}) ... (timeout {args.timeout} s, "
                    f"address space cap {cap / 2**30:.1f} GiB)")
                r = run_evidently(py, info, m, args.timeout, cap)
                log(f"    {r['outcome']}: {r['wall_s']:.1f} s, peak RSS "
                    f"{r['maxrss_bytes'] / 2**20:.0f} MiB")
                row["evidently"].append(r)
                skip = m == "model" and r["outcome"] != "ok"
        save_json(path, row)
        out["sizes"].append(row)
        if not args.keep:
            for key in ("ref", "cur"):
                Path(info[key]).unlink(missing_ok=True)
            (data_dir / f"drift_{n_total}.done.json").unlink(missing_ok=True)
            log(f"  deleted the {n_total} files (--keep keeps them)")
    return out


# ---------------------------------------------------------------------------- report


def fmt_rate(x: dict[str, Any]) -> str:
    lo, hi = x["ci95"]
    return f"{x['rate']:.3f} [{lo:.3f}, {hi:.3f}]"


def fmt_mib(b: float | None) -> str:
    return "-" if b is None else f"{b / 2**20:,.0f} MiB"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render_fpr(r: dict[str, Any]) -> list[str]:
    rows = [[x["source"], x["rows"], str(x["n_per_side"]), str(x["d"]), str(x["splits"]),
             fmt_rate(x["p_value"]), fmt_rate(x["p_mean"]), fmt_rate(x["p_bures"]),
             f"{x['seconds_per_test']:.2f}"] for x in r["rows"]]  # fmt: skip
    fs = r.get("first_second_pos", {})
    pos = "; ".join(f"{h} half: " + ", ".join(f"{v} {k}" for k, v in fs[h].items() if v)
                    for h in ("first", "second") if h in fs)  # fmt: skip
    notes = []
    if len(r["rows"]) >= 5:
        srt, fs_row = r["rows"][3], r["rows"][4]
        notes = [
            f"Ordered rows. Random halves whose rows are put back in file order (same "
            f"distribution, ordered rows): rate {srt['p_value']['rate']:.3f}, median p "
            f"{srt['p_value']['median_p']:.2f} (shuffled: "
            f"{r['rows'][2]['p_value']['median_p']:.2f}): blocks of consecutive rows then hold "
            "related glosses, they differ more among themselves than random rows do, the "
            "permutation null widens and the test becomes conservative (it flags less, also "
            "less real drift). First half vs second half in file order: rate "
            f"{fs_row['p_value']['rate']:.3f} (median p {fs_row['p_value']['median_p']:.3g}): "
            "this is not a false positive but a real difference, the halves hold different "
            "parts of WordNet (see the composition below); ordered storage (by time, topic, "
            "source) is how such a split arises. So: shuffle rows (or sample them at random) "
            "before testing when the reference and current sets should be exchangeable; a "
            "file-ordered comparison answers 'do these two parts of the file differ', and the "
            "block null then understates the noise only in the conservative direction.",
            "",
        ]
    return [
        "## A. False positives (no drift: two disjoint halves of one source)",
        "",
        f"Rate = fraction of splits with p < {r['alpha']} (drift_test defaults: 16 blocks, "
        "199 permutations; split i uses permutation seed i), with the Clopper-Pearson 95% "
        "interval (scipy.stats.binomtest). A valid test has rate <= 0.05 on the first four "
        "rows. 's per test': drift_test's own time in a worker (2 worker processes, one "
        "BLAS thread each, on the shared 2-core machine). "
        f"MiniLM: {r['pool']['glosses']} WordNet 3.0 glosses drawn at random (seed 0) "
        f"from all {r['pool']['of']} distinct glosses, kept in file order (data.noun, "
        "data.verb, data.adj, data.adv), embedded once; each split halves that pool.",
        "",
        md_table(["source", "rows", "n per side", "d", "splits", "p_value rate [95% CI]",
                  "p_mean rate", "p_bures rate", "s per test"], rows),  # fmt: skip
        "",
        f"First/second half composition: {pos}.",
        "",
        *notes,
    ]


def render_power(r: dict[str, Any]) -> list[str]:
    lines = [
        "## B. Power (a known shift applied to the current half only)",
        "",
        f"Detection rate at alpha {r['alpha']} over seeded splits (per strength: "
        f"{r['splits']['gauss64']} for the Gaussian, {r['splits']['minilm']} for MiniLM, "
        "whose d = 384 tests cost ~20x more; the reference half untouched). Rotation: the "
        "current half is rotated about the "
        "reference mean by theta in each of the five planes (v1,v2), (v3,v4), ..., (v9,v10) "
        "of the reference's top-10 principal directions (distinct eigenvalues: a rotation "
        "inside an isotropic subspace leaves the distribution unchanged and is undetectable "
        "by construction). Mean shift: current + s * sd_u * u, u a random unit direction per "
        "split, sd_u the reference's standard deviation along u. Fine-tuned: reference = "
        "frozen-model embeddings of one random half of the glosses, current = the other "
        "half's glosses embedded by MiniLM after k InfoNCE steps.",
        "",
    ]
    summary = []
    for row in r["shifts"]:
        unit = row["unit"]
        head = ["strength (" + unit + ")", "p_value rate [95% CI]", "p_mean rate",
                "p_bures rate", "median Frechet^2"]  # fmt: skip
        if row["shift"] == "fine-tuned":
            head.append("mean 1-cos(frozen, tuned)")
        body = []
        for p in row["points"]:
            b = [f"{p['strength']:g}", fmt_rate(p["p_value"]), f"{p['p_mean']['rate']:.2f}",
                 f"{p['p_bures']['rate']:.2f}", f"{p['median_frechet']:.3g}"]  # fmt: skip
            if "mean_one_minus_cos" in p:
                b.append(f"{p['mean_one_minus_cos']:.2e}")
            body.append(b)
        lines += [f"### {row['shift']}: {row['data']} ({row['splits']} splits per strength)",
                  "", md_table(head, body), ""]
        if row["shift"] == "fine-tuned":
            t = row["training"]
            lines += [f"Training: {t['train_pairs']} WordNet (gloss, example) pairs whose "
                      "synset is not in the pool, in-batch InfoNCE (collapselab.losses."
                      f"info_nce, tau {t['settings']['temperature']}), AdamW lr "
                      f"{t['settings']['lr']:g}, {t['settings']['batch_size']} pairs a step, "
                      f"seed {t['settings']['seed']}; losses "
                      + ", ".join(f"{x:.3f}" for x in t["losses"]) + ".", ""]  # fmt: skip
        grid = ", ".join(f"{g:g}" for g in row["grid"]) + " " + unit
        summary.append([row["shift"], row["data"], grid, str(row["smallest_80_p_value"]),
                        str(row["smallest_80_p_mean"]), str(row["smallest_80_p_bures"])])
    lines[6:6] = [
        "Smallest strength detected in 80% of splits (linear interpolation between grid "
        "points; '<= g' = already at the first grid point, '> g' = not within the grid):",
        "",
        md_table(["shift", "data", "grid", "p_value", "p_mean", "p_bures"], summary),
        "",
    ]
    return lines


def render_speed(r: dict[str, Any]) -> list[str]:
    rows = []
    for s in r["sizes"]:
        n = s["n_total"]
        label = f"{n / 1e6:g}M x 384"
        cl_wall, cl_rss = s["collapselab_median_wall_s"], s["collapselab_median_maxrss_bytes"]
        k = len(s["collapselab"])
        drift = s["collapselab"][0].get("drift")
        res = "no drift key" if not drift else (
            f"p={drift['p_value']:.3g}, drifted={drift['drifted']}")  # fmt: skip
        cache = s["collapselab"][0].get("page_cached_before")
        load = s["collapselab"][0].get("load_before")
        rows.append([label, "collapselab check --baseline", f"{'median of ' if k > 1 else ''}"
                     f"{k} run{'s' if k > 1 else ''}", f"{cl_wall:.1f}", fmt_mib(cl_rss), "1",
                     "1", res, "-" if cache is None else f"{cache:.0%}", f"{load}"])  # fmt: skip
        one = s.get("collapselab_one_thread")
        if one:
            pc = one.get("page_cached_before")
            rows.append([label, "collapselab check --baseline, OPENBLAS_NUM_THREADS=1",
                         "1 run", f"{one['wall_s']:.1f}", fmt_mib(one["maxrss_bytes"]),
                         f"{one['wall_s'] / cl_wall:.2f}x", f"{one['maxrss_bytes'] / cl_rss:.1f}x",
                         "same test", "-" if pc is None else f"{pc:.0%}",
                         f"{one.get('load_before')}"])  # fmt: skip
        for e in s["evidently"]:
            ok = e["outcome"] == "ok"
            wall = f"{e['wall_s']:.1f}" if ok else f"{e['outcome']} ({e['wall_s']:.0f} s)"
            if e["outcome"] == "skipped":
                wall = "skipped"
            res = (f"score {e['drift_score']:.3g}, detected={e['drift_detected']}; imports "
                   f"{e['import_s']:.0f} s, np.load + DataFrame {e['load_s']:.0f} s, t-SNE "
                   f"{e['tsne_s']:.0f} s" if ok else
                   e.get("error", "")[:200].replace("|", "/"))  # fmt: skip
            pc = e.get("page_cached_before")
            rows.append([label, f"Evidently EmbeddingsDriftMetric ({e['method']}"
                         f"{', default' if e['method'] == 'model' else ''})", "1 run", wall,
                         fmt_mib(e["maxrss_bytes"]),
                         f"{e['wall_s'] / cl_wall:.1f}x" if ok else "-",
                         f"{e['maxrss_bytes'] / cl_rss:.1f}x" if ok else "-", res,
                         "-" if pc is None else f"{pc:.0%}",
                         f"{e.get('load_before')}"])  # fmt: skip
    ev = r.get("evidently_python") or "not installed"
    return [
        "## C. Speed and memory: collapselab check vs Evidently",
        "",
        "'N x 384' = N rows in all: reference = N/2 rows in one float32 .npy file, current "
        "= the other N/2 rows in a second file (1M x 384: 2 files of 500,000 x 384, 768 MB "
        "each; 10M x 384: 2 files of 5,000,000 x 384, 7.7 GB each). Rows: iid Gaussian, "
        "eigenvalues 1/k under a fixed random rotation (no drift between the files), "
        "written in 200,000-row chunks just before the runs (nothing dropped from the page "
        "cache; the 'page cache' column is the share of both files cached right before "
        "each run, from fincore).",
        "",
        "collapselab: `python -m collapselab check CUR --baseline REF --json` as a "
        "subprocess (the whole diagnosis plus the drift test); Evidently "
        f"({ev}): a subprocess that np.loads both files into pandas DataFrames (loading "
        "counted) and runs a legacy Report with EmbeddingsDriftMetric (column_mapping "
        "embeddings = all 384 columns); its default method is 'model' (a classifier, ROC "
        "AUC > 0.55) and the metric always also fits a t-SNE of 2 x 2,500 sampled rows for "
        "its plot (time shown). Timeout "
        f"{r['timeout_s']:.0f} s, address-space cap (RLIMIT_AS) shown with each failure. Wall "
        "seconds and the child's own peak RSS (os.wait4). Ratios: row / collapselab's default "
        "row, same run of this script. 'load avg': the 1-minute load average just before "
        "the run (the machine is shared; > 2 means the 2 cores were contended).",
        "",
        md_table(["data", "tool", "runs", "wall s", "peak RSS", "time ratio", "RSS ratio",
                  "result", "page cache", "load avg"], rows),  # fmt: skip
        "",
    ]


def render(all_parts: dict[str, Any], commands: dict[str, str]) -> str:
    import collapselab

    lines = [
        "# Drift test (collapselab.drift.drift_test): false positives, power, speed",
        "",
        "Reproduce (each part is cached in benchmarks/drift/cache/; delete it to recompute):",
        "",
        "```",
        *[f"{commands[p]}   # part {p}" for p in PARTS if p in commands],
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared), Python "
        f"{platform.python_version()}, numpy {np.__version__}, collapselab "
        f"{getattr(collapselab, '__version__', '?')}.",
        "",
    ]
    renderers = {"fpr": render_fpr, "power": render_power, "speed": render_speed}
    for p in PARTS:
        if p in all_parts:
            lines += renderers[p](all_parts[p])
            lines += [f"Part {p}: {all_parts[p]['_seconds'] / 60:.0f} min of wall time (summed "
                      "over the runs that computed it).", ""]
        else:
            lines += [f"## Part {p}: not run yet (`python benchmarks/bench_drift.py --part "
                      f"{p}`)", ""]  # fmt: skip
    if "notes" in all_parts:
        lines += ["## Notes", "", all_parts["notes"], ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=(*PARTS, "all"), action="append",
                        help="run this part only (repeatable; default: all)")  # fmt: skip
    parser.add_argument("--sizes", default="1000000,10000000",
                        help="speed: rows in all (reference + current), comma-separated")
    parser.add_argument("--splits", type=int, default=1000, help="fpr: splits at d=64")
    parser.add_argument("--splits-384", type=int, default=200,
                        help="fpr: splits at d=384 (Gaussian, MiniLM; a quarter of it for "
                        "the file-ordered random halves, at most 20 for first vs second "
                        "half)")  # fmt: skip
    parser.add_argument("--power-splits", type=int, default=100,
                        help="power: splits per strength, Gaussian d=64")
    parser.add_argument("--power-splits-384", type=int, default=40,
                        help="power: splits per strength, MiniLM (d=384)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the tests")
    parser.add_argument("--gauss-n", type=int, default=4000, help="Gaussian rows per side")
    parser.add_argument("--glosses", type=int, default=8000, help="WordNet glosses embedded")
    parser.add_argument("--ft-steps", default=",".join(map(str, FT_STEPS)),
                        help="power: fine-tuning step counts")
    parser.add_argument("--data-dir", default=os.environ.get(
        "DRIFT_DATA_DIR", os.path.join(tempfile.gettempdir(), "collapselab-drift-data")),
        help="speed: where the big .npy files go (not the repository)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0, help="speed: per-run timeout")
    parser.add_argument("--keep", action="store_true", help="speed: keep the .npy files")
    parser.add_argument("--fresh", action="store_true", help="recompute the selected parts")
    parser.add_argument("--render-only", action="store_true", help="rewrite drift.md/json")
    args = parser.parse_args(argv)
    args.sizes = [int(float(x)) for x in args.sizes.split(",") if x.strip()]
    args.ft_steps = [int(x) for x in args.ft_steps.split(",") if x.strip()]
    parts = [p for p in PARTS if not args.part or "all" in args.part or p in args.part]
    if args.render_only:
        parts = []
    done = load_json(CACHE / "parts.json") or {"parts": {}, "commands": {}}
    cmd = "nice python benchmarks/bench_drift.py " + shlex.join(
        sys.argv[1:] if argv is None else list(argv))
    runners = {"fpr": part_fpr, "power": part_power, "speed": part_speed}
    for p in parts:
        log(f"== part {p}")
        t0 = time.perf_counter()
        res = runners[p](args)
        wall, prev = time.perf_counter() - t0, done["parts"].get(p, {})
        # wall time summed over the runs that computed the part (a resumed run adds to it;
        # a rerun served from the cache adds nothing)
        before = 0.0 if args.fresh else prev.get("_seconds", 0.0)
        res["_seconds"] = before + (wall if wall >= 60 or not before else 0.0)
        done["parts"][p] = res
        done["commands"][p] = cmd
        save_json(CACHE / "parts.json", done)
    md = render(done["parts"], done["commands"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "drift.md").write_text(md)
    save_json(RESULTS / "drift.json", {"alpha": ALPHA, "commands": done["commands"],
                                       **done["parts"]})  # fmt: skip
    print(md)


if __name__ == "__main__":
    main()
