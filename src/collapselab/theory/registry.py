"""The claim registry: each claim of the article, the statement tested, and its check.

A :class:`Claim` pairs the article's words (a short quote and its section) with the precise
mathematical statement being tested and a zero-argument ``check`` that computes the
:class:`Finding`. Every check function in :mod:`collapselab.theory` takes the formula or loss
under test as a keyword argument (defaulting to the article's formula or the library loss),
so a test can feed it a deliberately wrong variant and watch the verdict turn to ``fails``;
the registry binds the defaults.

Verdicts (docs/theory.md, "Verdicts"; every check applies them the same way):

- ``holds``: the statement is true as printed, in the article's own setting, within the
  stated tolerance. No correction.
- ``holds-with-correction``: the statement as printed is true under a condition the article
  leaves out (normalised embeddings, ``c != 0``, weak augmentation, ...); ``correction``
  states it with that condition. Never used for a wrong factor, sign or term.
- ``fails``: the statement is false as printed: a wrong factor, a wrong sign, a missing
  term, or a counterexample in the article's setting. ``correction`` gives the true
  statement where the check knows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from collapselab._json import jsonable as jsonable  # re-exported: the one JSON cleaner
from collapselab._pool import torch_threads as torch_threads  # re-exported
from collapselab.errors import ConfigError

ClaimVerdict = Literal["holds", "holds-with-correction", "fails"]
VERDICTS: tuple[ClaimVerdict, ...] = ("holds", "holds-with-correction", "fails")


@dataclass(frozen=True)
class Finding:
    """What a check found.

    Attributes:
        verdict: ``holds`` / ``holds-with-correction`` / ``fails``.
        summary: one line for the table (the decisive numbers).
        numbers: the measurements behind the verdict (JSON-ready after :func:`jsonable`).
        explanation: a few sentences: the derivation or the counterexample.
        correction: the corrected statement: required for ``holds-with-correction`` (the
            statement with the condition the article leaves out), given for ``fails`` where
            the check knows the true statement, never for ``holds``.
    """

    verdict: ClaimVerdict
    summary: str
    numbers: dict[str, Any]
    explanation: str
    correction: str | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ConfigError(f"verdict: {self.verdict!r}; expected one of {VERDICTS}")
        if self.verdict == "holds-with-correction" and self.correction is None:
            raise ConfigError("correction: required for 'holds-with-correction'")
        if self.verdict == "holds" and self.correction is not None:
            raise ConfigError(f"correction: not allowed for 'holds' (got {self.correction!r})")


@dataclass(frozen=True)
class Claim:
    """One claim of the article and the check that tests it.

    Attributes:
        id: short stable identifier (``collapselab theory --claim ID``).
        section: the article's section heading.
        quote: the article's words, verbatim (abridged with "...").
        statement: the precise mathematical statement the check tests.
        check: computes the evidence with the article's formula / the library loss.
    """

    id: str
    section: str
    quote: str
    statement: str
    check: Callable[[], Finding]


@dataclass(frozen=True)
class ClaimResult:
    """A claim together with the evidence its check produced (what :func:`run_all` returns)."""

    id: str
    section: str
    quote: str
    statement: str
    verdict: ClaimVerdict
    summary: str
    evidence: dict[str, Any]
    explanation: str
    correction: str | None
    seconds: float = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``id, section, quote, statement, verdict, summary, evidence
        (the numbers), explanation, correction, seconds``."""
        return {
            "id": self.id,
            "section": self.section,
            "quote": self.quote,
            "statement": self.statement,
            "verdict": self.verdict,
            "summary": self.summary,
            "evidence": jsonable(self.evidence),
            "explanation": self.explanation,
            "correction": self.correction,
            "seconds": round(self.seconds, 3),
        }


def evaluate(claim: Claim) -> ClaimResult:
    """Run one claim's check and package the result."""
    t0 = time.perf_counter()
    ev = claim.check()
    return ClaimResult(
        id=claim.id,
        section=claim.section,
        quote=claim.quote,
        statement=claim.statement,
        verdict=ev.verdict,
        summary=ev.summary,
        evidence=jsonable(ev.numbers),
        explanation=ev.explanation,
        correction=ev.correction,
        seconds=time.perf_counter() - t0,
    )


def select(claims: Sequence[Claim], ids: Sequence[str] | None) -> list[Claim]:
    """The claims with the given ids, in registry order (all when ``ids`` is None).

    Raises:
        ConfigError: an id that is not registered.
    """
    if ids is None:
        return list(claims)
    known = {c.id for c in claims}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise ConfigError(
            f"--claim: unknown id {unknown[0]!r}; known ids: {', '.join(c.id for c in claims)}"
        )
    wanted = set(ids)
    return [c for c in claims if c.id in wanted]
