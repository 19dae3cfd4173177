"""Threads: a pool made on first use and safe across ``fork``, shared by the readers
(``io``) and the arithmetic (``metrics``), which may not import each other; the one
helper that limits BLAS / OpenMP thread pools (:func:`blas_threads`) and the one that
sets torch's intra-op threads for a block (:func:`torch_threads`).

On a busy machine a multi-threaded BLAS spins on small matrices: a logistic regression
on 1347 x 128 features took 31 s with OpenBLAS's 2 threads and 0.15 s with one on the
2-core development machine. The monitor's ``d x d`` eigensolves, the evaluation's probes
and the theory checks are small, so they run single-threaded (also making them
deterministic whatever the machine's core count)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

_CONTROLLER: Any = None


def blas_threads(n: int = 1, user_api: str | None = None) -> AbstractContextManager[Any]:
    """A context limiting the loaded BLAS (``user_api="blas"``) or every BLAS / OpenMP
    pool (``None``) to ``n`` threads. Small ``d x d`` solves on a busy machine run faster
    and deterministically on one thread. The ``threadpoolctl`` controller is built once
    (``threadpool_limits`` would rescan the loaded libraries on every call, ~1 ms);
    without threadpoolctl (it ships with scikit-learn) nothing is limited."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover
            return contextlib.nullcontext()
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=n, user_api=user_api)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, restoring the previous count after
    it, whatever happens. ``None`` leaves the setting alone (and does not import torch).
    """
    if n is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class LazyPool:
    """A thread pool made on first use and forgotten in a forked child (which has the
    pool object but not its threads)."""

    def __init__(self, workers: int, prefix: str) -> None:
        self.workers, self.prefix = workers, prefix
        self._pool: ThreadPoolExecutor | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def get(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.prefix)
        return self._pool

    def _forget(self) -> None:
        self._pool = None
