"""Real-text cases: all-MiniLM-L6-v2 frozen, fine-tuned, whitened; Word2Vec on gensim's data.

Every MiniLM case of a set embeds the same probe texts: WordNet glosses drawn, with the
split of :func:`collapselab.text.experiment.run_finetune_experiment` (seed 0), from
the (gloss, example) pairs; the held-out pairs of that split give recall@1 (gloss ->
its example among all held-out examples), the training pairs the fine-tuning batches.

Cases (``text/...``):

- ``minilm-frozen-wordnet``: the frozen model on the probe glosses (broad: every part of
  speech, every lexicographer file); ``minilm-frozen-animal``: on 1,000 glosses of
  ``noun.animal`` only (narrow); ``minilm-frozen-lee``: on the 350 Lee news documents
  (``lee.cor`` + ``lee_background.cor``). ``healthy``: all-MiniLM-L6-v2 *is* the
  reference model, its numbers are the yardstick of the others;
- ``minilm-infonce-stepS``: fine-tuned with in-batch negatives (InfoNCE, tau 0.05),
  baseline the frozen model's embeddings of the same probe texts;
- ``minilm-cosine-stepS``: fine-tuned with a positives-only cosine loss
  (``(1 - cos(a, b))^2``, nothing pushes unrelated texts apart) from onset to full
  collapse, baseline the frozen model; ``minilm-cosine-stepS-nobaseline``: the last
  snapshot again without a baseline (same ``z``), to calibrate the absolute verdict;
- ``minilm-frozen-whitened`` / ``minilm-cosine-stepS-whitened``: whitening
  (:func:`collapselab.whiten.fit_array`, all dimensions) fitted on 2,048 training
  texts embedded by that model, applied to the probe; no baseline (the whitened frozen
  model drops 3 null directions, d = 381, so the shapes differ);
- ``word2vec-lee-cbow`` / ``word2vec-lee-skipgram``: gensim Word2Vec (d = 100, window 5,
  min count 3, 40 epochs, one worker, seed 0) on the 300 Lee background documents: the
  vectors of its vocabulary;
- fast subset (``fast=True``): the frozen model on 256 probe glosses and a short
  positives-only fine-tune (lr 2e-4, batch 16) at steps 5 (onset) and 10 (collapsed),
  with that as baseline: about 30 CPU-seconds from an empty cache.

Labels (the downstream outcome; never from the verdict nor from a quantity it draws a line
on):

- MiniLM fine-tunes and whitened models: ``r`` = held-out recall@1 / the frozen model's
  recall@1 on the same pairs; ``healthy`` if ``r >= 0.9``, else ``hurt``; a snapshot of a
  positives-only run with ``r >= 0.9`` is ``ambiguous`` (its objective collapses: an early
  warning is as right as none). The no-baseline
  copy keeps its snapshot's label. Structural kind (second axis): ``complete`` for a hurt
  positives-only fine-tune (its loss is 0 when every text has one embedding), none for
  InfoNCE or whitening;
- frozen MiniLM: ``healthy`` (the reference); Lee-50 Pearson r, SimLex-999 and
  WordSim-353 Spearman rho are reported;
- Word2Vec: ``healthy`` if its WordSim-353 Spearman rho over the pairs in its vocabulary
  is positive with p < 0.01 (it learned word similarity; a model trained as designed,
  weak only for lack of data: 58k tokens), otherwise ``ambiguous`` (kept, not scored).

Embeddings and quality numbers are cached as ``.npz`` files (no pickles) under
``cache`` (default ``benchmarks/calibration/cache/text/``), one per model run, named by
a hash of every setting, so a second call neither embeds nor trains. Needs
``pip install "collapselab[text]" gensim`` and ``apt-get install wordnet-base``.
Building everything from an empty cache takes about 10 CPU-minutes; the fast subset
about 30 CPU-seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from collapselab._atomic import atomic_open
from collapselab._pool import torch_threads
from collapselab.experiments.calibration import Case, Label

GROUP = "text"
MODEL = "all-MiniLM-L6-v2"
#: bump to invalidate every cached file when the way cases are built changes
VERSION = 1
DEFAULT_CACHE = Path("benchmarks/calibration/cache/text")
#: the structural kind of a positives-only fine-tune's collapse: its loss is 0 when every
#: text has one embedding (the optimum is one point)
POINT_OPTIMUM = "complete"
#: lexicographer file of the narrow domain (``noun.animal``) and how many glosses
NARROW_LEXFILE, NARROW_SIZE = "05", 1000

Arrays = dict[str, NDArray[Any]]


@dataclass(frozen=True)
class Split:
    """WordNet (gloss, example) pairs, shuffled with ``seed``: held-out, probe, train."""

    probe_size: int
    heldout: int
    seed: int = 0


@dataclass(frozen=True)
class Frozen:
    """What the frozen model embeds (and scores) besides the probe set."""

    split: Split
    extras: bool  # Lee-50, SimLex / WordSim, whitening, narrow domain, Lee documents
    repair: int = 2048  # texts to fit the whitening on


@dataclass(frozen=True)
class Run:
    """One fine-tune, with the steps at which the probe set is embedded."""

    split: Split
    loss: str  # "cosine" (positives only) or "infonce"
    steps: tuple[int, ...]
    lr: float
    batch_size: int
    extras: bool  # Lee-50, SimLex / WordSim at every snapshot, whitening at the last
    temperature: float = 0.05
    repair: int = 2048


FULL_SPLIT = Split(probe_size=1000, heldout=256)
FAST_SPLIT = Split(probe_size=256, heldout=128)
FULL_FROZEN = Frozen(FULL_SPLIT, extras=True)
FAST_FROZEN = Frozen(FAST_SPLIT, extras=False)
FULL_RUNS = (
    Run(FULL_SPLIT, "cosine", (10, 20, 35, 50, 80), lr=2e-5, batch_size=32, extras=True),
    Run(FULL_SPLIT, "infonce", (35, 80), lr=2e-5, batch_size=32, extras=True),
)
FAST_RUN = Run(FAST_SPLIT, "cosine", (5, 10), lr=2e-4, batch_size=16, extras=False)


# --------------------------------------------------------------------------- caching


def _key(tag: str, settings: Any, model: str = MODEL) -> str:
    blob = json.dumps({"tag": tag, "version": VERSION, "model": model,
                       "settings": asdict(settings)}, sort_keys=True)  # fmt: skip
    return f"{tag}-{hashlib.sha1(blob.encode()).hexdigest()[:12]}"


def _cached(
    cache: Path,
    tag: str,
    settings: Any,
    build: Callable[[], tuple[Arrays, dict[str, Any]]],
    model: str = MODEL,
) -> tuple[Arrays, dict[str, Any]]:
    """Arrays and quality numbers of one job, from ``cache`` or built and stored there
    (``model``: the model's name, part of the key)."""
    path = cache / f"{_key(tag, settings, model)}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files if k != "__quality__"}
            quality = json.loads(str(f["__quality__"]))
        return arrays, quality
    with torch_threads(1):  # faster on shared cores, and reproducible
        arrays, quality = build()
    payload: dict[str, Any] = {**arrays, "__quality__": np.array(json.dumps(quality))}
    with atomic_open(path, "wb", fsync=False) as fh:
        np.savez(fh, **payload)
    return arrays, quality


# --------------------------------------------------------------------------- data


@dataclass
class _Data:
    train: list[tuple[str, str]]
    heldout: list[tuple[str, str]]
    probe: list[str]
    repair: list[str]


def _split(s: Split, repair: int) -> _Data:
    # the split of run_finetune_experiment (text/experiment.py), so numbers compare
    from collapselab.text.data import wordnet_pairs

    pairs = [(p.gloss, p.example) for p in wordnet_pairs()]
    random.Random(s.seed).shuffle(pairs)
    heldout = pairs[: s.heldout]
    probe = [g for g, _ in pairs[s.heldout : s.heldout + s.probe_size]]
    train = pairs[s.heldout + s.probe_size :]
    return _Data(train, heldout, probe, [t for pair in train[: repair // 2] for t in pair])


def narrow_glosses(lexfile: str = NARROW_LEXFILE, size: int = NARROW_SIZE) -> list[str]:
    """``size`` glosses (seed 0) of one lexicographer file of WordNet nouns."""
    from collapselab.text.data import wordnet_dir

    out = []
    with open(wordnet_dir() / "data.noun", encoding="latin-1") as f:
        for line in f:
            fields = line.split(" ", 3)
            if line.startswith("  ") or " | " not in line or fields[1] != lexfile:
                continue
            gloss = line.partition(" | ")[2].split('"')[0].strip().rstrip(";").strip()
            if gloss:
                out.append(gloss)
    random.Random(0).shuffle(out)
    return out[:size]


# --------------------------------------------------------------------------- scoring


def _scores(model: Any, d: _Data, extras: bool, whiten: bool) -> tuple[Arrays, dict[str, Any]]:
    """Probe embeddings and downstream numbers of ``model`` (the arrays and quality)."""
    from collapselab.metrics import recall_at_k
    from collapselab.text.data import lee_corpus, word_pairs
    from collapselab.text.evaluate import lee_correlation, word_similarity_spearman
    from collapselab.text.model import encode

    z = encode(model, d.probe, 64)
    q = encode(model, [g for g, _ in d.heldout], 64)
    p = encode(model, [e for _, e in d.heldout], 64)
    arrays: Arrays = {"probe": z}
    quality: dict[str, Any] = {"recall_at_1": recall_at_k(q, p)}
    if extras:
        lee = lee_corpus()
        quality["lee_pearson"] = lee_correlation(encode(model, lee.documents, 64), lee.similarity)
        for name in ("simlex999", "wordsim353"):
            quality[name] = word_similarity_spearman(lambda w: encode(model, w, 64),
                                                     word_pairs(name))  # fmt: skip
    if whiten:
        from collapselab.whiten import fit_array

        t = fit_array(encode(model, d.repair, 64), "whiten")
        arrays["probe_whitened"] = t.apply(z)
        quality["whitened_recall_at_1"] = recall_at_k(t.apply(q), t.apply(p))
    return arrays, quality


def _frozen(
    spec: Frozen, model_path: str | os.PathLike[str] = MODEL
) -> tuple[Arrays, dict[str, Any]]:
    from collapselab.text.data import lee_background, lee_corpus
    from collapselab.text.model import encode, load_model

    t0 = time.perf_counter()
    model = load_model(model_path)
    d = _split(spec.split, spec.repair)
    arrays, quality = _scores(model, d, spec.extras, whiten=spec.extras)
    if spec.extras:
        arrays["animal"] = encode(model, narrow_glosses(), 64)
        arrays["lee_docs"] = encode(model, lee_corpus().documents + lee_background(), 64)
    quality["seconds"] = time.perf_counter() - t0
    return arrays, quality


def _finetune(
    spec: Run,
    model_path: str | os.PathLike[str] = MODEL,
    on_step: Callable[[int, float, torch.Tensor], None] | None = None,
) -> tuple[Arrays, dict[str, Any]]:
    """``on_step(step, loss, za)``, if given, sees every training batch: ``step`` updates
    done before it, its loss, ``za`` its first texts' embeddings (detached)."""
    from collapselab.text.experiment import flush_denormals, pair_loss
    from collapselab.text.model import forward, load_model

    t0 = time.perf_counter()
    torch.manual_seed(spec.split.seed)
    model = load_model(model_path)
    d = _split(spec.split, spec.repair)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr)
    arrays: Arrays = {}
    quality: dict[str, Any] = {}
    last = max(spec.steps)
    with flush_denormals():
        for step in range(last + 1):
            if step in spec.steps:
                a, qd = _scores(model, d, spec.extras, whiten=spec.extras and step == last)
                arrays.update({f"{k}_{step}": v for k, v in a.items()})
                quality[str(step)] = qd
            if step == last:
                break
            # the batches of run_finetune_experiment
            lo = (step * spec.batch_size) % max(1, len(d.train) - spec.batch_size + 1)
            batch = d.train[lo : lo + spec.batch_size]
            model.train()
            za = forward(model, [a for a, _ in batch])  # (B, d)
            zb = forward(model, [b for _, b in batch])  # (B, d)
            loss = pair_loss(spec.loss, za, zb, spec.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if on_step is not None:
                on_step(step, float(loss.detach()), za.detach())
    quality["seconds"] = time.perf_counter() - t0
    return arrays, quality


@dataclass(frozen=True)
class Word2VecSpec:
    sg: int
    vector_size: int = 100
    window: int = 5
    min_count: int = 3
    epochs: int = 40
    seed: int = 0


def _word2vec(spec: Word2VecSpec) -> tuple[Arrays, dict[str, Any]]:
    from gensim.models import Word2Vec
    from gensim.utils import simple_preprocess
    from scipy.stats import spearmanr

    from collapselab.text.data import lee_background, word_pairs

    t0 = time.perf_counter()
    docs = [simple_preprocess(doc) for doc in lee_background()]
    wv = Word2Vec(docs, vector_size=spec.vector_size, window=spec.window,
                  min_count=spec.min_count, epochs=spec.epochs, workers=1, seed=spec.seed,
                  sg=spec.sg).wv  # fmt: skip
    quality: dict[str, Any] = {"tokens": sum(map(len, docs))}
    for name in ("wordsim353", "simlex999"):
        pairs = [(a.lower(), b.lower(), s) for a, b, s in word_pairs(name)
                 if a.lower() in wv and b.lower() in wv]  # fmt: skip
        res = spearmanr([float(wv.similarity(a, b)) for a, b, _ in pairs], [s for *_, s in pairs])
        quality[name] = float(res.statistic)
        quality[f"{name}_p"] = float(res.pvalue)
        quality[f"{name}_pairs"] = len(pairs)
    quality["seconds"] = time.perf_counter() - t0
    return {"vectors": np.ascontiguousarray(wv.vectors, dtype=np.float32)}, quality


# --------------------------------------------------------------------------- labels


def _mean_cosine(z: NDArray[np.float32]) -> float:
    from collapselab.metrics import compute_metrics

    return float(compute_metrics(z).mean_cosine)


def label_finetune(recall: float, ref_recall: float, mean_cosine: float,
                   onset: bool = False) -> tuple[Label, str]:  # fmt: skip
    """The outcome of a fine-tuned / transformed model and its one-line reason: ``hurt``
    when its held-out recall@1 fell below 0.9 x the frozen model's; ``onset`` (a snapshot
    of a positives-only run, whose objective drives every text to one point): ``ambiguous``
    while the recall is still kept, as for the SSL runs that collapse later. The random-pair
    cosine is reported, never used (the verdict draws its lines on it)."""
    r = recall / ref_recall
    nums = (f"held-out recall@1 {recall:.3f} = {r:.2f} x the frozen model's {ref_recall:.3f}, "
            f"random-pair cosine {mean_cosine:.3f}")  # fmt: skip
    if r >= 0.9 and onset:
        return "ambiguous", (f"{nums}: retrieval kept so far in a run whose objective "
                             "collapses (an early warning is as right as none)")  # fmt: skip
    if r >= 0.9:
        return "healthy", f"{nums}: kept >= 90% of the reference's retrieval"
    return "hurt", f"{nums}: lost {1 - r:.0%} of its retrieval"


def _round(q: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in q.items() if isinstance(v, (int, float))}


# --------------------------------------------------------------------------- cases


def _case(name: str, label: Label, why: str, z: NDArray[Any], **kw: Any) -> Case:
    base = kw.pop("baseline", None)
    return Case(f"{GROUP}/{name}", GROUP, label, why, np.ascontiguousarray(z, np.float32),
                baseline=None if base is None else np.ascontiguousarray(base, np.float32),
                **kw)  # fmt: skip


def _fast_cases(cache: Path) -> Iterator[Case]:
    fz, fq = _cached(cache, "frozen-fast", FAST_FROZEN, lambda: _frozen(FAST_FROZEN))
    ref = fq["recall_at_1"]
    n = FAST_SPLIT.probe_size
    yield _case(f"minilm-frozen-wordnet-{n}", "healthy",
                f"all-MiniLM-L6-v2, the reference model, on {n} WordNet glosses "
                f"(held-out recall@1 {ref:.3f})", fz["probe"], kind="embedding",
                quality={"recall_at_1": round(ref, 4)}, fast=True)  # fmt: skip
    rz, rq = _cached(cache, "cosine-fast", FAST_RUN, lambda: _finetune(FAST_RUN))
    for step in FAST_RUN.steps:
        z, rec = rz[f"probe_{step}"], rq[str(step)]["recall_at_1"]
        label, why = label_finetune(rec, ref, _mean_cosine(z), onset=True)
        yield _case(f"minilm-cosine-lr{FAST_RUN.lr:g}-b{FAST_RUN.batch_size}-step{step}-{n}",
                    label, f"positives-only fine-tune, step {step}: {why}", z,
                    baseline=fz["probe"], quality={"recall_at_1": round(rec, 4),
                                                   "ref_recall_at_1": round(ref, 4)},
                    fast=True, structure=POINT_OPTIMUM if label == "hurt" else None)  # fmt: skip


def _full_cases(cache: Path) -> Iterator[Case]:
    fz, fq = _cached(cache, "frozen", FULL_FROZEN, lambda: _frozen(FULL_FROZEN))
    ref = fq["recall_at_1"]
    ref_q = {f"ref_{k}": v for k, v in _round(fq).items() if k != "seconds" and "white" not in k}
    n = FULL_SPLIT.probe_size
    base_why = "all-MiniLM-L6-v2 frozen, the reference model"
    scores = (f"held-out recall@1 {ref:.3f}, Lee-50 r {fq['lee_pearson']:.3f}, SimLex rho "
              f"{fq['simlex999']:.3f}, WordSim rho {fq['wordsim353']:.3f}")  # fmt: skip
    frozen_q = {k: v for k, v in _round(fq).items() if k != "seconds"}
    yield _case("minilm-frozen-wordnet", "healthy",
                f"{base_why}, on {n} WordNet glosses of every part of speech ({scores})",
                fz["probe"], quality=frozen_q)  # fmt: skip
    yield _case("minilm-frozen-animal", "healthy",
                f"{base_why}, on {len(fz['animal'])} glosses of noun.animal only (narrow "
                f"domain; {scores} on the broad set)", fz["animal"])  # fmt: skip
    yield _case("minilm-frozen-lee", "healthy",
                f"{base_why}, on the {len(fz['lee_docs'])} Lee news documents (Lee-50 r "
                f"{fq['lee_pearson']:.3f})", fz["lee_docs"],
                quality={"lee_pearson": frozen_q["lee_pearson"]})  # fmt: skip
    wrec = fq["whitened_recall_at_1"]
    label, why = label_finetune(wrec, ref, _mean_cosine(fz["probe_whitened"]))
    yield _case("minilm-frozen-whitened", label, f"frozen model whitened: {why}",
                fz["probe_whitened"], quality={"recall_at_1": round(wrec, 4),
                                               "ref_recall_at_1": round(ref, 4)})  # fmt: skip
    for run in FULL_RUNS:
        rz, rq = _cached(cache, run.loss, run, partial(_finetune, run))
        what = ("positives-only (cosine) fine-tune" if run.loss == "cosine"
                else "InfoNCE (in-batch negatives) fine-tune")  # fmt: skip
        for step in run.steps:
            z, q = rz[f"probe_{step}"], rq[str(step)]
            label, why = label_finetune(q["recall_at_1"], ref, _mean_cosine(z),
                                        onset=run.loss == "cosine")  # fmt: skip
            quality = {**{k: v for k, v in _round(q).items() if "whitened" not in k}, **ref_q}
            why = (f"{what}, step {step}: {why}; Lee-50 r {q['lee_pearson']:.3f} "
                   f"(frozen {fq['lee_pearson']:.3f})")  # fmt: skip
            name = f"minilm-{run.loss}-step{step}"
            kind = POINT_OPTIMUM if run.loss == "cosine" and label == "hurt" else None
            yield _case(name, label, why, z, baseline=fz["probe"], quality=quality,
                        structure=kind)  # fmt: skip
            if run.loss == "cosine" and step == max(run.steps):
                yield _case(f"{name}-nobaseline", label, why, z, quality=quality,
                            structure=kind)  # fmt: skip
                wz, wrec = rz[f"probe_whitened_{step}"], q["whitened_recall_at_1"]
                label, why = label_finetune(wrec, ref, _mean_cosine(wz))
                yield _case(f"{name}-whitened", label,
                            f"{what}, step {step}, whitened: {why} (whitened frozen: "
                            f"{fq['whitened_recall_at_1']:.3f}; no baseline: the whitened "
                            "frozen model keeps fewer dimensions)", wz,
                            quality={"recall_at_1": round(wrec, 4),
                                     "ref_recall_at_1": round(ref, 4)},
                            blind_spot=None if label == "healthy" else (
                                "whitening makes any matrix isotropic: the geometry no "
                                "longer shows the lost quality (check before whitening, or "
                                "against the model before fine-tuning)"))  # fmt: skip
    for sg, kind in ((0, "cbow"), (1, "skipgram")):
        spec = Word2VecSpec(sg=sg)
        vz, wq = _cached(cache, f"word2vec-{kind}", spec, partial(_word2vec, spec))
        rho, p, m = wq["wordsim353"], wq["wordsim353_p"], wq["wordsim353_pairs"]
        learned = rho > 0 and p < 0.01
        yield _case(f"word2vec-lee-{kind}", "healthy" if learned else "ambiguous",
                    f"gensim Word2Vec ({kind}) on the Lee background corpus "
                    f"({wq['tokens']} tokens): WordSim-353 rho {rho:.3f} (p {p:.3f}, {m} "
                    f"pairs in vocabulary), SimLex-999 rho {wq['simlex999']:.3f}: "
                    + ("it learned word similarity" if learned else "no significant word "
                       "similarity learned (too little data to say)"), vz["vectors"],
                    quality={k: v for k, v in _round(wq).items() if k != "seconds"})  # fmt: skip


def cases(fast: bool = False, cache: str | os.PathLike[str] | None = None) -> Iterator[Case]:
    """The text cases; ``fast``: only the fast subset (< 1 minute from an empty cache).

    Args:
        fast: build the fast subset only (also yielded, marked ``fast``, by the full set).
        cache: folder of the cached embeddings (default
            ``benchmarks/calibration/cache/text/``).

    Raises:
        ConfigError: sentence-transformers, the model package, WordNet or gensim missing.
    """
    root = Path(cache) if cache is not None else DEFAULT_CACHE
    yield from _fast_cases(root)
    if not fast:
        yield from _full_cases(root)


# --------------------------------------------------------------------------- table


def _fmt(v: Any, spec: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    return format(v, spec) if isinstance(v, float) else str(v)


_SHORT = {"recall_at_1": "R@1", "lee_pearson": "Lee r", "simlex999": "SimLex",
          "wordsim353": "WordSim", "whitened_recall_at_1": "whitened R@1"}  # fmt: skip


def _downstream(q: dict[str, float]) -> str:
    """Compact downstream numbers: ``R@1 0.270 / 0.332`` (case / reference), ..."""
    out = []
    for k, short in _SHORT.items():
        if k in q:
            ref = q.get(f"ref_{k}")
            out.append(f"{short} {q[k]:.3f}" + (f" / {ref:.3f}" if ref is not None else ""))
    if "wordsim353_pairs" in q:
        out.append(f"({int(q['wordsim353_pairs'])} / {int(q['simlex999_pairs'])} pairs)")
    return ", ".join(out)


def render_table(all_cases: list[Case], seconds: dict[str, float] | None = None) -> str:
    """Markdown table of the cases: label, downstream numbers, metrics of ``z`` (and
    their ratios to the baseline's); metrics from :func:`collapselab.metrics.compute_metrics`,
    never the verdict."""
    from collapselab.metrics import compute_metrics

    head = ["case", "label", "n", "d", "downstream", "eff. rank", "iso. eff. rank", "ratio",
            "dims 99", "RankMe", "rel. var.", "mean cos", "rel. var. / base",
            "eff. rank / base", "RankMe / base"]  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in all_cases:
        m = compute_metrics(c.z)
        ratios = ["-", "-", "-"]
        if c.baseline is not None:
            b = compute_metrics(c.baseline)
            ratios = [_fmt(m.relative_variance / b.relative_variance, ".3f"),
                      _fmt(m.effective_rank / b.effective_rank, ".2f"),
                      _fmt(m.rankme / b.rankme, ".2f")]  # fmt: skip
        down = _downstream(c.quality)
        rows.append("| " + " | ".join([
            c.name.removeprefix(f"{GROUP}/") + (" (fast)" if c.fast else ""), c.label,
            str(m.n), str(m.d), down, _fmt(m.effective_rank, ".1f"),
            _fmt(m.isotropic_effective_rank, ".1f"),
            _fmt(m.effective_rank / m.isotropic_effective_rank, ".3f"), str(m.dims_99),
            _fmt(m.rankme, ".1f"), _fmt(m.relative_variance, ".4f"), _fmt(m.mean_cosine),
            *ratios]) + " |")  # fmt: skip
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m collapselab.experiments.calibration.text [--fast] [--out FILE]``."""
    import argparse

    ap = argparse.ArgumentParser(description="Build the text cases and print their table.")
    ap.add_argument("--fast", action="store_true")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    built = list(cases(fast=args.fast, cache=args.cache))
    table = render_table(built)
    lines = [
        "# Calibration corpus: the text cases",
        "",
        "Built by `python -m collapselab.experiments.calibration.text --out "
        "benchmarks/calibration/text_cases.md` (module docstring: cases and the label rule). "
        "Metrics are `collapselab.metrics.compute_metrics` of each case's `z`, never the "
        "verdict; ratio = effective rank / isotropic effective rank (an isotropic Gaussian "
        "of the same n, d); `/ base`: the same metric of the case over its baseline's. "
        "Downstream: case / frozen reference; R@1 = held-out recall@1 (WordNet gloss -> "
        "example), Lee r = Lee-50 Pearson, SimLex / WordSim = Spearman rho.",
        "",
        table,
        "Labels:",
        "",
    ]
    return publish(lines, built, f"(built or read from cache in {time.perf_counter() - t0:.0f} s)",
                   args.out)  # fmt: skip


def publish(lines: list[str], built: list[Case], tail: str, out: str | None) -> int:
    """A cases page: ``lines``, then each case's label and reason, then ``tail``; printed,
    and written to ``out`` when given."""
    lines = [*lines, *(f"- `{c.name}`: **{c.label}**: {c.why}" for c in built)]
    text = "\n".join(lines) + f"\n\n{tail}\n"
    print(text)
    if out:
        Path(out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
