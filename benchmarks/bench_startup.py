"""Whole-process cost of the everyday commands: wall time and peak RSS of fresh processes.

Commands (each a fresh process, timed from the outside, so interpreter start-up, imports,
reading the file and exit are all counted):

- ``python``       ``python -c pass``: the interpreter's own floor on this machine
- ``numpy``        ``python -c "import numpy"``: the floor of anything that reads arrays
- ``help``         ``collapselab --help``
- ``check_small``  ``collapselab check small.npy``, a (10000, 128) float32 file
- ``check_big``    ``collapselab check big.npy``, a (1000000, 256) float32 file (1 GiB)
- ``load_svdvals`` ``np.load`` + ``torch.linalg.svdvals`` of the centred big matrix in one
  fresh process: what a script computing the spectrum directly costs (the baseline of
  ``check_big``)

Every round runs every command once, interleaved (a shared machine drifts, and the drift
then hits every command alike); medians over rounds; ratios are of medians measured in the
same run. Peak RSS is the child's maximum resident set from ``/usr/bin/time -f %M`` (a
small parent, so nothing of this driver is inherited); without ``/usr/bin/time`` it comes
from ``os.wait4`` and then includes this driver's own start-up footprint.

Usage: ``python benchmarks/bench_startup.py [--rounds 7] [--big-rows 1000000]
[--out benchmarks/results/startup.md]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOAD_SVDVALS = (
    "import sys, numpy as np, torch\n"
    "x = torch.from_numpy(np.load(sys.argv[1]))\n"
    "s = torch.linalg.svdvals(x - x.mean(0))\n"
    "print((s.double() ** 2 / x.shape[0])[:3].tolist())\n"
)
MAKE = (
    "import sys, numpy as np\n"
    "n, d, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
    "rng = np.random.default_rng(0)\n"
    "q, _ = np.linalg.qr(rng.standard_normal((d, d)))\n"
    "scales = np.r_[np.ones(d - d // 2), np.full(d // 2, 3e-3)]\n"
    "c = rng.standard_normal(d) * 100\n"
    "x = np.lib.format.open_memmap(path, mode='w+', dtype=np.float32, shape=(n, d))\n"
    "for s in range(0, n, 65536):\n"
    "    k = min(65536, n - s)\n"
    "    x[s : s + k] = c + (rng.standard_normal((k, d)) * scales) @ q.T\n"
    "x.flush()\n"
)


def collapselab_cmd() -> list[str]:
    exe = shutil.which("collapselab")
    return [exe] if exe else [sys.executable, "-m", "collapselab"]


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one fresh process running ``cmd``."""
    timer = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [timer, "-f", "%M", "-o", rss.name, *cmd] if timer else cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err[-500:]}")
        if timer:
            text = Path(rss.name).read_text().split()
            return wall, int(text[-1]) / 1024
        return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--big-rows", type=int, default=1_000_000, help="0 skips the big file")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = ap.parse_args()
    cl = collapselab_cmd()
    lines = [f"command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}",
             f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
             f"collapselab runs as `{' '.join(Path(c).name for c in cl)}`", ""]  # fmt: skip

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    with tempfile.TemporaryDirectory() as tmp:
        small, big = os.path.join(tmp, "small.npy"), os.path.join(tmp, "big.npy")
        subprocess.run([sys.executable, "-c", MAKE, "10000", "128", small], check=True)
        cmds = {
            "python": [sys.executable, "-c", "pass"],
            "numpy": [sys.executable, "-c", "import numpy"],
            "help": [*cl, "--help"],
            "check_small": [*cl, "check", small],
        }
        if args.big_rows:
            subprocess.run([sys.executable, "-c", MAKE, str(args.big_rows), "256", big],
                           check=True)  # fmt: skip
            cmds["check_big"] = [*cl, "check", big]
            cmds["load_svdvals"] = [sys.executable, "-c", LOAD_SVDVALS, big]
        # A regular `pip install` writes the package's .pyc files; an editable install
        # under PYTHONDONTWRITEBYTECODE=1 never does, and every run would recompile the
        # sources (~70 ms here). Write them as an install would.
        import compileall

        import collapselab

        compileall.compile_dir(os.path.dirname(collapselab.__file__), quiet=1)
        for cmd in cmds.values():  # one untimed pass: page cache and .pyc files warm
            run(cmd)
        res: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
        for _ in range(args.rounds):
            for k, cmd in cmds.items():
                res[k].append(run(cmd))
    med = {k: statistics.median(w for w, _ in v) for k, v in res.items()}
    rss = {k: statistics.median(r for _, r in v) for k, v in res.items()}
    emit(f"## whole-process wall time and peak RSS, {args.rounds} interleaved rounds, medians")
    emit("| command | median s | min s | max s | / python | peak RSS MB |")
    emit("|---|---|---|---|---|---|")
    for k, v in res.items():
        walls = [w for w, _ in v]
        emit(f"| {k} | {med[k]:.3f} | {min(walls):.3f} | {max(walls):.3f} | "
             f"{med[k] / med['python']:.2f} | {rss[k]:.0f} |")  # fmt: skip
    emit()
    targets = [
        ("`collapselab --help` < 0.3 s", med["help"], med["help"] < 0.3),
        ("`collapselab check small.npy` < 0.5 s", med["check_small"], med["check_small"] < 0.5),
    ]
    emit(f"help beyond the bare interpreter: {med['help'] - med['python']:.3f} s; small check "
         f"beyond `import numpy`: {med['check_small'] - med['numpy']:.3f} s")  # fmt: skip
    if "check_big" in med:
        ratio = med["check_big"] / med["load_svdvals"]
        emit(f"check of the ({args.big_rows}, 256) file / load+svdvals (same run): "
             f"**{ratio:.2f}x** time, peak RSS {rss['check_big']:.0f} vs "
             f"{rss['load_svdvals']:.0f} MB")  # fmt: skip
        targets.append(("big check <= 0.35x of load+svdvals", ratio, ratio <= 0.35))
    emit()
    emit("| target | measured | met |")
    emit("|---|---|---|")
    for name, value, ok in targets:
        emit(f"| {name} | {value:.3g} | {'yes' if ok else 'no'} |")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
