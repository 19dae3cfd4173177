"""The article's theory, executed: every claim as a check that returns its verdict and numbers.

Usage::

    from collapselab.theory import run_all
    for result in run_all():
        print(result.id, result.verdict, result.summary)

Each result is a :class:`ClaimResult` (``.to_dict()`` is JSON-ready). The check functions
live in ``claims_*`` modules and take the formula or loss under test as a keyword argument,
so a deliberately wrong variant can be fed in (see ``tests/theory``).
"""

from __future__ import annotations

from collapselab.theory.catalog import CLAIMS, run_all
from collapselab.theory.registry import VERDICTS, Claim, ClaimResult, ClaimVerdict, Finding

__all__ = ["CLAIMS", "VERDICTS", "Claim", "ClaimResult", "Finding", "ClaimVerdict", "run_all"]
