"""Quality bars of every method on digits, and how early the monitor warns.

Runs each method with its default settings (``collapselab train --method M --data
digits``), then writes one comparison table to ``benchmarks/results/methods.md`` with the
command that made it:

- healthy methods must beat raw pixels on 1-NN with 5 labels per class (the issue quotes
  85.7%; the same evaluation code on raw pixels is measured here, same draws), reach an
  effective rank above 10 and never raise the monitor's collapse alarm;
- the known-collapse methods must end ``dimensional`` or ``complete`` on the representation
  or on the projector output (the one their loss collapses) and be flagged early:
  before the loss has fallen by 90% of the way to its floor, or while it is still falling
  (its distance to the floor at least halves after the alarm), see
  :mod:`collapselab.train.runlog`.

Usage::

    python benchmarks/bench_methods.py                      # all methods, ~2-3 min each
    python benchmarks/bench_methods.py --methods simclr,variance --epochs 60 --out /tmp/m.md
    python benchmarks/bench_methods.py --reuse      # keep finished runs whose config matches
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from collapselab.data import load_digits
from collapselab.methods import METHODS
from collapselab.train.config import TrainConfig
from collapselab.train.evaluate import evaluate_features
from collapselab.train.trainer import train

RAW_PIXELS_QUOTED = 0.857  # the figure for raw pixels


def _finished(cfg: TrainConfig) -> dict | None:
    """The summary of a finished run made with exactly this config (``--reuse``), else None."""
    path = Path(cfg.out) / "summary.json"
    if not path.is_file():
        return None
    s = json.loads(path.read_text())
    if s.get("config") != json.loads(json.dumps(cfg.resolved().to_dict())):
        return None
    s["wall_seconds"] = s["seconds"]
    s["reused"] = datetime.datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")
    return s


def run(methods: list[str], epochs: int | None, threads: int, runs_dir: Path,
        reuse: bool = False) -> list[dict]:  # fmt: skip
    rows = []
    for name in methods:
        cfg = TrainConfig(method=name, data="digits", epochs=epochs, threads=threads,
                          out=str(runs_dir / name))  # fmt: skip
        s = _finished(cfg) if reuse else None
        if s is None:
            t0 = time.perf_counter()
            s = train(cfg).to_dict()
            s["wall_seconds"] = time.perf_counter() - t0
        rows.append(s)
        ew = s.get("early_warning", {})
        print(f"{name:20s} 5-label {s['knn_accuracy_5_per_class']:.3f} erank "
              f"{s['effective_rank']:.1f} {s['verdict']:11s} alarm {s['first_collapse_step']} "
              f"fallen {ew.get('fallen_fraction')} still_falling {ew.get('still_falling')} "
              f"{s['wall_seconds']:.0f}s", file=sys.stderr, flush=True)  # fmt: skip
    return rows


def check(s: dict, raw: float) -> tuple[bool, str]:
    """Pass / fail of the method's bars, with the reason."""
    ew = s.get("early_warning") or {}
    if s["collapse_expected"]:
        collapsed = ("dimensional", "complete")
        ok_verdict = s["verdict"] in collapsed or s.get("projection_verdict") in collapsed
        ok_alarm = s["first_collapse_step"] is not None and bool(ew.get("early"))
        why = [] if ok_verdict else [f"verdict {s['verdict']} / {s.get('projection_verdict')}"]
        why += [] if ok_alarm else ["no early alarm"]
        return ok_verdict and ok_alarm, ", ".join(why) or "collapsed, flagged early"
    few = s["knn_accuracy_5_per_class"]
    fails = []
    if few <= raw or few <= RAW_PIXELS_QUOTED:
        fails.append(f"5-label {few:.3f} <= raw pixels")
    if s["effective_rank"] <= 10:
        fails.append(f"effective rank {s['effective_rank']:.1f} <= 10")
    if s["first_collapse_step"] is not None:
        fails.append(f"false alarm at step {s['first_collapse_step']}")
    return not fails, ", ".join(fails) or "healthy, beats raw pixels, no alarm"


def render(rows: list[dict], raw: dict, command: str, threads: int) -> str:
    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    lines = [
        "# Methods on digits: quality bars and early warning",
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today()}; machine: {platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared), torch {torch.__version__}, {threads} torch/BLAS thread(s) per run.",
        "",
        "Accuracies in % on the 450-image test split (train on the 1347-image split, labels "
        "unused). kNN: k=20, cosine; linear: logistic regression on frozen features; "
        "5-label: 1-NN (cosine) with 5 labelled images per class, mean of 10 draws. "
        "Effective rank / verdict: of the test-set representations (projector: of the "
        "projector outputs). Alarm: first step at which the CollapseMonitor (defaults: "
        "every 10 steps, window 4, AlarmPolicy patience 2 at warning level) raised its alarm; "
        "fallen: share of the loss's fall to its floor done by then; still "
        "falling: the loss's distance to its floor at least halved after the alarm.",
        "",
        "| method | kNN | linear | 5-label 1-NN | eff. rank | verdict | projector verdict | "
        "alarm step | fallen at alarm | still falling | time (s) | bar |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| raw pixels | {pct(raw['knn_accuracy'])} | {pct(raw['linear_accuracy'])} | "
        f"{pct(raw['knn_accuracy_5_per_class'])} | {raw['effective_rank']:.1f} | - | - | - | - "
        f"| - | - | reference |",
    ]
    for s in rows:
        ok, why = check(s, raw["knn_accuracy_5_per_class"])
        ew = s.get("early_warning") or {}
        fallen = ew.get("fallen_fraction")
        alarm = "-" if s["first_collapse_step"] is None else str(s["first_collapse_step"])
        fell = "-" if fallen is None else f"{100 * fallen:.0f}%"
        still = {None: "-", True: "yes", False: "no"}[ew.get("still_falling")]
        lines.append(
            f"| {s['method']} | {pct(s['knn_accuracy'])} | {pct(s['linear_accuracy'])} | "
            f"{pct(s['knn_accuracy_5_per_class'])} | {s['effective_rank']:.1f} | "
            f"{s['verdict']} | {s.get('projection_verdict', '-')} | {alarm} | {fell} | {still} | "
            f"{s['wall_seconds']:.0f} | "
            f"{'PASS' if ok else 'FAIL'}: {why} |"
        )
    reused = [f"{s['method']} ({s['reused']})" for s in rows if s.get("reused")]
    if reused:
        lines += ["", "Reused finished runs of the same config (`--reuse`): " + ", ".join(reused)
                  + "."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated names")
    ap.add_argument("--epochs", type=int, default=None, help="default: the data set's")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads per run")
    ap.add_argument("--runs-dir", default="runs/bench_methods", help="run directories")
    ap.add_argument("--out", default="benchmarks/results/methods.md")
    ap.add_argument("--json", help="also write the summaries as JSON here")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="keep a run's summary.json when its config matches (no retraining)",
    )
    args = ap.parse_args()
    methods = args.methods.split(",")
    d = load_digits()
    from collapselab.diagnose import measure_array

    raw = evaluate_features(d.x_train, d.y_train, d.x_test, d.y_test).to_dict()
    raw["effective_rank"] = measure_array(d.x_test.flatten(1)).metrics.effective_rank
    print(f"raw pixels: {raw}", file=sys.stderr)
    rows = run(methods, args.epochs, args.threads, Path(args.runs_dir), args.reuse)
    command = "python " + " ".join(sys.argv)
    text = render(rows, raw, command, args.threads)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"raw_pixels": raw, "runs": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
