"""Keep small host-side linear algebra on one BLAS thread.

On a busy machine a multi-threaded BLAS spins on small matrices: a logistic regression
on 1347 x 128 features took 31 s with OpenBLAS's 2 threads and 0.15 s with one on the
2-core development machine. The monitor's ``d x d`` eigensolves and the evaluation's
probes are small, so they run single-threaded (also making them deterministic whatever
the machine's core count). ``threadpoolctl`` ships with scikit-learn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_controller: Any = None


@contextlib.contextmanager
def blas_threads(n: int = 1) -> Iterator[None]:
    """Limit BLAS / OpenMP thread pools of numpy and scikit-learn to ``n`` inside the block."""
    global _controller
    try:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        ctx = _controller.limit(limits=n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        ctx = contextlib.nullcontext()
    with ctx:
        yield
