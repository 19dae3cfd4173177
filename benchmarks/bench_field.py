"""The field's dimensional-collapse results, reproduced: Jing et al. (2022), Tian et al. (2021).

Runs :mod:`collapselab.experiments.jing` and :mod:`collapselab.experiments.tian` over
several seeds and writes ``benchmarks/results/field.md`` (+ ``field.json``, every run of
every seed) and the figures ``benchmarks/results/field_*.png``, with the command that made
them. Every number in field.md is a mean over the seeds with its [min, max] (a count
"k/n": in k of the n seeds).

Usage::

    nice python benchmarks/bench_field.py          # ~8 CPU-minutes (445 s) on one core
    python benchmarks/bench_field.py --seeds 2 --epochs 3 --out /tmp/field.md   # a look
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from collapselab._atomic import atomic_open
from collapselab.experiments import jing, tian
from collapselab.experiments.field_section import log_singular_values, plot_spectra
from collapselab.report.plots import OKABE_ITO, new_figure, save_figure

GRID_EMA = (0.0, 0.99)
GRID_WD = (0.0, 0.05, 0.3)
GRID_RATIO = (0.03, 0.3, 3.0)
#: the slow-predictor study: training lengths and predictor lr ratios
SLOW_STEPS = (500, 2000, 8000, 20000)
SLOW_RATIOS = (0.03, 0.3)

Group = tuple[str, list[Any]]  # a row: its name and one record per seed


# ------------------------------------------------------------------------ summaries


def mm(values: Sequence[float], fmt: str = ".2f") -> str:
    """``mean [min, max]`` of the seeds' values."""
    a = np.asarray(values, dtype=float)
    return f"{a.mean():{fmt}} [{a.min():{fmt}}, {a.max():{fmt}}]"


def gm(values: Sequence[float]) -> str:
    """``geometric mean [min, max]`` of positive values spanning decades (3 digits)."""
    a = np.maximum(np.asarray(values, dtype=float), 1e-300)
    return f"{10 ** np.log10(a).mean():.3g} [{a.min():.3g}, {a.max():.3g}]"


def count(flags: Sequence[bool]) -> str:
    """``k/n``: in how many of the seeds."""
    return f"{sum(bool(f) for f in flags)}/{len(flags)}"


def _log_ratio(s: jing.Spectrum, k: int) -> float:
    """``log10(sigma_k / sigma_1)``, k counted from 1."""
    return float(log_singular_values(s)[k - 1])


# ------------------------------------------------------------------------ Jing et al.


def _jing_seeds(cfg: jing.LinearConfig, name: str, seeds: Sequence[int]) -> Group:
    return name, [jing.linear_contrastive(replace(cfg, seed=s), name) for s in seeds]


def run_jing(epochs: int, seeds: Sequence[int], say: Callable[[str], None]) -> dict[str, Any]:
    lc = jing.LinearConfig
    eu = dict(loss="euclidean", lr=0.05)
    say("jing: strong augmentation (project's settings)")
    strong = [
        _jing_seeds(lc(), "weak aug (sigma 0.2)", seeds),
        _jing_seeds(lc(strong_dims=4), "strong aug on 4 dims (sigma 2)", seeds),
        _jing_seeds(lc(**eu), "weak aug (sigma 0.2)", seeds),  # type: ignore[arg-type]
        _jing_seeds(lc(strong_dims=4, **eu), "strong aug on 4 dims (sigma 2)",  # type: ignore[arg-type]
                    seeds),
    ]  # fmt: skip
    say("jing: the authors' toy case 1")
    c1 = jing.AUTHORS_CASE1
    authors1 = [
        _jing_seeds(c1, "noise 1.5 on 8 dims (README)", seeds),
        _jing_seeds(replace(c1, strong_noise=0.01), "noise 0.01 on 8 dims (default)", seeds),
    ]  # fmt: skip
    say("jing: implicit regularisation (project's settings)")
    weak = dict(noise=0.02, data_decay=0.1, steps=1500)
    implicit = [
        _jing_seeds(lc(layers=1, init_scale=0.01, **weak), "1 layer, init 0.01", seeds),  # type: ignore[arg-type]
        _jing_seeds(lc(layers=2, init_scale=0.01, **weak), "2 layers, init 0.01", seeds),  # type: ignore[arg-type]
        _jing_seeds(lc(layers=2, init_scale=1.0, **weak), "2 layers, init 1", seeds),  # type: ignore[arg-type]
    ]  # fmt: skip
    say("jing: the authors' toy case 2")
    c2 = jing.AUTHORS_CASE2
    authors2 = [
        _jing_seeds(replace(c2, steps=0), "2 layers, init (0 steps)", seeds),
        _jing_seeds(c2, "2 layers, 10000 steps", seeds),
        _jing_seeds(replace(c2, layers=1, steps=0), "1 layer, init (0 steps)", seeds),
        _jing_seeds(replace(c2, layers=1), "1 layer, 10000 steps", seeds),
    ]  # fmt: skip
    say("jing: projector study on digits")
    projector: dict[str, list[jing.ProjectorRun]] = {h: [] for h in jing.HEADS}
    for s in seeds:
        for r in jing.projector_study(jing.ProjectorConfig(epochs=epochs, seed=s)):
            projector[r.name].append(r)
    return {"strong": strong, "authors_case1": authors1, "implicit": implicit,
            "authors_case2": authors2, "projector": projector}  # fmt: skip


def _jing_rows(groups: list[Group], extra_k: int | None = None) -> list[str]:
    head = ("| run | loss | effective rank | numerical rank | collapsed dims (sigma < 1e-3 "
            "sigma_1) | log10 sigma_min/sigma_1 |")  # fmt: skip
    if extra_k is not None:
        head += f" log10 sigma_{extra_k}/sigma_1 |"
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, runs in groups:
        d = len(runs[0].singular_values)
        row = (f"| {name} | {runs[0].extra['loss_name']} | "
               f"{mm([s.effective_rank for s in runs])} | "
               f"{mm([s.numerical_rank for s in runs], '.1f')} | "
               f"{mm([s.collapsed_dims for s in runs], '.1f')} of {d} | "
               f"{mm([_log_ratio(s, d) for s in runs], '.1f')} |")  # fmt: skip
        if extra_k is not None:
            row += f" {mm([_log_ratio(s, extra_k) for s in runs], '.1f')} |"
        rows.append(row)
    return rows


def _projector_rows(projector: dict[str, list[jing.ProjectorRun]], which: str) -> list[str]:
    probe = which == "representation"
    rows = ["| head | dims | effective rank | numerical rank | collapsed dims (sigma < 1e-3 "
            "sigma_1) | log10 sigma_min/sigma_1 |" + (" linear probe |" if probe else ""),
            "|---|---|---|---|---|---|" + ("---|" if probe else "")]  # fmt: skip
    for name, runs in projector.items():
        sp = [getattr(r, which) for r in runs]
        d = len(sp[0].singular_values)
        row = (f"| {name} | {d} | {mm([s.effective_rank for s in sp])} | "
               f"{mm([s.numerical_rank for s in sp], '.1f')} | "
               f"{mm([s.collapsed_dims for s in sp], '.1f')} | "
               f"{mm([_log_ratio(s, d) for s in sp], '.1f')} |")  # fmt: skip
        if probe:
            row += f" {mm([s.linear_accuracy for s in sp], '.3f')} |"
        rows.append(row)
    return rows


# ------------------------------------------------------------------------ Tian et al.


def run_tian(seeds: Sequence[int], say: Callable[[str], None]) -> dict[str, Any]:
    tc = tian.TianConfig
    say("tian: grid")
    grid = [
        (e, w, r, tian.run_seeds(tc(ema=e, weight_decay=w, predictor_lr_ratio=r, steps=2000),
                                 seeds))
        for e, w, r in itertools.product(GRID_EMA, GRID_WD, GRID_RATIO)
    ]  # fmt: skip
    say("tian: predictors and losses")
    align = dict(steps=2000, eval_every=10, weight_decay=0.05)
    curves: list[Group] = []
    for name, kw in (
        ("SGD predictor, alpha_p 0.3", {"predictor_lr_ratio": 0.3}),
        (f"DirectPred, eps {tc().directpred_eps:g}", {"predictor": "directpred"}),
        ("fixed identity predictor", {"predictor": "identity"}),
    ):
        for loss in ("l2", "byol"):
            curves.append((name, tian.run_seeds(tc(loss=loss, **align, **kw), seeds)))  # type: ignore[arg-type]
    say("tian: slow predictor")
    slow = [
        (f"alpha_p {r}, {n} steps",
         tian.run_seeds(tc(weight_decay=0.05, predictor_lr_ratio=r, steps=n, eval_every=500),
                        seeds))
        for r in SLOW_RATIOS for n in SLOW_STEPS
    ]  # fmt: skip
    return {"grid": grid, "curves": curves, "slow": slow}


def _plot_tian(res: dict[str, Any], out_dir: Path) -> None:
    fig = new_figure()
    ax = fig.subplots()
    for i, (name, runs) in enumerate(res["curves"]):
        r = runs[0]
        if r.config.predictor == "identity":
            continue  # Wp = I is aligned with every F by construction
        ax.plot(r.steps, r.alignment, color=OKABE_ITO[i % len(OKABE_ITO)],
                ls="-" if r.config.loss == "l2" else "--",
                label=f"{name}, {r.loss_name}")  # fmt: skip
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("eigenspace alignment of Wp with F")
    ax.set_title("Tian et al. 2021: eigenspace alignment (linear model, seed 0)", fontsize=9)
    ax.legend(fontsize=6)
    ax.grid(True, alpha=0.3)
    save_figure(fig, out_dir / "field_tian_alignment.png")

    fig = new_figure(ncols=2, width=4.2)
    axes = fig.subplots(1, 2)
    n = len(res["grid"][0][3])
    for ax, ema in zip(axes, GRID_EMA, strict=True):
        cells = np.array([[next(
            float(np.mean([math.log10(max(r.relative_variance, 1e-300)) for r in runs]))
            for e, w_, a_, runs in res["grid"] if e == ema and w_ == w and a_ == a)
            for a in GRID_RATIO] for w in GRID_WD])  # fmt: skip
        im = ax.imshow(cells, cmap="viridis", vmin=-30, vmax=1, origin="lower")
        for (i, j), v in np.ndenumerate(cells):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(GRID_RATIO)), [str(a) for a in GRID_RATIO])
        ax.set_yticks(range(len(GRID_WD)), [str(w) for w in GRID_WD])
        ax.set_xlabel("predictor lr ratio alpha_p")
        ax.set_ylabel("weight decay eta")
        ax.set_title(f"EMA {ema}: mean log10 relative variance ({n} seeds)", fontsize=8)
    fig.colorbar(im, ax=axes, shrink=0.8)
    save_figure(fig, out_dir / "field_tian_grid.png")


def _tian_rows(groups: list[Group], at: Sequence[int] = ()) -> list[str]:
    cols = ["run", "loss", *[f"alignment at step {k}" for k in at], "final alignment",
            "relative variance (geo. mean)", "effective rank", "collapsed"]  # fmt: skip
    rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, runs in groups:
        cells = [name, runs[0].loss_name]
        for k in at:
            cells.append(mm([dict(zip(r.steps, r.alignment, strict=True))[k] for r in runs],
                            ".3f"))  # fmt: skip
        cells += [mm([r.alignment[-1] for r in runs], ".3f"),
                  gm([r.relative_variance for r in runs]),
                  mm([r.effective_rank for r in runs]),
                  count([r.collapsed for r in runs])]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


# ------------------------------------------------------------------------ report


def render(command: str, jr: dict[str, Any], tr: dict[str, Any], seeds: Sequence[int],
           epochs: int, seconds: float, cpu_seconds: float) -> str:  # fmt: skip
    eta_star = 1 / (4 * (1 + tian.TianConfig().noise ** 2))
    n = len(seeds)
    seed_text = f"seeds {seeds[0]}-{seeds[-1]}" if n > 1 else f"seed {seeds[0]}"
    pc = jing.ProjectorConfig()
    lines = [
        "# The field's results, reproduced: Jing et al. 2022, Tian et al. 2021",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, torch {torch.__version__}, one thread, "
        f"{seconds:.0f} s wall, {cpu_seconds:.0f} s CPU.",
        "",
        f"Every run is repeated over {n} seeds ({seed_text}); each cell is the mean over",
        "the seeds with [min, max], relative variances as a geometric mean, and",
        "'collapsed' counts the seeds (k/n). Figures show seed 0 (the grid: the mean).",
        "log10 sigma_min/sigma_1 = -17.0 is the floor drawn for round-off zeros.",
        "",
        "## Jing et al. 2022 (a): strong augmentation, one linear layer",
        "",
        "### The project's settings",
        "",
        "z = W x, x ~ N(0, I_16), fresh batch of 128 each step; each view adds Gaussian",
        "noise of std 0.2 (weak) or 2 on the last 4 directions (strong: noise variance 4 >",
        "data variance 1). SGD, 2000 steps; NT-Xent: lr 0.5, tau 0.5; Euclidean: lr 0.05.",
        "Figure: `field_jing_strong_aug.png`.",
        "",
        *_jing_rows(jr["strong"]),
        "",
        "### The authors' toy case 1 (`toy_task/case_1.py` of their DirectCLR repository)",
        "",
        "nn.Linear(16, 16) with bias (torch's init), x ~ N(0, I_16), a fixed set of 10000,",
        "batches of 128; each view adds noise of std 1.5 (their README) or 0.01 (their",
        "default) on the last 8 dims and none on the first 8; raw dot-product InfoNCE",
        "(logits z1 z2^T / 0.1); SGD lr 0.001, 10000 steps. Spectrum of 1000 fresh clean",
        "inputs (they print the covariance eigenvalues, the squares of these singular",
        "values). sigma_9 is the largest of the 8 smallest singular values.",
        "Figure: `field_jing_authors.png`.",
        "",
        *_jing_rows(jr["authors_case1"], extra_k=9),
        "",
        "## Jing et al. 2022 (b): implicit regularisation, two linear layers",
        "",
        "### The project's settings",
        "",
        "Weak augmentation (noise std 0.02, below the smallest data std 0.1; data std",
        "log-spaced 1 .. 0.1), NT-Xent (tau 0.5), lr 0.5, 1500 steps.",
        "Figure: `field_jing_two_layer.png`.",
        "",
        *_jing_rows(jr["implicit"]),
        "",
        "### The authors' toy case 2 (`toy_task/case_2.py`)",
        "",
        "Two 16 x 16 linear layers without bias, each initialised with singular values",
        "exp(-0.35 k), k = 0..15 (10^0 .. 10^-2.3); x ~ N(0, I_16), a fixed set of 10000;",
        "noise 0.001 on every dim; raw dot-product InfoNCE (tau 0.1); SGD lr 0.01, 10000",
        "steps (their case 2 is the 2-layer one; the 1-layer rows, same init and loss,",
        "are the control). The rows at 0 steps are the same seeds' initialisation: what",
        "training adds to it. Figure: `field_jing_authors.png`.",
        "",
        *_jing_rows(jr["authors_case2"]),
        "",
        "## Jing et al. 2022 (c): projector and DirectCLR on digits",
        "",
        f"MLP encoder 64-256-64, NT-Xent (tau {pc.temperature}), AdamW, {epochs} epochs;",
        "within a seed every head gets the same encoder init and the same views;",
        f"DirectCLR d0 = {pc.d0}.",
        "The representation h is the encoder's 64-d output (what is probed); the embedding",
        "z = head(h) is what the loss sees and what the paper's Fig. 2 shows collapsing",
        "(h itself without projector, its first 16 dims for DirectCLR).",
        "Figure: `field_jing_projector.png` (seed 0, both).",
        "",
        "Representation h (test split):",
        "",
        *_projector_rows(jr["projector"], "representation"),
        "",
        "Embedding z = head(h) (test split):",
        "",
        *_projector_rows(jr["projector"], "embedding"),
        "",
        "## Tian et al. 2021: linear predictor, EMA, weight decay, DirectPred",
        "",
        "Linear online W, predictor Wp, EMA target; sigma = 1, SGD lr 0.05, batch 64, 2000",
        "steps unless stated. relative variance = tr F_end / tr F_start. Collapsed: under",
        f"Eq. 1, relative variance < {tian.COLLAPSED_BELOW}; under BYOL's normalised loss "
        "(blind to scale),",
        f"effective rank < {tian.COLLAPSED_ERANK:g}. Weight-decay threshold of Eq. 1, eta* = "
        f"1/(4(1+sigma^2)) = {eta_star:.3f}.",
        "Figures: `field_tian_grid.png`, `field_tian_alignment.png`.",
        "",
        "### Weight decay, EMA and predictor speed (Eq. 1)",
        "",
        "| EMA | weight decay | predictor lr ratio | loss | relative variance (geo. mean) "
        "| effective rank | final alignment | collapsed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e, w, r, runs in tr["grid"]:
        lines.append(f"| {e} | {w} | {r} | {runs[0].loss_name} | "
                     f"{gm([x.relative_variance for x in runs])} | "
                     f"{mm([x.effective_rank for x in runs])} | "
                     f"{mm([x.alignment[-1] for x in runs], '.3f')} | "
                     f"{count([x.collapsed for x in runs])} |")  # fmt: skip
    dp = tian.TianConfig()
    lines += [
        "",
        "### Predictors under both losses (weight decay 0.05, EMA 0)",
        "",
        f"DirectPred: Wp = U diag(sqrt(s / max s) + eps) U^T, eps = {dp.directpred_eps:g} "
        f"and F_hat <- {dp.directpred_rho} F_hat +",
        f"{1 - dp.directpred_rho:g} f f^T (the official code's dyn_eps=0.01, "
        "dyn_lambda=0.3). Alignment measured every 10 steps.",
        "",
        *_tian_rows(tr["curves"], at=(0, 10, 100)),
        "",
        "### The slow predictor over training lengths (Eq. 1, weight decay 0.05, EMA 0)",
        "",
        *_tian_rows(tr["slow"]),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20, help="epochs of the digits runs")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..n-1 of every run")
    ap.add_argument("--out", default="benchmarks/results/field.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    seeds = tuple(range(args.seeds))
    command = "python " + " ".join(["benchmarks/bench_field.py", *(argv or sys.argv[1:])])
    t0, c0 = time.perf_counter(), time.process_time()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.0f}s] {msg}", file=sys.stderr, flush=True)

    jr = run_jing(args.epochs, seeds, say)
    tr = run_tian(seeds, say)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    first = {k: [(name, runs[0]) for name, runs in v] for k, v in jr.items() if k != "projector"}
    save_figure(plot_spectra([s for _, s in first["strong"][:2]] + [
        replace(s, name=s.name + ", Euclidean") for _, s in first["strong"][2:]],
        "Jing et al. 2022, strong augmentation (linear model, seed 0)"),
        out.parent / "field_jing_strong_aug.png")  # fmt: skip
    save_figure(plot_spectra([s for _, s in first["implicit"]],
                             "Jing et al. 2022, implicit regularisation (weak aug, seed 0)"),
                out.parent / "field_jing_two_layer.png")  # fmt: skip
    save_figure(plot_spectra(
        [replace(s, name="case 1: " + s.name) for _, s in first["authors_case1"]]
        + [replace(s, name="case 2: " + s.name) for _, s in first["authors_case2"]],
        "Jing et al. 2022, the authors' toy settings (seed 0)"),
        out.parent / "field_jing_authors.png")  # fmt: skip
    proj = [x for runs in jr["projector"].values() for x in (
        replace(runs[0].representation, name=f"{runs[0].name}: representation"),
        replace(runs[0].embedding, name=f"{runs[0].name}: embedding"))]  # fmt: skip
    save_figure(plot_spectra(proj, "Jing et al. 2022, digits: representation and embedding "
                             "(seed 0)"), out.parent / "field_jing_projector.png")  # fmt: skip
    _plot_tian(tr, out.parent)
    with atomic_open(out, "w") as fh:
        fh.write(render(command, jr, tr, seeds, args.epochs, seconds, cpu_seconds))

    def groups(gs: list[Group]) -> list[dict[str, Any]]:
        return [{"name": name, "runs": [r.to_dict() for r in runs]} for name, runs in gs]

    payload = {
        "command": command,
        "seeds": list(seeds),
        "jing": {
            **{k: groups(v) for k, v in jr.items() if k != "projector"},
            "projector": {h: [r.to_dict() for r in runs] for h, runs in jr["projector"].items()},
        },
        "tian": {
            "grid": [{"ema": e, "weight_decay": w, "predictor_lr_ratio": r,
                      "runs": [x.to_dict() for x in runs]} for e, w, r, runs in tr["grid"]],
            "curves": groups(tr["curves"]),
            "slow": groups(tr["slow"]),
        },
    }  # fmt: skip
    with atomic_open(out.with_suffix(".json"), "w") as fh:
        json.dump(payload, fh, indent=1)
    say(f"wrote {out} ({seconds:.0f} s wall, {cpu_seconds:.0f} s CPU)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
