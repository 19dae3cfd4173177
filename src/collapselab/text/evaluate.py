"""Task metrics for sentence embeddings: paired retrieval and agreement with human ratings.

- :func:`recall_at_k` (pure numpy, in :mod:`collapselab.metrics.retrieval`): query
  ``i``'s relevant document is document ``i``; the share of
  queries whose relevant document ranks in the top ``k`` by cosine similarity. Ties count
  against the query (a document that scores *as high as* the relevant one outranks it),
  so a fully collapsed model, whose scores are all equal, gets 0, never 1.
- :func:`lee_correlation`: Pearson correlation between the cosine similarities of the 50
  Lee documents and the mean human ratings, over the 1,225 pairs ``i < j`` (Lee, Pincombe
  & Welsh 2005, "An empirical evaluation of models of text document similarity"; the
  protocol of gensim's ``test_lee.py``).
- :func:`word_similarity_spearman`: Spearman correlation between cosine similarities and
  human scores of word pairs (SimLex-999: Hill et al. 2015; WordSim-353: Finkelstein et
  al. 2002).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from collapselab.errors import InputError
from collapselab.metrics.retrieval import recall_at_k, unit_rows

__all__ = [
    "cosine_upper",
    "lee_correlation",
    "pearson",
    "recall_at_k",
    "spearman",
    "unit_rows",
    "word_similarity_spearman",
]

Encoder = Callable[[Sequence[str]], NDArray[np.float32]]


def cosine_upper(z: Any) -> NDArray[np.float64]:
    """Cosine similarities of all pairs ``i < j`` of the rows of ``z``, row-major order."""
    u = unit_rows(z)
    sim = u @ u.T  # (N, N)
    return sim[np.triu_indices(sim.shape[0], 1)]


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two equal-length vectors (nan when either is constant)."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x @ x) * (y @ y)))
    return float(x @ y) / den if den > 0 else float("nan")


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    from scipy.stats import rankdata

    return pearson(rankdata(a), rankdata(b))


def lee_correlation(doc_embeddings: Any, human: Any) -> float:
    """Pearson correlation of model cosine vs. human similarity over pairs ``i < j``.

    Args:
        doc_embeddings: ``(50, d)`` embeddings of the Lee documents, in file order.
        human: ``(50, 50)`` human similarity matrix (only ``i < j`` is read).
    """
    h = np.asarray(human, dtype=np.float64)
    z = np.asarray(doc_embeddings)
    if h.ndim != 2 or h.shape[0] != h.shape[1] or z.shape[0] != h.shape[0]:
        raise InputError(f"{z.shape[0]} documents but a human matrix of shape {h.shape}")
    return pearson(cosine_upper(z), h[np.triu_indices(h.shape[0], 1)])


def word_similarity_spearman(
    encoder: Encoder, pairs: Sequence[tuple[str, str, float]]
) -> float:
    """Spearman correlation between cosine(word1, word2) and the human score of each pair."""
    if len(pairs) < 3:
        raise InputError(f"{len(pairs)} word pairs; need at least 3")
    words = sorted({w for a, b, _ in pairs for w in (a, b)})
    index = {w: i for i, w in enumerate(words)}
    u = unit_rows(encoder(words))
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    cos = (u[ia] * u[ib]).sum(axis=1)
    return spearman(cos, [s for _, _, s in pairs])
