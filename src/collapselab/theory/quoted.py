"""Numbers quoted in docs/theory.md, tied to the evidence of ``collapselab theory --json``.

A quoted number carries an HTML comment right after it (invisible when rendered)::

    shrinks x9.5e-7<!--n attraction-stable perturbation_ratio .2g --> in 20 steps

naming the claim id, the path into that claim's ``evidence`` (keys and list indices joined
by ``/``, since keys such as ``"10.0"`` contain dots; a space in a key is written ``%20``)
and a format spec. The quoted text must
equal :func:`fmt` of the value the current version computes: :func:`mismatches` lists those
that do not, :func:`fill` rewrites them (``benchmarks/bench_theory.py``), and
:func:`unmarked` finds decimal numbers that carry no marker (the docs test allows only the
setup parameters it lists).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from collapselab.errors import ConfigError

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?"
#: A quoted number (or ``?``, a placeholder for :func:`fill`) and its marker.
MARKER = re.compile(
    rf"(?P<num>{_NUMBER}|\?)<!--n (?P<claim>[a-z0-9-]+) (?P<path>\S+) (?P<spec>\S+) -->"
)
#: Decimal or scientific numbers in prose (integers are counts and sizes, not measurements).
DECIMAL = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d+(?:e[-+]?\d+)?|\d+e[-+]?\d+)(?![\w.])")


@dataclass(frozen=True)
class Quote:
    """One marked number: where it is, what it says, and what the evidence says."""

    line: int
    claim: str
    path: str
    spec: str
    quoted: str
    computed: str


def fmt(value: float, spec: str) -> str:
    """``format(value, spec)`` with a short exponent: ``9.5e-07`` -> ``9.5e-7``,
    ``1.6e+05`` -> ``1.6e5``.

    ``lt<bound>`` (``lt1e-14``) is for round-off: a value below the bound is quoted as the
    bound (the page says ``< 1e-14``), since its digits change with the BLAS, the CPU and the
    summation order; a value above it is quoted with ``.0e`` (and no longer matches).
    """
    if spec.startswith("lt"):
        bound = float(spec[2:])
        if abs(value) < bound:
            return fmt(bound, ".0e")
        spec = ".0e"
    text = format(value, spec)
    return re.sub(r"e([-+])0*(\d)", lambda m: "e" + ("-" if m[1] == "-" else "") + m[2], text)


def lookup(evidence: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (``a/b/0/c``) in a claim's JSON evidence.

    Raises:
        ConfigError: a key or index that does not exist.
    """
    node: Any = evidence
    for part in (unquote(p) for p in path.split("/")):
        if isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(
            node
        ):
            node = node[int(part)]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            raise ConfigError(f"docs marker path {path!r}: no {part!r}")
    return node


def quotes(text: str, evidence: Mapping[str, Mapping[str, Any]]) -> list[Quote]:
    """Every marked number of ``text`` with the value ``evidence`` (claim id -> its JSON
    evidence) gives it.

    Raises:
        ConfigError: an unknown claim id, a bad path, or a value that is not a number.
    """
    out = []
    for m in MARKER.finditer(text):
        if m["claim"] not in evidence:
            raise ConfigError(f"docs marker: unknown claim {m['claim']!r}")
        value = lookup(evidence[m["claim"]], m["path"])
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"docs marker {m['claim']} {m['path']}: {value!r} is not a number")
        out.append(Quote(text.count("\n", 0, m.start()) + 1, m["claim"], m["path"], m["spec"],
                         m["num"], fmt(value, m["spec"])))  # fmt: skip
    return out


def mismatches(text: str, evidence: Mapping[str, Mapping[str, Any]]) -> list[Quote]:
    """The marked numbers whose quoted text differs from the computed one."""
    return [q for q in quotes(text, evidence) if q.quoted != q.computed]


def fill(text: str, evidence: Mapping[str, Mapping[str, Any]]) -> str:
    """``text`` with every marked number rewritten from ``evidence``."""

    def sub(m: re.Match[str]) -> str:
        value = lookup(evidence[m["claim"]], m["path"])
        return f"{fmt(value, m['spec'])}<!--n {m['claim']} {m['path']} {m['spec']} -->"

    return MARKER.sub(sub, text)


def unmarked(text: str, allowed: Iterable[str]) -> list[str]:
    """Decimal numbers of the prose that carry no marker and are not in ``allowed`` (setup
    parameters). Code blocks and inline code (formulas) are not prose."""
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    prose = re.sub(r"`[^`\n]*`", "", prose)
    prose = MARKER.sub("", prose)
    ok = set(allowed)
    return [n for n in DECIMAL.findall(prose) if n not in ok]
