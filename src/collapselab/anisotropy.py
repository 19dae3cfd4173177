"""Anisotropy diagnostics that matter for retrieval, and the effect of removing it.

Sentence embeddings are often *anisotropic*: every row leans towards one common
direction, so random pairs score a high cosine (Ethayarajh 2019, "How Contextual are
Contextualized Word Representations?", Sec. 4: the average cosine of random words as the
anisotropy baseline). A model ending in a normalisation layer (all-MiniLM-L6-v2) shows
collapse this way: every row points one way, the norms never shrink.

The numbers, all read off :func:`collapselab.metrics.compute_metrics` (one float64 pass):

- ``mean_cosine``: the exact mean of ``cos(z_i, z_j)`` over all pairs ``i != j``, i.e. the
  expected cosine of a random pair, ``(||sum_i u_i||^2 - N) / (N (N - 1))`` with
  ``u_i = z_i / ||z_i||``.
- ``top_share[k]``: share of the centred variance in the top ``k`` principal directions,
  ``sum_{i<=k} lambda_i / sum_i lambda_i``.
- ``mean_share``: share of the mean squared norm held by the mean vector,
  ``||mu||^2 / E||z||^2 = 1 - relative_variance``; near 1 when every row is the mean.
- ``effective_rank`` and the verdict of :func:`collapselab.diagnose.judge`.

:func:`anisotropy` reports these for the embeddings as they are and after each
correction (centring, removing the top ``D`` directions, whitening), fitted on the same
embeddings; with held-out query/document pairs it also reports recall@1 of each, so one
sees whether a correction helps retrieval, not only the geometry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from collapselab.check import accumulate_sources
from collapselab.diagnose import Thresholds, judge
from collapselab.errors import ConfigError
from collapselab.io import (
    EmbeddingSource,
    atomic_npy,
    check_npy_path,
    iter_sources,
    load_embeddings,
    open_embeddings,
)
from collapselab.metrics import (
    EmbeddingMetrics,
    Moments,
    compute_metrics,
    recall_at_k,
    summarize,
)
from collapselab.whiten import WhiteningTransform, fit_array, fit_transform

TOP_K: tuple[int, ...] = (1, 3, 10)


@dataclass(frozen=True)
class Geometry:
    """Anisotropy numbers of one embedding matrix ``(n, d)`` (see module docstring)."""

    n: int
    d: int
    mean_cosine: float
    top_share: dict[int, float]
    mean_share: float
    effective_rank: float
    isotropic_effective_rank: float
    std_of_l2_normalized: float
    verdict: str

    @classmethod
    def from_metrics(
        cls,
        met: EmbeddingMetrics,
        top_k: Sequence[int] = TOP_K,
        thresholds: Thresholds | None = None,
    ) -> Geometry:
        lam = met.eigenvalues
        total = float(lam.sum())
        shares = {k: (float(lam[:k].sum()) / total if total > 0 else 1.0)
                  for k in top_k if k <= met.d}  # fmt: skip
        return cls(
            n=met.n,
            d=met.d,
            mean_cosine=float(met.mean_cosine),
            top_share=shares,
            mean_share=1.0 - float(met.relative_variance),
            effective_rank=float(met.effective_rank),
            isotropic_effective_rank=float(met.isotropic_effective_rank),
            std_of_l2_normalized=float(met.std_of_l2_normalized),
            verdict=judge(met, thresholds).verdict,
        )

    @classmethod
    def of(cls, z: Any, top_k: Sequence[int] = TOP_K) -> Geometry:
        """Geometry of an in-memory ``(N, d)`` matrix."""
        return cls.from_metrics(compute_metrics(z), top_k)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["top_share"] = {str(k): v for k, v in self.top_share.items()}
        return out


@dataclass(frozen=True)
class Correction:
    """One correction (``"none"``, ``"center"``, ``"remove-top-D"``, ``"whiten"``)."""

    name: str
    geometry: Geometry
    recall_at_1: float | None  #: on the held-out pairs, when given

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "recall_at_1": self.recall_at_1,
                **self.geometry.to_dict()}  # fmt: skip


@dataclass(frozen=True)
class AnisotropyReport:
    """The embeddings as they are (``corrections[0]``, named ``"none"``) and corrected."""

    corrections: list[Correction]

    @property
    def original(self) -> Geometry:
        return self.corrections[0].geometry

    def by_name(self, name: str) -> Correction:
        for c in self.corrections:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"corrections": [c.to_dict() for c in self.corrections]}


def _transforms(
    z: np.ndarray, remove: Sequence[int], whiten_dims: Sequence[int | None]
) -> list[tuple[str, WhiteningTransform | None]]:
    out: list[tuple[str, WhiteningTransform | None]] = [("none", None)]
    out.append(("center", fit_array(z, "center")))
    out.extend((f"remove-top-{r}", fit_array(z, "remove-top", remove=r)) for r in remove)
    out.extend((f"whiten-{k}" if k else "whiten", fit_array(z, "whiten", dims=k))
               for k in whiten_dims)  # fmt: skip
    return out


def anisotropy(
    z: Any,
    remove: Sequence[int] = (1, 3, 10),
    whiten_dims: Sequence[int | None] = (None,),
    pairs: tuple[Any, Any] | None = None,
    top_k: Sequence[int] = TOP_K,
) -> AnisotropyReport:
    """Anisotropy of ``z`` and of its corrections, each fitted on ``z``.

    Args:
        z: ``(N, d)`` embeddings of a corpus (numpy or torch).
        remove: numbers ``D`` of top principal directions to try removing (after centring).
        whiten_dims: whitenings to try: ``None`` keeps every direction (``"whiten"``),
            ``k`` the top ``k`` (``"whiten-k"``, Su et al.'s dimension reduction); ``()``
            for none.
        pairs: optional held-out ``(queries, docs)``, each ``(M, d)``, row ``i`` relevant
            to row ``i``; each correction (fitted on ``z`` only) is applied to both and
            scored by recall@1.
        top_k: ``k`` values for the top-``k`` variance shares.

    Returns:
        :class:`AnisotropyReport`; ``corrections[0]`` is the uncorrected ``z``.
    """
    a = np.asarray(z.detach().cpu() if hasattr(z, "detach") else z)
    valid = [r for r in remove if 0 < r < a.shape[1]]
    dims = [k for k in whiten_dims if k is None or 0 < k <= a.shape[1]]
    out = []
    for name, t in _transforms(a, valid, dims):
        za = a if t is None else t.apply(a)
        recall = None
        if pairs is not None:
            q, d = (np.asarray(p) for p in pairs)
            recall = recall_at_k(q, d) if t is None else recall_at_k(t.apply(q), t.apply(d))
        out.append(Correction(name, Geometry.of(za, top_k), recall))
    return AnisotropyReport(out)


@dataclass(frozen=True)
class WhitenReport:
    """``collapselab whiten``: the fitted transform and the geometry before / after it.

    ``before`` / ``after`` describe ``evaluated`` (the ``--apply`` file when given, else
    the fit data); ``recall_before`` / ``recall_after`` are recall@1 on held-out
    query/document pairs when given.
    """

    transform: WhiteningTransform
    fitted_on: list[str]
    evaluated: str
    before: Geometry
    after: Geometry
    recall_before: float | None
    recall_after: float | None
    written: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "transform": self.transform.to_dict(),
            "fitted_on": self.fitted_on,
            "evaluated": self.evaluated,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "recall_at_1_before": self.recall_before,
            "recall_at_1_after": self.recall_after,
            "written": self.written,
            "seconds": round(self.seconds, 4),
        }


class Transformed(EmbeddingSource):
    """The rows of ``source`` through ``transform`` (float32, ``(n, d_out)``), read by
    :func:`~collapselab.check.accumulate_sources` like any file.

    Args:
        source: the rows to transform (``d == transform.d_in``).
        transform: the fitted transform.
        tap: moments that each untransformed chunk also updates (the geometry "before",
            from the same read as "after").
        sink: called with each transformed chunk as little-endian float32 bytes (e.g. a
            ``.npy`` being written).
    """

    def __init__(
        self,
        source: EmbeddingSource,
        transform: WhiteningTransform,
        tap: Moments | None = None,
        sink: Callable[[bytes], object] | None = None,
    ) -> None:
        super().__init__(source.name, source.n, transform.d_out, "float32",
                         np.dtype(np.float32))  # fmt: skip
        self.source, self.transform, self.tap, self.sink = source, transform, tap, sink

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop)  # every chunk is a new array: no ring needed

    def _chunks(self, rows: int, start: int, stop: int) -> Iterator[np.ndarray]:
        for chunk in self.source.chunks(rows, start, stop):
            if self.tap is not None:
                self.tap.update(chunk)
            y = self.transform.apply(chunk, self.source.name)
            if self.sink is not None:
                self.sink(y.astype("<f4").tobytes())
            yield y


def whiten_files(
    specs: Sequence[str],
    out: str | None = None,
    method: str = "whiten",
    dims: int | None = None,
    remove: int | None = None,
    transform: str | None = None,
    apply: str | None = None,
    apply_out: str | None = None,
    queries: str | None = None,
    docs: str | None = None,
) -> WhitenReport:
    """Fit (or load) a transform, optionally apply it to a file, report before / after.

    Args:
        specs: embedding files to fit on (``PATH``, ``PATH:KEY`` or globs, one matrix);
            may be empty when ``transform`` is given.
        out: where to save the fitted transform (``.npz``).
        method, dims, remove: see :func:`collapselab.whiten.fit_transform`.
        transform: load this saved transform instead of fitting one.
        apply: an embedding file to transform and describe (default: the fit data).
        apply_out: write the transformed ``apply`` rows here (``.npy``, streamed).
        queries, docs: held-out paired embedding files (row ``i`` relevant to row ``i``)
            scored by recall@1 before and after.

    Raises:
        ConfigError: inconsistent options. InputError: unreadable inputs.
    """
    t0 = time.perf_counter()
    if transform is None and not specs:
        raise ConfigError("give embedding files to fit on, or --transform T.npz to apply")
    if transform is not None and specs:
        raise ConfigError("give either embedding files to fit on or --transform, not both")
    if apply_out is not None:
        if apply is None:
            raise ConfigError("--apply-out needs --apply FILE")
        check_npy_path(apply_out)
    if (queries is None) != (docs is None):
        raise ConfigError("--queries and --docs go together")
    if out is not None and (not out.lower().endswith(".npz") or not os.path.isdir(
        os.path.dirname(os.path.abspath(out))
    )):
        raise ConfigError(f"{out}: the transform is written as .npz into an existing folder")
    sources = iter_sources(list(specs)) if specs else []
    fitted: Moments | None = None
    if transform is not None:
        t = WhiteningTransform.load(transform)
    else:
        fitted = accumulate_sources(sources)  # one read of the fit files: fit and "before"
        t = fit_transform(fitted, method, dims, remove)
    written = []
    if out is not None:
        t.save(out)
        written.append(out)
    targets = [open_embeddings(apply)] if apply is not None else sources
    if not targets:
        raise ConfigError("with --transform, give --apply FILE to transform")
    for s in targets:
        if s.d != t.d_in:
            raise ConfigError(f"{s.name}: {s.d} columns, but the transform expects {t.d_in}")
    # the fit data described: "before" is the fit's moments (already read); otherwise the
    # one read of the targets that gives "after" gives "before" too
    described = fitted if apply is None else None
    tap = Moments(t.d_in) if described is None else None
    if apply_out is not None:
        with atomic_npy(apply_out, (targets[0].n, t.d_out)) as f:
            after = accumulate_sources([Transformed(targets[0], t, tap, f.write)])
        written.append(apply_out)
    else:
        after = accumulate_sources([Transformed(s, t, tap) for s in targets])
    before = tap.all_reduce() if tap is not None else described
    if before is None:  # unreachable: no fit data means --apply, hence a tap
        raise ConfigError("nothing to describe: give --apply FILE")
    r_before = r_after = None
    if queries is not None and docs is not None:
        q, dd = load_embeddings(queries), load_embeddings(docs)
        r_before = recall_at_k(q, dd)
        r_after = recall_at_k(t.apply(q, queries), t.apply(dd, docs))
    return WhitenReport(
        transform=t,
        fitted_on=[s.name for s in sources] if transform is None else [transform],
        evaluated=", ".join(s.name for s in targets),
        before=Geometry.from_metrics(summarize(before)),
        after=Geometry.from_metrics(summarize(after)),
        recall_before=r_before,
        recall_after=r_after,
        written=written,
        seconds=time.perf_counter() - t0,
    )
