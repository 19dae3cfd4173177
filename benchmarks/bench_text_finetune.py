"""Fine-tune all-MiniLM-L6-v2 two ways and show one collapse, with numbers (issue 7).

Runs :func:`collapselab.text.experiment.run_finetune_experiment`: WordNet (gloss,
example) pairs, AdamW, the same batches for a positives-only cosine loss and for InfoNCE
with in-batch negatives; a ProbeMonitor tracks effective rank, random-pair cosine,
held-out recall@1 and the Lee-50 correlation; at the end centring / top-k removal /
whitening are fitted on 2,048 texts and scored on the held-out pairs (can they repair
the collapsed model?).

Needs ``pip install "collapselab[text]" gensim`` and ``apt-get install wordnet-base``.

Usage::

    python benchmarks/bench_text_finetune.py                 # ~7 min on 2 CPU cores
    python benchmarks/bench_text_finetune.py --quick         # ~2.5 min
    python benchmarks/bench_text_finetune.py --threads 1 --out benchmarks/results/text_finetune.md

``--threads 1`` is faster on a machine whose cores are shared with other jobs (OpenMP
spin-waiting); on an idle machine leave torch's default. Times are means over the
steps / probes of each run; the probe cost is also given in training steps (its ratio to
a step measured in the same run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from collapselab.text.experiment import (
    QUICK_SETTINGS,
    FinetuneExperiment,
    run_finetune_experiment,
)


def fmt(v: Any, spec: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def render(exp: FinetuneExperiment, wall: float, threads: int) -> str:
    cfg, b = exp.config, exp.baseline
    d = exp.data
    lines = [
        "# Fine-tuning all-MiniLM-L6-v2: positives-only cosine loss vs. InfoNCE",
        "",
        f"Data: {d['source']}: {d['train_pairs']} training pairs, {d['heldout_pairs']} "
        f"held-out pairs (recall@1: gloss -> its example among all {d['heldout_pairs']}), "
        f"{d['probe_texts']} probe glosses (the monitor's input), Lee-50: "
        f"{'yes' if d['lee'] else 'no'}. Model {cfg.model}; {cfg.steps} steps, batch "
        f"{cfg.batch_size} pairs, AdamW lr {cfg.lr:g}, InfoNCE tau {cfg.temperature:g}, "
        f"probe every {cfg.every} steps, seed {cfg.seed}.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {threads} thread(s); wall time {wall:.0f} s.",
        "",
        "## Frozen model (baseline)",
        "",
        md_table(
            ["recall@1", "Lee-50 r", "SimLex-999 rho", "WordSim-353 rho", "effective rank",
             "random-pair cosine", "verdict"],
            [[fmt(b.recall_at_1), fmt(b.lee_pearson), fmt(b.simlex_spearman),
              fmt(b.wordsim_spearman), fmt(b.effective_rank, ".1f"), fmt(b.mean_cosine),
              b.verdict]],
        ),
    ]  # fmt: skip
    for name, run in exp.runs.items():
        lines += ["", f"## Run `{name}`", ""]
        rows = [[str(p.step), fmt(p.loss, ".4f"), fmt(p.mean_cosine), fmt(p.effective_rank, ".1f"),
                 fmt(p.recall_at_1), fmt(p.lee_pearson), fmt(p.relative_spread, ".2f"),
                 p.verdict + (" + warning" if p.warning else ""), fmt(p.severity, ".2f")]
                for p in run.points]  # fmt: skip
        lines.append(md_table(["step", "train loss", "random-pair cosine", "effective rank",
                               "recall@1", "Lee-50 r", "spread left", "verdict", "severity"],
                              rows))  # fmt: skip
    lines += ["", "## Summary", ""]
    rows = []
    for name, run in exp.runs.items():
        f = run.final
        rows.append([name, fmt(f.mean_cosine), fmt(f.effective_rank, ".1f"), fmt(f.recall_at_1),
                     fmt(f.lee_pearson), fmt(run.simlex_spearman), fmt(run.wordsim_spearman),
                     fmt(run.first_alarm_step), fmt(run.first_collapse_step),
                     fmt(run.seconds_per_step, ".2f"),
                     f"{run.seconds_per_probe:.1f} ({run.seconds_per_probe / run.seconds_per_step:.1f})"])  # noqa: E501  # fmt: skip
    lines.append(md_table(["run", "cosine", "eff. rank", "recall@1", "Lee r", "SimLex",
                           "WordSim", "warning (vs start) at step", "collapsed verdict at step",
                           "s / step", "s / probe (in steps)"], rows))  # fmt: skip
    if b.corrections is not None:
        lines += ["", "## Repair: corrections fitted on the repair corpus, held-out recall@1",
                  "", "Each correction is fitted (unsupervised) on "
                  f"{cfg.repair_corpus} training texts embedded by that model, then applied "
                  "to the held-out queries and documents. Cells: recall@1 (random-pair cosine "
                  "of the corrected corpus).", ""]  # fmt: skip
        cols = {"frozen": b.corrections}
        cols.update({f"{k} (end)": r.corrections for k, r in exp.runs.items() if r.corrections})
        names = [c["name"] for c in b.corrections["corrections"]]
        rows = []
        for i, n in enumerate(names):
            rows.append([n] + [f"{fmt(c['corrections'][i]['recall_at_1'])} "
                               f"({fmt(c['corrections'][i]['mean_cosine'])})"
                               for c in cols.values()])  # fmt: skip
        lines.append(md_table(["correction", *cols], rows))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="QUICK_SETTINGS: 20 steps (~2.5 min)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--every", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-5, help="(--quick uses 5e-5)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--out", default=None, help="write the markdown report here")
    ap.add_argument("--json", default=None, help="write the experiment's to_dict() here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings: dict[str, Any] = {"steps": 80, "every": 10, "lr": args.lr}
    if args.quick:
        settings = dict(QUICK_SETTINGS)
    if args.steps is not None:
        settings["steps"] = args.steps
    if args.every is not None:
        settings["every"] = args.every
    t0 = time.perf_counter()
    exp = run_finetune_experiment(
        batch_size=args.batch_size,
        progress=lambda line: print(f"[{time.perf_counter() - t0:6.0f} s] {line}",
                                    file=sys.stderr, flush=True),  # fmt: skip
        **settings,
    )
    text = render(exp, time.perf_counter() - t0, torch.get_num_threads())
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(exp.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
