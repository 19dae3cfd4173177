"""Terminal rendering shared by the CLI commands: a stderr progress bar and tables.

The progress bar draws only when stderr is a terminal (so logs and CI stay clean).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from typing import TextIO


class ProgressBar:
    """``rows 1.2M/4.0M [#####.....] 30% 2.1M rows/s, 1.3 s left`` on stderr, TTY only.

    Call it as ``bar(done, total)``; :meth:`close` ends the line. ``enabled`` defaults
    to ``stream.isatty()``.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        unit: str = "rows",
        min_interval: float = 0.1,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.unit, self.min_interval = label, unit, min_interval
        self.t0 = time.perf_counter()
        self._last = -math.inf
        self._drawn = False

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self._last < self.min_interval and done < total):
            return
        self._last = now
        elapsed = max(now - self.t0, 1e-9)
        rate = done / elapsed
        frac = done / total if total else 1.0
        left = (total - done) / rate if rate > 0 else math.inf
        bar = "#" * int(20 * frac) + "." * (20 - int(20 * frac))
        self.stream.write(
            f"\r{self.label} {human(done)}/{human(total)} {self.unit} [{bar}] {frac:4.0%} "
            f"{human(rate)} {self.unit}/s, {left:.1f} s left {extra}\x1b[K"
        )
        self.stream.flush()
        self._drawn = True

    def reset(self, label: str) -> None:
        """End the current line and start a new bar under ``label``."""
        self.close()
        self.label, self.t0, self._last, self._drawn = label, time.perf_counter(), -math.inf, False

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def human(x: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def fmt(v: object) -> str:
    """Compact number formatting for tables."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return "nan"
        return f"{v:.4g}"
    return str(v)


def table(rows: Sequence[Sequence[object]], header: Sequence[str] | None = None) -> str:
    """Left-aligned plain-text table."""
    cells = [[fmt(c) for c in r] for r in ([header] if header else []) + list(rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))] if cells else []
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in cells]
    if header:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
