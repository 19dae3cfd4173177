"""The field's dimensional-collapse results, reproduced: Jing et al. (2022), Tian et al. (2021).

Runs :mod:`collapselab.experiments.jing` and :mod:`collapselab.experiments.tian` and writes
``benchmarks/results/field.md`` (+ ``field.json``) and the figures
``benchmarks/results/field_*.png``, with the command that made them.

Usage::

    python benchmarks/bench_field.py                 # ~5-10 min on one CPU core
    python benchmarks/bench_field.py --epochs 5 --out /tmp/field.md   # quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import sys
import time
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


def _plot_spectra(runs: list[jing.Spectrum], title: str, path: Path) -> None:
    save_figure(plot_spectra(runs, title), path)


def run_jing(epochs: int) -> dict[str, list[jing.Spectrum]]:
    lc = jing.LinearConfig
    strong = [
        jing.linear_contrastive(lc(), "weak aug (sigma 0.2), NT-Xent"),
        jing.linear_contrastive(lc(strong_dims=4), "strong aug on 4 dims (sigma 2), NT-Xent"),
        jing.linear_contrastive(lc(loss="euclidean", lr=0.05),
                                "weak aug, Euclidean InfoNCE (Eq. 1)"),
        jing.linear_contrastive(lc(loss="euclidean", lr=0.05, strong_dims=4),
                                "strong aug on 4 dims, Euclidean InfoNCE (Eq. 1)"),
    ]  # fmt: skip
    weak = dict(noise=0.02, data_decay=0.1, steps=1500)
    implicit = [
        jing.linear_contrastive(lc(layers=1, init_scale=0.01, **weak), "1 layer, init 0.01"),
        jing.linear_contrastive(lc(layers=2, init_scale=0.01, **weak), "2 layers, init 0.01"),
        jing.linear_contrastive(lc(layers=2, init_scale=1.0, **weak), "2 layers, init 1"),
    ]  # fmt: skip
    projector = jing.projector_study(jing.ProjectorConfig(epochs=epochs))
    return {"strong": strong, "implicit": implicit, "projector": projector}


def run_tian() -> dict[str, Any]:
    grid = [
        tian.run(tian.TianConfig(ema=e, weight_decay=w, predictor_lr_ratio=r, steps=2000))
        for e, w, r in itertools.product(GRID_EMA, GRID_WD, GRID_RATIO)
    ]
    align_cfg = dict(steps=2000, eval_every=2)
    curves = {
        "SGD predictor, Eq. 1, wd 0.05, alpha_p 0.3": tian.run(tian.TianConfig(
            weight_decay=0.05, predictor_lr_ratio=0.3, **align_cfg)),
        "SGD predictor, BYOL loss, wd 0.05": tian.run(tian.TianConfig(
            loss="byol", weight_decay=0.05, **align_cfg)),
        "DirectPred, BYOL loss, wd 0.05": tian.run(tian.TianConfig(
            loss="byol", predictor="directpred", weight_decay=0.05, **align_cfg)),
        "fixed identity predictor, BYOL loss, wd 0.05": tian.run(tian.TianConfig(
            loss="byol", predictor="identity", weight_decay=0.05, **align_cfg)),
    }  # fmt: skip
    return {"grid": grid, "curves": curves}


def _plot_tian(res: dict[str, Any], out_dir: Path) -> None:
    fig = new_figure()
    ax = fig.subplots()
    for i, (name, r) in enumerate(res["curves"].items()):
        if name.startswith("fixed identity"):
            continue  # Wp = I is aligned with every F by construction
        ax.plot(r.steps, r.alignment, color=OKABE_ITO[i], label=name)
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("training step")
    ax.set_ylabel("eigenspace alignment of Wp with F")
    ax.set_title("Tian et al. 2021: eigenspace alignment (linear model)", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, alpha=0.3)
    save_figure(fig, out_dir / "field_tian_alignment.png")

    fig = new_figure(ncols=2, width=4.2)
    axes = fig.subplots(1, 2)
    grid = res["grid"]
    for ax, ema in zip(axes, GRID_EMA, strict=True):
        cells = np.array([[next(math.log10(max(r.relative_variance, 1e-30)) for r in grid
                                if r.config.ema == ema and r.config.weight_decay == w
                                and r.config.predictor_lr_ratio == a) for a in GRID_RATIO]
                          for w in GRID_WD])  # fmt: skip
        im = ax.imshow(cells, cmap="viridis", vmin=-20, vmax=1, origin="lower")
        for (i, j), v in np.ndenumerate(cells):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_xticks(range(len(GRID_RATIO)), [str(a) for a in GRID_RATIO])
        ax.set_yticks(range(len(GRID_WD)), [str(w) for w in GRID_WD])
        ax.set_xlabel("predictor lr ratio alpha_p")
        ax.set_ylabel("weight decay eta")
        ax.set_title(f"EMA {ema}: log10 relative variance", fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8)
    save_figure(fig, out_dir / "field_tian_grid.png")


def _jing_rows(runs: list[jing.Spectrum]) -> list[str]:
    rows = ["| run | effective rank | numerical rank | collapsed dims (sigma < 1e-3 sigma_1) "
            "| log10 sigma_min/sigma_1 | linear probe |", "|---|---|---|---|---|---|"]  # fmt: skip
    for s in runs:
        acc = "-" if s.linear_accuracy is None else f"{s.linear_accuracy:.3f}"
        rows.append(f"| {s.name} | {s.effective_rank:.2f} | {s.numerical_rank} | "
                    f"{s.collapsed_dims} of {len(s.singular_values)} | "
                    f"{log_singular_values(s)[-1]:.1f} | {acc} |")  # fmt: skip
    return rows


def render(command: str, jr: dict[str, list[jing.Spectrum]], tr: dict[str, Any],
           seconds: float) -> str:  # fmt: skip
    eta_star = 1 / (4 * (1 + tian.TianConfig().noise ** 2))
    lines = [
        "# The field's results, reproduced: Jing et al. 2022, Tian et al. 2021",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, torch {torch.__version__}, {seconds:.0f} s.",
        "",
        "## Jing et al. 2022 (a): strong augmentation, one linear layer",
        "",
        "z = W x, x ~ N(0, I_16), each view adds Gaussian noise of std 0.2 (weak) or 2 on",
        "the last 4 directions (strong: noise variance 4 > data variance 1). SGD, 2000 steps.",
        "Figure: `field_jing_strong_aug.png`.",
        "",
        *_jing_rows(jr["strong"]),
        "",
        "## Jing et al. 2022 (b): implicit regularisation, two linear layers",
        "",
        "Weak augmentation (noise std 0.02, below the smallest data std 0.1; data std",
        "log-spaced 1 .. 0.1), NT-Xent, 1500 steps. Figure: `field_jing_two_layer.png`.",
        "",
        *_jing_rows(jr["implicit"]),
        "",
        "## Jing et al. 2022 (c): projector and DirectCLR on digits",
        "",
        "MLP encoder 64-256-64, NT-Xent (tau 0.2), AdamW, the same seed and views for each",
        f"head; DirectCLR d0 = {jing.ProjectorConfig().d0}. Spectrum of the 64-d test-set",
        "representation. Figure: `field_jing_projector.png`.",
        "",
        *_jing_rows(jr["projector"]),
        "",
        "## Tian et al. 2021: linear predictor, EMA, weight decay, DirectPred",
        "",
        "Linear online W, predictor Wp, EMA target; Eq. 1 (unnormalised) loss, sigma = 1,",
        "SGD lr 0.05, 2000 steps. relative variance = tr F_end / tr F_start; collapsed when",
        f"< {tian.COLLAPSED_BELOW}. Weight-decay threshold eta* = 1/(4(1+sigma^2)) = "
        f"{eta_star:.3f}. Figures: `field_tian_grid.png`, `field_tian_alignment.png`.",
        "",
        "| EMA | weight decay | predictor lr ratio | relative variance | effective rank "
        "| final alignment | collapsed |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in tr["grid"]:
        c = r.config
        lines.append(f"| {c.ema} | {c.weight_decay} | {c.predictor_lr_ratio} | "
                     f"{r.relative_variance:.3g} | {r.effective_rank:.2f} | "
                     f"{r.alignment[-1]:.3f} | {'yes' if r.collapsed else 'no'} |")  # fmt: skip
    lines += [
        "",
        "Alignment over training (eval every 2 steps):",
        "",
        "| run | alignment at step 0 | at step 10 | at step 100 | final | effective rank "
        "| normalised std | collapsed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in tr["curves"].items():
        at = dict(zip(r.steps, r.alignment, strict=True))
        lines.append(f"| {name} | {at[0]:.3f} | {at[10]:.3f} | {at[100]:.3f} | "
                     f"{r.alignment[-1]:.3f} | {r.effective_rank:.2f} | "
                     f"{r.normalized_std:.3f} | {'yes' if r.collapsed else 'no'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the digits runs")
    ap.add_argument("--out", default="benchmarks/results/field.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    command = "python " + " ".join(["benchmarks/bench_field.py", *(argv or sys.argv[1:])])
    t0 = time.perf_counter()
    jr = run_jing(args.epochs)
    print(f"jing done {time.perf_counter() - t0:.0f}s", file=sys.stderr, flush=True)
    tr = run_tian()
    seconds = time.perf_counter() - t0
    _plot_spectra(jr["strong"], "Jing et al. 2022, strong augmentation (linear model)",
                  out.parent / "field_jing_strong_aug.png")  # fmt: skip
    _plot_spectra(jr["implicit"], "Jing et al. 2022, implicit regularisation (weak aug)",
                  out.parent / "field_jing_two_layer.png")  # fmt: skip
    _plot_spectra(jr["projector"], "Jing et al. 2022, representation on digits",
                  out.parent / "field_jing_projector.png")  # fmt: skip
    _plot_tian(tr, out.parent)
    with atomic_open(out, "w") as fh:
        fh.write(render(command, jr, tr, seconds))
    payload = {
        "command": command,
        "jing": {k: [s.to_dict() for s in v] for k, v in jr.items()},
        "tian": {"grid": [r.to_dict() for r in tr["grid"]],
                 "curves": {k: r.to_dict() for k, r in tr["curves"].items()}},
    }  # fmt: skip
    with atomic_open(out.with_suffix(".json"), "w") as fh:
        json.dump(payload, fh, indent=1)
    print(f"wrote {out} ({seconds:.0f}s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
