"""Terminal rendering shared by the CLI commands: a stderr progress bar and tables.

The progress bar (tqdm) draws only when stderr is a terminal (so logs and CI stay clean).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any, TextIO, TypeVar

_Bar = TypeVar("_Bar", bound="ProgressBar")


class ProgressBar:
    """A tqdm bar on stderr, drawn only when the stream is a terminal.

    Call it as ``bar(done, total, extra)``; :meth:`close` (or leaving a ``with`` block)
    ends the line. ``enabled``
    defaults to ``stream.isatty()``; tqdm is imported only when a bar is drawn, so the
    commands start without it.
    """

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        unit: str = "rows",
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label, self.unit = label, unit
        self._bar: Any = None

    def __call__(self, done: int, total: int, extra: str = "") -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=self.label, unit=f" {self.unit}",
                             unit_scale=total >= 10_000,
                             file=self.stream, leave=True, mininterval=0.1)  # fmt: skip
        bar = self._bar
        bar.total = total
        if extra:
            bar.set_postfix_str(extra, refresh=False)
        bar.update(done - bar.n)

    def reset(self, label: str, unit: str | None = None) -> None:
        """End the current line and start a new bar under ``label`` (counting ``unit``)."""
        self.close()
        self.label = label
        self.unit = unit or self.unit

    def __enter__(self: _Bar) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RunProgress(ProgressBar):
    """The stderr progress of the commands that train (demo, compare, train): a line per
    section or run (``[demo] ...``, printed even when no bar is drawn, so logs show where a
    run is) and a bar of its steps with loss, effective rank and verdict, or of counted
    items (the theory's claims). Its methods are the library's progress callbacks."""

    def __init__(self, command: str, enabled: bool | None = None) -> None:
        super().__init__("train", enabled=enabled, unit="steps")
        self.command = command

    def status(self, message: str) -> None:
        """A section starts: end the bar, say so on a line of its own."""
        self.close()
        print(f"[{self.command}] {message}", file=self.stream, flush=True)

    def run(self, label: str) -> None:
        """A training run starts: its line, then a fresh bar of its steps."""
        self.status(label)
        self.reset(label, unit="steps")

    def steps(self, p: Any) -> None:
        """A training ``Progress`` record (step, total_steps, loss, effective_rank, verdict)."""
        rank = "-" if p.effective_rank is None else f"{p.effective_rank:.3g}"
        self(p.step, p.total_steps, f"loss {p.loss:.4g} erank {rank} {p.verdict or ''}")

    def claims(self, done: int, total: int, claim: str) -> None:
        """Progress of the theory checks, counted in claims (``done == 0`` starts the bar)."""
        if done == 0:
            self.reset("theory", unit="claims")
        self(done, total, claim)


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


def term_width(default: int | None = None, stream: TextIO | None = None) -> int:
    """Columns of the terminal ``stream`` (stdout) shows; ``default`` (or no limit) when it
    is not a terminal, so a pipe or a log gets whole lines."""
    stream = stream or sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        import shutil

        return shutil.get_terminal_size((100, 24)).columns
    return default if default is not None else 10**6


def table(
    rows: Sequence[Sequence[object]],
    header: Sequence[str] | None = None,
    width: int | None = None,
) -> str:
    """Left-aligned plain-text table, at most ``width`` columns wide (default: the
    terminal's; no limit on a pipe): the widest column's cells wrap onto more lines."""
    import textwrap

    cells = [[fmt(c) for c in r] for r in ([header] if header else []) + list(rows)]
    if not cells:
        return ""
    ncol = max(len(r) for r in cells)
    cells = [r + [""] * (ncol - len(r)) for r in cells]
    widths = [max(len(r[i]) for r in cells) for i in range(ncol)]
    limit = term_width() if width is None else width
    total = sum(widths) + 2 * (ncol - 1)
    wrap_col = max(range(ncol), key=lambda i: widths[i])
    if total > limit:
        widths[wrap_col] = max(12, widths[wrap_col] - (total - limit))
    lines = []
    for k, r in enumerate(cells):
        parts = [textwrap.wrap(c, widths[i]) or [""] if i == wrap_col else [c]
                 for i, c in enumerate(r)]  # fmt: skip
        for j in range(max(len(x) for x in parts)):
            line = [
                (x[j] if j < len(x) else "").ljust(w) for x, w in zip(parts, widths, strict=True)
            ]
            lines.append("  ".join(line).rstrip())
        if k == 0 and header:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
