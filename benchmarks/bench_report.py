"""The check and rank reports (``check --report`` / ``rank --report``): size, build time,
render time, and a screenshot of each page.

Cases (float32 ``.npy`` files in a temporary folder):

- ``healthy``: a (rows, dim) Gaussian with a gently decaying spectrum (scales 1 to 0.3).
- ``baseline``: a "fine-tuned" matrix against that one as its baseline: the same rows
  scaled by 0.8 and pulled towards one direction, so its spread is 0.4 of the baseline's
  (the card reads "collapse under way against the baseline").
- ``rank``: :func:`rank_runs` of the two files and a rank-8 one (ranked by the metric the
  shipped validation table recommends).

For each: ``report.html`` bytes (figures embedded) and ``report.json`` bytes; the time to
build and write the report (:func:`write_check_report` / :func:`write_rank_report` on a
ready result: figures, JSON, HTML, atomic writes), median of ``--reps`` runs; the time
``check`` itself took (for scale); and headless Chromium's navigation-start to
load-event time (Navigation Timing ``loadEventStart``), median of ``--reps`` loads after
one warm-up load, at a 1280 x 900 viewport. Full-page screenshots go to
``benchmarks/results/report_check.png`` (the baseline case) and ``report_rank.png``.

Usage: ``python benchmarks/bench_report.py [--rows 100000] [--dim 256] [--reps 5]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "report"))
from cdp import Page, find_chromium  # noqa: E402

from collapselab.check import check_files  # noqa: E402
from collapselab.experiments.rank import rank_runs  # noqa: E402
from collapselab.report.check_report import write_check_report, write_rank_report  # noqa: E402
from collapselab.report.terminal import check_text  # noqa: E402


def make_files(folder: Path, n: int, d: int, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 0.3, d)
    base = (rng.standard_normal((n, d)) * scales).astype(np.float32)
    # spread of 0.8 z + mu: 0.64 tr(C) / (|mu|^2 + 0.64 tr(C)) = 0.4 of the baseline's ~1
    tr = float((scales**2).sum())
    mu = np.zeros(d, dtype=np.float32)
    mu[0] = np.sqrt(0.64 * tr * (1 / 0.4 - 1))
    tuned = 0.8 * base + mu
    low = (rng.standard_normal((n, 8)) @ rng.standard_normal((8, d))).astype(np.float32)
    out = {"baseline": Path("frozen.npy"), "tuned": Path("tuned.npy"),
           "rank8": Path("rank8.npy")}  # fmt: skip
    for key, z in (("baseline", base), ("tuned", tuned), ("rank8", low)):
        np.save(folder / out[key], z)
    return out


def median_ms(fn: Any, reps: int) -> tuple[float, Any]:
    times, res = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        res = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), res


def render(html: Path, reps: int, shot: Path | None, chromium: str) -> tuple[float, list[str]]:
    with Page(chromium, width=1280, height=900) as page:
        page.goto(html.as_uri())  # warm-up: not counted
        loads = [page.goto(html.as_uri()) for _ in range(reps)]
        ok = page.evaluate("Array.from(document.images).every(i => i.complete && "
                           "i.naturalWidth > 0)")  # fmt: skip
        if not ok:
            raise RuntimeError(f"{html}: an image did not load")
        if shot is not None:
            page.screenshot(shot, full_page=True)
            _shrink_png(shot)
        return statistics.median(loads), page.errors()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    chromium = find_chromium()
    if chromium is None:
        print("headless Chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    results = Path(args.results).resolve()
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        folder = Path(tmp)
        files = make_files(folder, args.rows, args.dim)
        os.chdir(folder)  # the page names the files as a user typed them: tuned.npy
        cases: list[tuple[str, Any, Any, Path | None]] = []
        check_ms, healthy = median_ms(lambda: check_files([str(files["baseline"])]), 1)
        cases.append(("healthy", healthy, check_ms, None))
        check_ms, tuned = median_ms(lambda: check_files([str(files["tuned"])],
                                                        baseline=[str(files["baseline"])]), 1)
        cases.append(("baseline", tuned, check_ms, results / "report_check.png"))
        # what `collapselab check tuned.npy --baseline frozen.npy` prints first (the README
        # quotes it): the verdict line and the headline, on a pipe (no wrapping)
        terminal = check_text(tuned).split("\n\n")[0]
        rank_ms, ranking = median_ms(lambda: rank_runs([str(files[k]) for k in files]), 1)
        cases.append(("rank", ranking, rank_ms, results / "report_rank.png"))
        for name, result, input_ms, shot in cases:
            out = folder / f"report-{name}"
            write = write_rank_report if name == "rank" else write_check_report
            build_ms, html = median_ms(lambda w=write, r=result, o=out: w(r, o), args.reps)
            load_ms, errors = render(html, args.reps, shot, chromium)
            if errors:
                raise RuntimeError(f"{name}: console errors {errors}")
            figures = len(list(out.glob("*.png")))
            verdict = (result.measurement.level_name if name != "rank"
                       else f"trust {result.trust}")  # fmt: skip
            rows.append([name, verdict, f"{html.stat().st_size:,}",
                         f"{(out / 'report.json').stat().st_size:,}", str(figures),
                         f"{input_ms:.0f}", f"{build_ms:.0f}", f"{load_ms:.0f}"])  # fmt: skip
            print(" | ".join(rows[-1]), flush=True)
    lines = [
        "# Check and rank reports: size, build time, render time",
        "",
        f"command: `python benchmarks/bench_report.py --rows {args.rows} --dim {args.dim} "
        f"--reps {args.reps}`",
        "",
        f"machine: {platform.machine()}, {platform.python_version()}, "
        f"{_cores()} cores (shared); {_chromium_version(chromium)}; matrices ({args.rows}, "
        f"{args.dim}) float32; viewport 1280 x 900.",
        "",
        "| case | card | report.html bytes | report.json bytes | figures | input ms (check / "
        "rank, once) | build + write ms (median) | Chromium load ms (median) |",
        "|---|---|---|---|---|---|---|---|",
        *("| " + " | ".join(r) + " |" for r in rows),
        "",
        f"Build + write: `write_check_report` / `write_rank_report` on a ready result, median "
        f"of {args.reps}. Chromium load: navigation start to the load event (Navigation "
        f"Timing `loadEventStart`) of the self-contained `report.html`, median of "
        f"{args.reps} loads after one warm-up, no console errors, every image decoded.",
        "",
        "Screenshots (full page, 1280 px wide, saved as 256-colour PNG): `report_check.png` "
        "(the baseline case), `report_rank.png`.",
        "",
        "The first lines `collapselab check tuned.npy --baseline frozen.npy` prints (the "
        "baseline case):",
        "",
        *("    " + ln for ln in terminal.splitlines()),
        "",
    ]
    (results / "report.md").write_text("\n".join(lines))
    print(f"wrote {results / 'report.md'}")
    return 0


def _shrink_png(path: Path) -> None:
    """A 256-colour palette PNG (text and flat plots: no visible loss, a third the bytes)."""
    from PIL import Image

    with Image.open(path) as im:
        small = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def _chromium_version(binary: str) -> str:
    import subprocess

    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else "Chromium"
    except (OSError, subprocess.SubprocessError):
        return "Chromium"


if __name__ == "__main__":
    raise SystemExit(main())
