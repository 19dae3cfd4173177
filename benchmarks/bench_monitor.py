"""Cost of the CollapseMonitor at its default settings on the default SimCLR run on digits.

Two measurements, each reported as medians over interleaved rounds (monitor off / on
alternate, so drifting machine load hits both alike):

1. end to end: seconds per training step of ``collapselab train --method simclr --data
   digits`` (steps 20..N, after warm-up), with ``--no-monitor`` and with the monitor;
2. direct: the monitor's own time per training step (every call of ``update`` timed on the
   default run's embeddings, ``(256, 128)``), divided by the step time of 1.

The bar (issue: at most 5% of the step time) is checked on the direct ratio, which is
immune to the +-5% noise of end-to-end timings on a shared machine; the end-to-end ratio
is printed beside it.

Usage::

    python benchmarks/bench_monitor.py [--rounds 5] [--steps 120] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from collapselab import CollapseMonitor
from collapselab.train.config import TrainConfig
from collapselab.train.trainer import Progress, train


def step_seconds(monitor: bool, steps: int, threads: int) -> float:
    """Median-free estimate: (t(step N) - t(step 20)) / (N - 20) from progress stamps."""
    stamps: dict[int, float] = {}

    def progress(p: Progress) -> None:
        stamps[p.step] = p.seconds

    train(TrainConfig(method="simclr", data="digits", max_steps=steps, threads=threads,
                      monitor=monitor, evaluate=False, log_every=1), progress=progress)  # fmt: skip
    return (stamps[steps] - stamps[20]) / (steps - 20)


def monitor_seconds_per_step(steps: int) -> float:
    """Time spent inside ``update`` per training step, on embeddings of the default run."""
    mon = CollapseMonitor(on_collapse="ignore")  # the defaults the trainer uses
    g = torch.Generator().manual_seed(0)
    z = [torch.relu(torch.randn(256, 128, generator=g)) for _ in range(8)]  # like h
    total = 0.0
    for step in range(steps):
        t0 = time.perf_counter()
        mon.update(z[step % 8], step, paired=z[(step + 1) % 8])
        total += time.perf_counter() - t0
    return total / steps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/methods_monitor.md")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    off, on, direct = [], [], []
    for r in range(args.rounds):
        off.append(step_seconds(False, args.steps, args.threads))
        on.append(step_seconds(True, args.steps, args.threads))
        direct.append(monitor_seconds_per_step(400))
        print(f"round {r}: off {1e3 * off[-1]:.1f} ms, on {1e3 * on[-1]:.1f} ms, monitor "
              f"{1e3 * direct[-1]:.3f} ms/step", file=sys.stderr)  # fmt: skip
    m_off, m_on, m_dir = (statistics.median(v) for v in (off, on, direct))
    ratios = [b / a for a, b in zip(off, on, strict=True)]
    text = "\n".join([
        "# CollapseMonitor overhead (default SimCLR run on digits)",
        "",
        f"Command: `python {' '.join(sys.argv)}`  ",
        f"torch {torch.__version__}, {args.threads} thread(s); medians over {args.rounds} "
        f"interleaved rounds of {args.steps} steps (timed from step 20). Monitor defaults: "
        "every=10, window=4, AlarmPolicy patience 2.",
        "",
        "| measurement | median | [min, max] |",
        "|---|---|---|",
        f"| step time, monitor off | {1e3 * m_off:.1f} ms | [{1e3 * min(off):.1f}, "
        f"{1e3 * max(off):.1f}] |",
        f"| step time, monitor on | {1e3 * m_on:.1f} ms | [{1e3 * min(on):.1f}, "
        f"{1e3 * max(on):.1f}] |",
        f"| end-to-end ratio on / off | {statistics.median(ratios):.3f} | "
        f"[{min(ratios):.3f}, {max(ratios):.3f}] |",
        f"| monitor time per step (direct) | {1e3 * m_dir:.3f} ms | [{1e3 * min(direct):.3f}, "
        f"{1e3 * max(direct):.3f}] |",
        f"| direct share of the step (bar: <= 5%) | {100 * m_dir / m_off:.2f}% | - |",
        "",
    ])  # fmt: skip
    Path(args.out).write_text(text)
    print(text)
    return 0 if m_dir / m_off <= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
