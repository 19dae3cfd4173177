"""A thread pool made on first use and safe across ``fork``: shared by the readers
(``io``) and the arithmetic (``metrics``), which may not import each other."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor


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
