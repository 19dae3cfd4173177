"""Paired retrieval, pure numpy: recall@k of query ``i`` retrieving document ``i``.

Ties count against the query (a document that scores *as high as* the relevant one
outranks it), so a fully collapsed model, whose scores are all equal, gets 0, never 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from collapselab.errors import InputError


def unit_rows(x: Any) -> NDArray[np.float64]:
    """Rows scaled to unit L2 norm (zero rows stay zero), float64."""
    a = np.asarray(x, dtype=np.float64)
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-300)


def recall_at_k(queries: Any, docs: Any, k: int = 1, block: int = 1024) -> float:
    """Recall@k of paired retrieval: query ``i`` should retrieve document ``i``.

    Args:
        queries: ``(N, d)``.
        docs: ``(N, d)``; row ``i`` is the relevant document of query ``i``, the other
            rows are the candidates it competes with.
        k: rank cut-off.
        block: queries scored at once (memory ``block x N``).

    Returns:
        Fraction of queries whose relevant document has fewer than ``k`` other documents
        scoring at least as high (cosine).
    """
    q, d = unit_rows(queries), unit_rows(docs)
    if q.ndim != 2 or q.shape != d.shape:
        raise InputError(f"queries {q.shape} and docs {d.shape} must be equal (N, d) shapes")
    n = q.shape[0]
    if not 1 <= k <= n:
        raise InputError(f"k must be in [1, {n}], got {k}")
    hits = 0
    for s in range(0, n, block):
        sim = q[s : s + block] @ d.T  # (b, N) cosine similarities
        rows = np.arange(sim.shape[0])
        own = sim[rows, s + rows]  # (b,) score of the relevant document
        sim[rows, s + rows] = -np.inf
        outrank = (sim >= own[:, None]).sum(axis=1)  # other docs scoring >= the relevant one
        hits += int((outrank < k).sum())
    return hits / n
