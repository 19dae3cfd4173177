"""Label-free model selection, validated (issue 15): which metric predicts accuracy?

Trains the sweep of :func:`collapselab.experiments.selection.sweep_runs` (methods x
temperature x augmentation strength x projector width x lr on digits and Fashion-MNIST),
measures every label-free metric on each run's test-set representation, and reports the
Spearman and Kendall correlation of each with linear-probe and kNN accuracy, across
methods and within each method, with percentile-bootstrap 95% intervals (runs
resampled). Wang & Isola (2020): alignment and uniformity against accuracy, as their
figure (uniformity on x, alignment on y, colour = accuracy).

Writes ``benchmarks/results/selection.md`` / ``.json``, two PNG figures beside them, and
the validation table ``collapselab rank`` ships
(``src/collapselab/experiments/selection_validated.json``).

Resumable: each run is cached under ``benchmarks/selection/cache/<run>/result.json``;
run the command again to continue (finished runs are read back, not retrained).

Usage::

    nice python benchmarks/bench_selection.py               # the full sweep (43 runs)
    nice python benchmarks/bench_selection.py --limit 20    # the first 20 (a balanced prefix)
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
    markers = {"simclr": "o", "vicreg": "s", "byol": "^"}
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
        ax.set_title(f"{data}: {len(rs)} runs")
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
    ax.set_title("claimed direction; 95% bootstrap interval over runs")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def markdown(results: list[S.RunResult], corrs: list[S.Correlation], table: dict,
             command: str, seconds: float, n_boot: int, planned: int) -> str:  # fmt: skip
    lines = [
        "# Label-free model selection, validated",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today()}; machine: {platform.machine()}, 2 CPUs (shared), "
        f"1 torch/BLAS thread; {len(results)} of {planned} planned runs; "
        f"{seconds:.0f} s of run time in the cache.",
        "",
        "Each run: `collapselab.train.train` with the MLP encoder (digits: 100 steps; "
        "Fashion-MNIST: 1 epoch, 234 steps; batch 256, AdamW, cosine). Metrics on the "
        "test-set representation (digits: 450 images; Fashion-MNIST: 1000), no labels; "
        "LiDAR and alignment on views from the default augmentation (the same for every "
        "run). Accuracy: linear probe (logistic regression) and kNN (k=20, cosine) on the "
        "test split, trained on the training split (Fashion-MNIST: 5000 images). "
        "Correlations are of `sign x metric` with accuracy, `sign` the paper's claimed "
        "direction (higher better, except alpha, uniformity, alignment), so a negative "
        f"value means the claim fails here. Intervals: percentile bootstrap, {n_boot} "
        "resamples of the runs, 95%.",
        "",
        "## Metric definitions",
        "",
        "| metric | sign | definition |",
        "|---|---|---|",
    ]
    lines += [f"| {m.label} | {m.sign:+d} | {m.source} |" for m in S.METRICS]
    for target in S.TARGETS:
        lines += ["", f"## Across methods: rank correlation with {target} accuracy", "",
                  "| data | metric | runs | Spearman rho [95%] | Kendall tau [95%] |",
                  "|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {c.data} | {S.metric_spec(c.metric).label} | {c.n} | {_fmt(c.spearman)} "
                  f"| {_fmt(c.kendall)} |" for c in corrs
                  if c.scope == "all" and c.target == target]  # fmt: skip
    lines += ["", "## Within each method: Spearman rho with linear / kNN accuracy", "",
              "| data | method | runs | metric | rho linear [95%] | rho kNN [95%] |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    by = {(c.data, c.scope, c.metric, c.target): c for c in corrs}
    for (data, scope, metric, target), c in by.items():
        if scope == "all" or target != "linear":
            continue
        k = by[data, scope, metric, "knn"]
        lines.append(f"| {data} | {scope} | {c.n} | {S.metric_spec(metric).label} | "
                     f"{_fmt(c.spearman)} | {_fmt(k.spearman)} |")  # fmt: skip
    order = table["order"]
    best = order[0] if order else None
    lines += ["", "## What `collapselab rank` uses", "",
              "Metrics ordered by the lowest lower bound, over the data sets, of their "
              "across-method Spearman interval with linear-probe accuracy (a metric is as "
              "trustworthy as its weakest validation): "
              + ", ".join(f"{m} ({table['metrics'][m]['worst_lo']:+.2f})"
                          if table["metrics"][m]["worst_lo"] is not None
                          and np.isfinite(table["metrics"][m]["worst_lo"]) else f"{m} (-)"
                          for m in order) + ".",
              "", f"Best validated: **{best}**."]  # fmt: skip
    lines += ["", "## Wang & Isola (2020): alignment and uniformity against accuracy", "",
              "![alignment vs uniformity](selection_wang_isola.png)", "",
              "![Spearman per metric](selection_spearman.png)", ""]  # fmt: skip
    lines += ["## Runs", "",
              "| data | method | temp | aug | proj width | lr | linear | kNN | eff. rank | "
              "RankMe | alpha | LiDAR | std L2 | uniformity | alignment | s |",
              "|" + "---|" * 16]  # fmt: skip
    for r in sorted(results, key=lambda r: (r.data, r.method, -r.linear)):
        u = r.run
        t = "-" if u["temperature"] is None else f"{u['temperature']:g}"
        m = r.metrics
        lines.append(
            f"| {r.data} | {r.method} | {t} | {u['augment']:g} | {u['proj_width']} | "
            f"{u['lr']:g} | {100 * r.linear:.1f} | {100 * r.knn:.1f} | "
            f"{m['effective_rank']:.1f} | {m['rankme']:.1f} | {m['alpha']:.2f} | "
            f"{m['lidar']:.1f} | {m['std_l2']:.4f} | {m['uniformity']:.2f} | "
            f"{m['alignment']:.3f} | {r.seconds:.0f} |"
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
    corrs = S.correlations(results, n_boot=args.boot)
    table = S.validation_table(corrs)
    out = Path(args.out)
    wang_isola_figure(results, out.with_name("selection_wang_isola.png"))
    spearman_figure(corrs, out.with_name("selection_spearman.png"), "linear")
    total = sum(r.seconds for r in results)
    planned = len(S.sweep_runs(full=True))
    _write(out, markdown(results, corrs, table, command, total, args.boot, planned))
    payload = {"command": command, "runs": [r.to_dict() for r in results],
               "correlations": [c.to_dict() for c in corrs], "validation": table}  # fmt: skip
    _write(out.with_suffix(".json"), json.dumps(S.json_ready(payload), indent=1) + "\n")
    if not args.no_ship:
        shipped = {**table, "source": f"benchmarks/results/{out.name}", "command": command}
        _write(SHIPPED, json.dumps(S.json_ready(shipped), indent=1) + "\n")
    print(f"wrote {out} ({len(results)} runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
