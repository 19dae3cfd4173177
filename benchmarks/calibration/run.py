"""Regenerate the verdict's calibration corpus and judge the verdict on every case.

    python benchmarks/calibration/run.py            # every case (first run trains: ~20 min)
    python benchmarks/calibration/run.py --fast     # the subset the test suite rebuilds

Writes ``benchmarks/results/calibration.md`` (the table ``docs/verdict.md`` quotes) and
``benchmarks/results/calibration.json``; exits 1 when a case is wrong. Trained embeddings
are cached under ``benchmarks/calibration/cache/`` (gitignored), so a rerun after a change
of the verdict takes seconds.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from collapselab.experiments.calibration.evaluate import GROUPS, corpus, judge_case, margins

RESULTS = Path(__file__).resolve().parents[1] / "results"


def fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _right(r: dict) -> str:
    if r["blind_spot"]:
        return f"blind spot: {r['blind_spot']}"
    return "yes" if r["right"] else "**NO**"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="only the fast subset")
    ap.add_argument("--groups", default=",".join(GROUPS), help="comma-separated groups")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    outcomes = []
    for case in corpus(fast=args.fast, groups=args.groups.split(",")):
        o = judge_case(case)
        outcomes.append(o)
        print(f"{'ok ' if o.right else 'BAD'} {case.name:48s} {case.label:11s} -> "
              f"{o.measurement.verdict}{' +warning' if o.measurement.warning else ''}",
              flush=True)  # fmt: skip
    rows = [o.row() for o in outcomes]
    wrong = [r for r in rows if not r["right"]]
    mg = margins(outcomes)
    seconds = time.perf_counter() - t0
    suffix = "_fast" if args.fast else ""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"calibration{suffix}.json").write_text(json.dumps(
        {"cases": rows, "margins": mg, "seconds": seconds}, indent=1) + "\n")  # fmt: skip
    head = ("| case | kind | label | verdict | warn | sev | erank (frac) | dims_99 | RankMe | "
            "spread | cos | vs baseline: spread, erank | quality | right |")
    lines = [
        "# Verdict calibration corpus" + (" (fast subset)" if args.fast else ""),
        "",
        f"`python benchmarks/calibration/run.py{' --fast' if args.fast else ''}` "
        f"({len(rows)} cases, {len(rows) - len(wrong)} right; {seconds:.0f} s on "
        f"{platform.machine()}, torch {torch.__version__}). Labels come from downstream "
        "quality and construction, never from the verdict (see each case's `why` in the "
        "JSON).",
        "",
        head,
        "|" + "---|" * 14,
    ]
    for r in rows:
        q = ", ".join(f"{k} {fmt(v)}" for k, v in r["quality"].items())
        vs = ("-" if r["spread_vs_baseline"] is None
              else f"{fmt(r['spread_vs_baseline'])}, {fmt(r['erank_vs_baseline'])}")  # fmt: skip
        lines.append(
            f"| {r['case']} | {r['kind']} | {r['label']} | {r['verdict']} | "
            f"{'yes' if r['warning'] else ''} | {r['severity']:.2f} | "
            f"{fmt(r['effective_rank'])} ({fmt(r['erank_fraction'])}) | {r['dims_99']} | "
            f"{fmt(r['rankme'])} | {fmt(r['relative_variance'])} | {fmt(r['mean_cosine'])} | "
            f"{vs} | {q} | {_right(r)} |"
        )
    lines += ["", "## Margins", "",
              "| threshold | value | nearest healthy case | its value | healthy / threshold "
              "| nearest flagged case below | its value |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in mg:
        g, b = m["nearest_healthy"] or {}, m["nearest_flagged"] or {}
        lines.append(f"| {m['threshold']} ({m['note']}) | {m['value']} | {g.get('case', '-')} | "
                     f"{fmt(g.get('value'))} | {fmt(m['healthy_margin'])} | "
                     f"{b.get('case', '-')} | {fmt(b.get('value'))} |")  # fmt: skip
    (RESULTS / f"calibration{suffix}.md").write_text("\n".join(lines) + "\n")
    print(f"{len(rows) - len(wrong)}/{len(rows)} right in {seconds:.0f} s")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
