"""Pure math on embedding matrices: streaming moments, spectrum, effective rank, geometry,
retrieval."""

from collapselab.metrics.geometry import alignment, std_of_l2_normalized, uniformity
from collapselab.metrics.moments import SAMPLE_SIZE, Moments
from collapselab.metrics.retrieval import recall_at_k
from collapselab.metrics.spectral import (
    effective_rank,
    marchenko_pastur_edges,
    participation_ratio,
    rankme,
)
from collapselab.metrics.summary import EmbeddingMetrics, compute_metrics, summarize

__all__ = [
    "SAMPLE_SIZE",
    "EmbeddingMetrics",
    "Moments",
    "alignment",
    "compute_metrics",
    "effective_rank",
    "marchenko_pastur_edges",
    "participation_ratio",
    "rankme",
    "recall_at_k",
    "std_of_l2_normalized",
    "summarize",
    "uniformity",
]
