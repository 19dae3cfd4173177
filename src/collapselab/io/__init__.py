"""Reading embedding matrices from files as validated chunks, with bounded memory.

A file (``PATH``) or an array inside one (``"PATH:KEY"``) is opened as an
:class:`EmbeddingSource`: the shape ``(n, d)`` and source dtype are known and validated
up front, and :meth:`EmbeddingSource.chunks` yields C-contiguous ``(k, d)`` row chunks
(float32 for float16 / bfloat16 / float32 / bool input, float64 for float64 and integer
input). A chunk is only valid until the next iteration: copy what you keep.

Formats: ``.npy`` (streamed with ``readinto``; any byte order, C or Fortran order),
``.npz`` (members streamed out of the zip), ``.safetensors`` (streamed; bfloat16 too),
``.pt``/``.pth`` (``torch.load(weights_only=True)``, memory-mapped), ``.csv``/``.tsv``
(streamed in line batches), ``.parquet`` (``pip install "collapselab[parquet]"``; read by
batches). Vector stores, each an optional extra: FAISS ``.faiss`` / ``.index`` files
(``collapselab[faiss]``; flat, IVF, PQ, SQ, HNSW and refine indexes, rows read by file
offset, lossy kinds decoded: ``source.note`` says which), Lance datasets
``DB/TABLE.lance:COLUMN`` (``collapselab[lancedb]``), Chroma ``DIR/chroma.sqlite3:COLLECTION``
(``collapselab[chroma]``) and PostgreSQL tables ``postgresql://...?table=T&column=C``
(``collapselab[postgres]``; a server-side cursor). :func:`atomic_npy` writes a float32
``.npy`` back, streamed and atomically. Nothing is ever unpickled. Every problem is an
:class:`~collapselab.errors.InputError` whose one-line message names the file.

Example:
    >>> src = open_embeddings("emb.npz:train")          # doctest: +SKIP
    >>> for chunk in src.chunks(rows=65536):             # doctest: +SKIP
    ...     moments.update(chunk)
"""

from __future__ import annotations

from collapselab.io._base import CHUNK_BYTES, EmbeddingSource, default_chunk_rows
from collapselab.io.api import (
    SUPPORTED,
    expand_specs,
    iter_sources,
    load_embeddings,
    open_embeddings,
    parse_spec,
)
from collapselab.io.arrow import arrow_matrix
from collapselab.io.writer import atomic_npy, check_npy_path

__all__ = [
    "CHUNK_BYTES",
    "SUPPORTED",
    "EmbeddingSource",
    "arrow_matrix",
    "atomic_npy",
    "check_npy_path",
    "default_chunk_rows",
    "expand_specs",
    "iter_sources",
    "load_embeddings",
    "open_embeddings",
    "parse_spec",
]
