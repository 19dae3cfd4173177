"""Label-free model selection, validated (issues 15, 28): which metric predicts accuracy?

Trains the sweep of :func:`collapselab.experiments.selection.sweep_runs` (Fashion-MNIST, MLP
encoder; SimCLR, VICReg, BYOL, Barlow Twins; per method augmentation strength x temperature
or learning rate, projector width on a Latin square: 36 settings x 3 seeds = 108 runs),
measures every label-free metric on each run's test-set representation (10000 images),
and reports, over the 36 setting means (the seeds averaged: the independent units):

- the Spearman and Kendall correlation of each metric with linear-probe and kNN accuracy
  across methods, with percentile-bootstrap 95% intervals (settings resampled);
- within each method, Kendall tau (and Spearman) with their intervals;
- the regret of each metric's pick: accuracy points lost against the labelled best
  (all settings, within each method, and per seed), beside a random pick's;
- the noise floor of the target (seed-to-seed SD, binomial sampling error, spread of the
  setting means, its reliability) and the power of the design: the probability to detect
  a true Spearman rho of 0.5 at alpha 0.05 with its number of settings (Fisher z with
  Spearman's variance, and simulation).

Writes ``benchmarks/results/selection.md`` / ``.json``, two PNG figures beside them, and
the validation table ``collapselab rank`` ships
(``src/collapselab/experiments/selection_validated.json``).

Resumable: each run is cached under ``benchmarks/selection/cache/<run>/result.json``
(gitignored); run the command again to continue (finished runs are read back, not
retrained; runs measured with an older metric definition are re-measured from their
checkpoints).

Usage::

    nice python benchmarks/bench_selection.py               # the full sweep (108 runs)
    nice python benchmarks/bench_selection.py --limit 36    # the first 36 (seed 0)
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from collapselab._atomic import atomic_open
from collapselab.experiments import selection as S
from collapselab.report.plots import OKABE_ITO, new_figure, save_figure

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "benchmarks/selection/cache"
RESULTS = ROOT / "benchmarks/results"
SHIPPED = ROOT / "src/collapselab/experiments" / S.VALIDATED_NAME


def _write(path: Path, text: str) -> None:
    with atomic_open(path, "w", fsync=False) as fh:
        fh.write(text)


def _fmt(i: S.Interval) -> str:
    if not np.isfinite(i.value):
        return "-"
    return f"{i.value:+.2f} [{i.lo:+.2f}, {i.hi:+.2f}]"


def wang_isola_figure(results: list[S.RunResult], path: Path) -> Path:
    """Wang & Isola (2020) Fig.: uniformity (x) vs alignment (y), colour = linear acc."""
    datas = sorted({r.data for r in results})
    fig = new_figure(ncols=len(datas), width=4.6, height=3.8)
    markers = {"simclr": "o", "vicreg": "s", "byol": "^", "barlow": "v"}
    for ax, data in zip(fig.subplots(1, len(datas), squeeze=False)[0], datas, strict=True):
        rs = [r for r in results if r.data == data]
        acc = np.array([r.linear for r in rs])
        for m in sorted({r.method for r in rs}):
            sel = [i for i, r in enumerate(rs) if r.method == m]
            sc = ax.scatter([rs[i].metrics["uniformity"] for i in sel],
                            [rs[i].metrics["alignment"] for i in sel],
                            c=acc[sel], cmap="viridis", vmin=acc.min(), vmax=acc.max(),
                            marker=markers.get(m, "D"), edgecolors="k", linewidths=0.4,
                            label=m)  # fmt: skip
        fig.colorbar(sc, ax=ax, label="linear-probe accuracy")
        ax.set_xlabel("uniformity  log E exp(-2||u-v||^2)  (lower: more uniform)")
        ax.set_ylabel("alignment  E ||u-u'||^2  (lower: better aligned)")
        ax.set_title(f"{data}: {len(rs)} runs (each seed a point)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def spearman_figure(corrs: list[S.Correlation], path: Path, target: str) -> Path:
    """Across-method Spearman rho (claimed direction) per metric, 95% intervals."""
    datas = sorted({c.data for c in corrs})
    fig = new_figure(width=7.0, height=3.6)
    ax = fig.subplots()
    names = list(S.METRIC_NAMES)
    width = 0.8 / max(len(datas), 1)
    for j, data in enumerate(datas):
        cs = {c.metric: c for c in corrs
              if c.data == data and c.scope == "all" and c.target == target}  # fmt: skip
        x = np.arange(len(names)) + (j - (len(datas) - 1) / 2) * width
        v = np.array([cs[n].spearman.value if n in cs else np.nan for n in names])
        lo = np.array([cs[n].spearman.lo if n in cs else np.nan for n in names])
        hi = np.array([cs[n].spearman.hi if n in cs else np.nan for n in names])
        ax.bar(x, v, width, color=OKABE_ITO[j], label=data)
        ax.errorbar(x, v, yerr=[v - lo, hi - v], fmt="none", ecolor="k", capsize=2, lw=0.8)
    ax.axhline(0, color="k", lw=0.6)
    ax.set_xticks(np.arange(len(names)), [S.metric_spec(n).label for n in names],
                  rotation=30, ha="right", fontsize=7)  # fmt: skip
    ax.set_ylabel(f"Spearman rho with {target} accuracy")
    ax.set_title("claimed direction; 95% bootstrap interval over settings")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def _pts(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.2f}"


def markdown(results: list[S.RunResult], settings: list[S.RunResult],
             corrs: list[S.Correlation], table: dict, regret: dict, noise: dict,
             power: dict, command: str, seconds: float, n_boot: int,
             planned: int) -> str:  # fmt: skip
    n_set = len(settings)
    lines = [
        "# Label-free model selection, validated",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today()}; machine: {platform.machine()}, 2 CPUs (shared), "
        f"1 torch/BLAS thread; {len(results)} of {planned} planned runs ({n_set} settings); "
        f"{seconds:.0f} s of run time in the cache.",
        "",
        "## Design",
        "",
        "Fashion-MNIST, the MLP encoder (784-512-256), `collapselab.train.train`: batch 256, "
        f"AdamW, a one-epoch warm-up + cosine schedule (234 steps) stopped after "
        f"{S.SWEEP_STEPS} steps. Per method (SimCLR, VICReg, BYOL, Barlow Twins) a 3 x 3 "
        "grid: augmentation strength (0.5, 1, 2) x SimCLR's temperature (0.05, 0.2, 1) or "
        "the others' learning rate (x0.25, x1, x4 the default), the projector width (32, "
        "128, 512) on a Latin square over the grid; each setting trained with seeds "
        f"{', '.join(map(str, S.SWEEP_SEEDS))}. Metrics on the representation of the whole "
        "test split (10000 images), no labels; LiDAR (1000 images x 10 views) and "
        "alignment on views of the default augmentation (the same for every run). "
        "Accuracy: linear probe (logistic regression) and kNN (k=20, cosine) on the 10000 "
        "test images, fitted on 4000 training images.",
        "",
        "**Unit of analysis: the setting.** The seeds of a setting are averaged (metric and "
        "accuracy); correlations and their intervals are over the settings (bootstrap: "
        f"{n_boot} resamples of the settings, percentile 95%). Correlations are of "
        "`sign x metric` with accuracy, `sign` the paper's claimed direction, so a "
        "negative value means the claim fails here.",
        "",
        "## Is the target signal? Noise floor and power",
        "",
        "| data | runs | settings | seed SD | sampling SE (1 run) | SD of setting means | "
        "reliability of a setting mean | setting means range | distinct run accuracies |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for data, v in noise.items():
        lines.append(f"| {data} | {v['runs']} | {v['settings']} | {_pts(v['seed_sd'])} | "
                     f"{_pts(v['sampling_se'])} (n={v['n_test']}) | {_pts(v['between_sd'])} | "
                     f"{_pts(v['reliability'])} | {v['range'][0]:.2f}-{v['range'][1]:.2f} | "
                     f"{v['distinct']} of {v['runs']} |")  # fmt: skip
    lines += [
        "",
        "Accuracies in points (%). Reliability: the share of the setting means' variance "
        "that is not seed noise (1 - seed SD^2 / (seeds x SD of means^2)).",
        "",
        f"Power: with {power['n']} independent settings, a two-sided test at alpha "
        f"{power['alpha']} detects a true Spearman rho of {power['rho']} with probability "
        f"**{power['fisher_z']:.2f}** (Fisher z, var 1.06 / (n - 3)) / "
        f"**{power['simulated']:.2f}** (simulation, 20000 Gaussian-copula samples, "
        "scipy's t test).",
        "",
        "## Metric definitions",
        "",
        "| metric | sign | definition |",
        "|---|---|---|",
    ]
    lines += [f"| {m.label} | {m.sign:+d} | {m.source} |" for m in S.METRICS]
    for target in S.TARGETS:
        lines += ["", f"## Across methods: rank correlation with {target} accuracy "
                  f"({n_set} setting means)", "",
                  "| data | metric | settings | Spearman rho [95%] | Kendall tau [95%] |",
                  "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {c.data} | {S.metric_spec(c.metric).label} | {c.n} | {_fmt(c.spearman)} "
                  f"| {_fmt(c.kendall)} |" for c in corrs
                  if c.scope == "all" and c.target == target]  # fmt: skip
    by = {(c.data, c.scope, c.metric, c.target): c for c in corrs}
    methods = sorted({c.scope for c in corrs if c.scope != "all"})
    lines += ["", "## Within each method: Kendall tau with linear accuracy [95%]", "",
              "Each method's 9 setting means; Kendall tau-b, settings resampled.", "",
              "| data | metric | " + " | ".join(methods) + " |",
              "|---|---|" + "---|" * len(methods)]  # fmt: skip
    for data in sorted({c.data for c in corrs}):
        for spec in S.METRICS:
            cells = [_fmt(by[data, m, spec.name, "linear"].kendall)
                     if (data, m, spec.name, "linear") in by else "-" for m in methods]  # fmt: skip
            lines.append(f"| {data} | {spec.label} | " + " | ".join(cells) + " |")
    lines += ["", "Within-method Spearman rho with linear / kNN accuracy:", "",
              "| data | method | settings | metric | rho linear [95%] | rho kNN [95%] |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for (data, scope, metric, target), c in by.items():
        if scope == "all" or target != "linear":
            continue
        k = by[data, scope, metric, "knn"]
        lines.append(f"| {data} | {scope} | {c.n} | {S.metric_spec(metric).label} | "
                     f"{_fmt(c.spearman)} | {_fmt(k.spearman)} |")  # fmt: skip
    methods = sorted({m for e in regret.values() for m in e["random"] if m != "all"})
    lines += ["", "## Regret of the pick (linear-probe accuracy points lost against the "
              "labelled best)", "",
              "`all`: the metric picks one of the setting means; per method: one of that "
              "method's settings; per seed: one of the runs of one seed, against that "
              "seed's best run (mean of the seeds, and each). `random pick`: expected "
              "regret of a uniformly random pick.", "",
              "| data | metric | all | " + " | ".join(methods)
              + " | per seed: mean (each) |",
              "|---|---|---|" + "---|" * len(methods) + "---|"]  # fmt: skip
    for data, entry in regret.items():
        rnd = entry["random"]
        lines.append(f"| {data} | *random pick* | {_pts(rnd['all'])} | "
                     + " | ".join(_pts(rnd.get(m)) for m in methods) + " | - |")
        for spec in S.METRICS:
            e = entry[spec.name]
            each = ", ".join(_pts(v) for v in e["per_seed"])
            lines.append(f"| {data} | {spec.label} | {_pts(e['all'])} | "
                         + " | ".join(_pts(e.get(m)) for m in methods)
                         + f" | {_pts(e['per_seed_mean'])} ({each}) |")  # fmt: skip
    order = table["order"]
    best = order[0] if order else None
    worst = table["metrics"][best]["worst_lo"] if best else None
    from collapselab.experiments.rank import trust_level

    lines += ["", "## What `collapselab rank` uses", "",
              "Metrics ordered by the lowest lower bound, over the data sets, of their "
              "across-method Spearman interval with linear-probe accuracy (a metric is as "
              "trustworthy as its weakest validation): "
              + ", ".join(f"{m} ({table['metrics'][m]['worst_lo']:+.2f})"
                          if table["metrics"][m]["worst_lo"] is not None
                          and np.isfinite(table["metrics"][m]["worst_lo"]) else f"{m} (-)"
                          for m in order) + ".",
              "", f"Best validated: **{best}**; trust **{trust_level(worst)}** (high: lower "
              "bound >= 0.7, moderate: >= 0.4, low: > 0, none otherwise)."]  # fmt: skip
    lines += ["", "## Wang & Isola (2020): alignment and uniformity against accuracy", "",
              "![alignment vs uniformity](selection_wang_isola.png)", "",
              "![Spearman per metric](selection_spearman.png)", ""]  # fmt: skip
    lines += ["## Settings (means over seeds)", "",
              "| method | temp | aug | proj width | lr | seeds | linear | kNN | eff. rank | "
              "RankMe | alpha | LiDAR | std L2 | uniformity | alignment | TwoNN | s |",
              "|" + "---|" * 17]  # fmt: skip
    for r in sorted(settings, key=lambda r: (r.data, r.method, -r.linear)):
        u = r.run
        t = "-" if u["temperature"] is None else f"{u['temperature']:g}"
        m = r.metrics
        lines.append(
            f"| {r.method} | {t} | {u['augment']:g} | {u['proj_width']} | {u['lr']:g} | "
            f"{len(u['seed'])} | {100 * r.linear:.2f} | {100 * r.knn:.2f} | "
            f"{m['effective_rank']:.1f} | {m['rankme']:.1f} | {m['alpha']:.2f} | "
            f"{m['lidar']:.1f} | {m['std_l2']:.4f} | {m['uniformity']:.2f} | "
            f"{m['alignment']:.3f} | {m['twonn']:.1f} | {r.seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="run only the first N runs")
    ap.add_argument("--boot", type=int, default=S.BOOTSTRAP, help="bootstrap resamples")
    ap.add_argument("--cache", default=str(CACHE))
    ap.add_argument("--out", default=str(RESULTS / "selection.md"))
    ap.add_argument("--no-ship", action="store_true",
                    help="do not write the validation table shipped with collapselab")
    ap.add_argument("--cached-only", action="store_true",
                    help="report only the runs already in the cache (train nothing)")
    args = ap.parse_args(argv)
    command = "python benchmarks/bench_selection.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    runs = S.sweep_runs(full=True)[: args.limit]
    t0 = time.perf_counter()

    def on_run(i: int, n: int, run: S.SweepRun) -> None:
        print(f"[{i + 1}/{n}] {run.key()} ({time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)  # fmt: skip

    if args.cached_only:
        runs = [r for r in runs if (Path(args.cache) / r.key() / "result.json").is_file()]
    results = S.run_sweep(runs, args.cache, on_run=on_run)
    settings = S.setting_means(results)
    corrs = S.correlations(settings, n_boot=args.boot)
    regret = S.regrets(results)
    noise = S.noise_floor(results)
    power = S.power(len(settings))
    design = {"unit": "settings", "runs": len(results), "settings": len(settings),
              "seeds": list(S.SWEEP_SEEDS), "steps": S.SWEEP_STEPS}  # fmt: skip
    extra = {"level": S.LEVEL, "bootstrap": args.boot, "design": design, "power": power,
             "noise": noise}  # fmt: skip
    table = S.validation_table(corrs, regret=regret, extra=extra)
    out = Path(args.out)
    wang_isola_figure(results, out.with_name("selection_wang_isola.png"))
    spearman_figure(corrs, out.with_name("selection_spearman.png"), "linear")
    total = sum(r.seconds for r in results)
    planned = len(S.sweep_runs(full=True))
    _write(out, markdown(results, settings, corrs, table, regret, noise, power, command,
                         total, args.boot, planned))  # fmt: skip
    payload = {"command": command, "design": design, "power": power, "noise": noise,
               "runs": [r.to_dict() for r in results],
               "settings": [r.to_dict() for r in settings],
               "correlations": [c.to_dict() for c in corrs], "regret": regret,
               "validation": table}  # fmt: skip
    _write(out.with_suffix(".json"), json.dumps(S.json_ready(payload), indent=1) + "\n")
    if not args.no_ship:
        shipped = {**table, "source": f"benchmarks/results/{out.name}", "command": command}
        _write(SHIPPED, json.dumps(S.json_ready(shipped), indent=1) + "\n")
    print(f"wrote {out} ({len(results)} runs, {len(settings)} settings)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
