"""Every claim of the seed article, checked: verdicts and evidence, and the numbers of
docs/theory.md refreshed from them.

Runs :func:`collapselab.theory.run_all` (what ``collapselab theory --json`` prints; seeded,
deterministic), writes ``benchmarks/results/theory.json`` (``{"command", "claims"}``) and
``benchmarks/results/theory.md`` (the verdict table, CPU seconds per claim), and rewrites
every marked number of docs/theory.md from the evidence (markers:
:mod:`collapselab.theory.quoted`; ``tests/theory/test_theory_docs.py`` checks them).

Usage: ``python benchmarks/bench_theory.py [--out-dir benchmarks/results]
[--docs docs/theory.md]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from collapselab._atomic import atomic_open
from collapselab.theory import run_all
from collapselab.theory.quoted import fill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default="benchmarks/results")
    parser.add_argument("--docs", default="docs/theory.md")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_theory.py " + " ".join(
        ["--out-dir", args.out_dir, "--docs", args.docs])
    cpu0, wall0 = time.process_time(), time.perf_counter()
    results = [r.to_dict() for r in run_all()]
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    out = Path(args.out_dir)
    with atomic_open(out / "theory.json", "w") as fh:
        json.dump({"command": command, "claims": results}, fh, indent=1)
        fh.write("\n")
    counts = {v: sum(r["verdict"] == v for r in results)
              for v in ("holds", "holds-with-correction", "fails")}  # fmt: skip
    lines = [
        "# collapselab theory: verdicts",
        "",
        f"Command: `{command}`",
        "",
        f"{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
        + f"; {cpu:.1f} s CPU, {wall:.1f} s wall (one torch thread; the wall time depends on "
        "the machine's load).",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
        *(f"| `{r['id']}` | {r['verdict']} | {r['summary'].replace('|', '/')} |"
          for r in results),
        "",
    ]
    with atomic_open(out / "theory.md", "w") as fh:
        fh.write("\n".join(lines))
    docs = Path(args.docs)
    evidence = {r["id"]: r["evidence"] for r in results}
    text = docs.read_text(encoding="utf-8")
    with atomic_open(docs, "w") as fh:
        fh.write(fill(text, evidence))
    print(f"wrote {out / 'theory.json'}, {out / 'theory.md'}, {docs}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
