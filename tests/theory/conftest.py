"""Shared fixtures of the theory tests.

Every claim's check is evaluated at most once per session (``claim_evidence``), and torch runs
single-threaded: the problems are tiny, and on the shared 2-core machine extra threads only
add contention (the results do not depend on it beyond float32 rounding in the demos).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest

from collapselab.theory import CLAIMS, Finding
from collapselab.theory.registry import torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """One torch thread for each theory module, the previous count restored after it (a
    session-wide pin would leak into every folder collected after this one)."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def claim_evidence() -> Callable[[str], Finding]:
    """``claim_evidence(id)``: the registry's check for that claim, run once per session."""
    by_id = {c.id: c for c in CLAIMS}
    return functools.cache(lambda claim_id: by_id[claim_id].check())
