"""Fine-tune a real sentence-embedding model two ways and watch one of them collapse.

The experiment of issue 7 (sentence-transformers issue #3469, "Embedding space
collapsing": random pairs scoring 0.996 after positives-only fine-tuning):

- data: WordNet (gloss, example) pairs (:func:`collapselab.text.data.wordnet_pairs`),
  shuffled with ``seed`` and split into held-out pairs (recall@1), a probe set of
  glosses (the monitor's input) and training pairs;
- two runs from the same weights, same batches, same optimizer (AdamW) and steps:

  * ``cosine`` -- positives only: sentence-transformers' ``CosineSimilarityLoss`` with
    every label 1, ``L = mean_i (1 - cos(a_i, b_i))^2``. Nothing pushes unrelated
    sentences apart, so "all rows equal" is a global minimum;
  * ``infonce`` -- in-batch negatives: :func:`collapselab.losses.info_nce` with
    ``tau = 0.05`` (= ``MultipleNegativesRankingLoss``' scale 20), glosses as anchors;

- every ``every`` steps a :class:`~collapselab.text.monitor.ProbeMonitor` embeds the
  probe set and the held-out pairs: effective rank, mean random-pair cosine and verdict
  (the CollapseMonitor, judged against the first probe: a warning when the spread fell
  below half of the step-0 value), recall@1 (query: gloss, document: example, among all
  held-out examples), and the Lee-50 correlation when gensim's test data is installed;
- repair: for the frozen model and the end of each run, centring, removing the top
  1 / 3 / 10 directions and whitening (all dimensions, and the top d/3) are fitted on
  ``repair_corpus`` training texts and scored by held-out recall@1
  (:func:`collapselab.anisotropy.anisotropy`).

Step 0 of either run is the frozen model: the baseline. CPU training runs with
denormals flushed to zero (``torch.set_flush_denormal``): once a run collapses,
gradients underflow into subnormal floats and each step becomes ~10x slower otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from collapselab.anisotropy import anisotropy
from collapselab.diagnose import Thresholds
from collapselab.errors import ConfigError, NonFiniteLossError
from collapselab.losses import info_nce
from collapselab.text.data import (
    LeeCorpus,
    gensim_test_data,
    lee_corpus,
    word_pairs,
    wordnet_pairs,
)
from collapselab.text.evaluate import lee_correlation, word_similarity_spearman
from collapselab.text.model import encode, forward, load_model
from collapselab.text.monitor import ProbeMonitor

LOSSES: tuple[str, ...] = ("cosine", "infonce")
Pair = tuple[str, str]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FinetuneConfig:
    """Settings of :func:`run_finetune_experiment`, each with the reason for its default."""

    steps: int = 60  # optimizer steps per run: the trial saw mean cosine 0.93 by step 35
    batch_size: int = 32  # pairs per step (the trial's); InfoNCE gets 31 negatives each
    lr: float = 2e-5  # AdamW, the usual sentence-transformers fine-tuning rate
    every: int = 10  # probe / evaluate every k steps (step 0 = the frozen model)
    probe_size: int = 512  # probe glosses: effective rank is capped by this, keep >> 30
    heldout: int = 256  # held-out pairs for recall@1 (a random guess scores 1/256)
    temperature: float = 0.05  # InfoNCE tau (MultipleNegativesRankingLoss' scale 20)
    seed: int = 0  # data shuffle and torch seed
    model: str = "all-MiniLM-L6-v2"  # name or local sentence-transformers directory
    losses: tuple[str, ...] = LOSSES
    lee: bool = True  # track the Lee-50 correlation (skipped without gensim's data)
    word_pairs: bool = True  # SimLex-999 / WordSim-353 Spearman at start and end
    encode_batch: int = 64  # texts per forward pass when probing
    thresholds: Thresholds = field(default_factory=Thresholds)  # the monitor's verdicts
    repair_corpus: int = 2048  # texts to fit centring / top-k removal / whitening on (0: skip)

    def __post_init__(self) -> None:
        unknown = [x for x in self.losses if x not in LOSSES]
        if unknown:
            raise ConfigError(f"unknown losses {unknown}; expected a subset of {LOSSES}")
        for name in ("steps", "batch_size", "every", "probe_size", "heldout"):
            if getattr(self, name) < (2 if name in ("probe_size", "heldout", "batch_size")
                                      else 1):  # fmt: skip
                raise ConfigError(f"{name} is too small: {getattr(self, name)}")
        if self.steps % self.every:
            raise ConfigError(f"steps ({self.steps}) must be a multiple of every ({self.every}) "
                              "so that the last step is evaluated")  # fmt: skip


#: a short version for reports: 20 steps at a higher learning rate, smaller probe sets
#: (about 140 CPU-seconds on one thread, 2.5 minutes; benchmarks/results/text_finetune_quick.md)
QUICK_SETTINGS: dict[str, Any] = {
    "steps": 20,
    "every": 5,
    "lr": 5e-5,
    "probe_size": 256,
    "heldout": 128,
    "repair_corpus": 512,
    "word_pairs": False,
}


@dataclass(frozen=True)
class TrackPoint:
    """The model at one evaluation step."""

    step: int
    loss: float | None  #: mean training loss over the steps since the last point
    effective_rank: float
    mean_cosine: float  #: random-pair cosine of the probe set
    recall_at_1: float
    lee_pearson: float | None
    verdict: str
    relative_spread: float  #: probe relative variance / its value at step 0
    alarm: bool  #: a warning (collapse under way) or a collapse verdict
    severity: float = 0.0  #: Measurement.severity of the probe set
    warning: str | None = None


@dataclass(frozen=True)
class RunResult:
    """One fine-tuning run."""

    loss: str
    points: list[TrackPoint]
    first_collapse_step: int | None  #: first dimensional / complete verdict (None: never)
    first_alarm_step: int | None  #: first warning or collapse verdict (None: never)
    simlex_spearman: float | None  #: at the end of the run
    wordsim_spearman: float | None
    seconds: float
    seconds_per_step: float  #: one optimizer step (forward, backward, update)
    seconds_per_probe: float  #: one ProbeMonitor evaluation (probe set + held-out pairs)
    corrections: dict[str, Any] | None  #: AnisotropyReport.to_dict() of the final model

    @property
    def final(self) -> TrackPoint:
        return self.points[-1]


@dataclass(frozen=True)
class Baseline:
    """The frozen model (step 0)."""

    effective_rank: float
    mean_cosine: float
    recall_at_1: float
    lee_pearson: float | None
    simlex_spearman: float | None
    wordsim_spearman: float | None
    verdict: str
    corrections: dict[str, Any] | None  #: AnisotropyReport.to_dict() of the frozen model


@dataclass(frozen=True)
class FinetuneExperiment:
    """Result of :func:`run_finetune_experiment`; ``to_dict()`` is JSON-ready."""

    config: FinetuneConfig
    data: dict[str, Any]
    baseline: Baseline
    runs: dict[str, RunResult]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        cfg = asdict(self.config)
        cfg["losses"] = list(self.config.losses)
        return {"config": cfg, "data": self.data, "baseline": asdict(self.baseline),
                "runs": {k: asdict(v) for k, v in self.runs.items()},
                "seconds": round(self.seconds, 3)}  # fmt: skip


@contextlib.contextmanager
def flush_denormals() -> Iterator[None]:
    """Flush subnormal floats to zero inside the block; restore the previous mode after."""
    before = (torch.tensor([1e-39]) * 1.0).item() == 0.0  # already flushing?
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def pair_loss(name: str, za: torch.Tensor, zb: torch.Tensor, temperature: float) -> torch.Tensor:
    """The training objective of a run, on embeddings ``za``, ``zb`` of shape ``(B, d)``."""
    if name == "cosine":  # CosineSimilarityLoss, label 1 for every pair
        cos = torch.nn.functional.cosine_similarity(za, zb, dim=1)  # (B,)
        return (1.0 - cos).pow(2).mean()
    return info_nce(za, zb, temperature=temperature)


@dataclass
class _Data:
    train: list[Pair]
    heldout: list[Pair]
    probe: list[str]
    repair: list[str]
    lee: LeeCorpus | None
    word_pairs: dict[str, list[tuple[str, str, float]]]
    source: str


def _load_data(cfg: FinetuneConfig, pairs: Sequence[Pair] | None) -> _Data:
    if pairs is None:
        pairs = [(p.gloss, p.example) for p in wordnet_pairs()]
        source = "WordNet 3.0 (gloss, example) pairs"
    else:
        source = "given pairs"
    shuffled = list(pairs)
    random.Random(cfg.seed).shuffle(shuffled)
    need = cfg.heldout + cfg.probe_size + cfg.batch_size
    if len(shuffled) < need:
        raise ConfigError(f"{len(shuffled)} pairs; need at least {need} "
                          "(held-out + probe + one batch)")  # fmt: skip
    heldout = shuffled[: cfg.heldout]
    probe = [g for g, _ in shuffled[cfg.heldout : cfg.heldout + cfg.probe_size]]
    train = shuffled[cfg.heldout + cfg.probe_size :]
    repair = [t for pair in train[: cfg.repair_corpus // 2] for t in pair]
    lee, words = None, {}
    if cfg.lee or cfg.word_pairs:
        try:
            gensim_test_data()
        except ConfigError:
            pass  # gensim absent: those columns stay None
        else:
            lee = lee_corpus() if cfg.lee else None
            if cfg.word_pairs:
                words = {n: word_pairs(n) for n in ("simlex999", "wordsim353")}
    return _Data(train, heldout, probe, repair, lee, words, source)


def _word_scores(model: Any, d: _Data, batch: int) -> dict[str, float | None]:
    out: dict[str, float | None] = {"simlex999": None, "wordsim353": None}
    for name, pairs in d.word_pairs.items():
        out[name] = word_similarity_spearman(lambda w: encode(model, w, batch), pairs)
    return out


def _corrections(model: Any, d: _Data, batch: int) -> dict[str, Any] | None:
    """Centring / top-k removal / whitening fitted on the repair corpus, scored on held-out."""
    if len(d.repair) < 4:
        return None
    z = encode(model, d.repair, batch)  # (R, d)
    q = encode(model, [g for g, _ in d.heldout], batch)
    p = encode(model, [e for _, e in d.heldout], batch)
    # full whitening and Su et al.'s reduced one (they keep 256 of BERT's 768 dimensions)
    dims = (None, z.shape[1] // 3)
    return anisotropy(z, remove=(1, 3, 10), whiten_dims=dims, pairs=(q, p)).to_dict()


def _run(
    name: str, cfg: FinetuneConfig, d: _Data, progress: Progress | None, baseline_words: bool
) -> tuple[RunResult, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    model = load_model(cfg.model)
    start: dict[str, Any] = {}
    if baseline_words:
        start = {**_word_scores(model, d, cfg.encode_batch),
                 "corrections": _corrections(model, d, cfg.encode_batch)}  # fmt: skip
    queries, docs = [g for g, _ in d.heldout], [e for _, e in d.heldout]
    probe = ProbeMonitor(d.probe, cfg.every, on_collapse="ignore", heldout_pairs=(queries, docs),
                         batch_size=cfg.encode_batch, thresholds=cfg.thresholds)  # fmt: skip
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    points: list[TrackPoint] = []
    losses: list[float] = []
    train_seconds = probe_seconds = 0.0
    with flush_denormals():
        for step in range(cfg.steps + 1):
            tp = time.perf_counter()
            record = probe(model, step)
            probe_seconds += time.perf_counter() - tp
            if record is not None:
                m = record.state.metrics
                lee = None
                if d.lee is not None:
                    lee = lee_correlation(encode(model, d.lee.documents, cfg.encode_batch),
                                          d.lee.similarity)  # fmt: skip
                points.append(TrackPoint(
                    step=step,
                    loss=sum(losses) / len(losses) if losses else None,
                    effective_rank=float(m["effective_rank"] or 0.0),
                    mean_cosine=float(m["mean_cosine"] or 0.0),
                    recall_at_1=float(record.recall_at_1 or 0.0),
                    lee_pearson=lee,
                    verdict=record.verdict,
                    relative_spread=record.relative_spread,
                    alarm=record.alarm,
                    severity=record.state.severity,
                    warning=record.state.warning,
                ))  # fmt: skip
                losses = []
                if progress is not None:
                    p = points[-1]
                    progress(f"{name} step {step}: mean cosine {p.mean_cosine:.3f}, "
                             f"effective rank {p.effective_rank:.1f}, recall@1 "
                             f"{p.recall_at_1:.3f}, verdict {p.verdict}")  # fmt: skip
            if step == cfg.steps:
                break
            lo = (step * cfg.batch_size) % max(1, len(d.train) - cfg.batch_size + 1)
            batch = d.train[lo : lo + cfg.batch_size]
            ts = time.perf_counter()
            model.train()
            za = forward(model, [a for a, _ in batch])  # (B, d)
            zb = forward(model, [b for _, b in batch])  # (B, d)
            loss = pair_loss(name, za, zb, cfg.temperature)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{name} run: loss is {loss.item()} at step {step}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            train_seconds += time.perf_counter() - ts
            losses.append(float(loss.detach()))
    end_words = _word_scores(model, d, cfg.encode_batch)
    corrections = _corrections(model, d, cfg.encode_batch)
    result = RunResult(
        loss=name,
        points=points,
        first_collapse_step=next((p.step for p in points if p.verdict != "healthy"), None),
        first_alarm_step=next((p.step for p in points if p.alarm), None),
        simlex_spearman=end_words["simlex999"],
        wordsim_spearman=end_words["wordsim353"],
        seconds=time.perf_counter() - t0,
        seconds_per_step=train_seconds / cfg.steps,
        seconds_per_probe=probe_seconds / max(1, len(points)),
        corrections=corrections,
    )
    return result, start


def run_finetune_experiment(
    config: FinetuneConfig | None = None,
    pairs: Sequence[Pair] | None = None,
    progress: Progress | None = None,
    **overrides: Any,
) -> FinetuneExperiment:
    """Fine-tune the model with each loss of ``config.losses`` and track collapse.

    Args:
        config: settings (default :class:`FinetuneConfig`); keyword ``overrides`` replace
            single fields, e.g. ``run_finetune_experiment(steps=20, every=5)``.
        pairs: (anchor, positive) texts to use instead of WordNet's (gloss, example)
            pairs, e.g. a small fixture.
        progress: called with one line after each evaluation.

    Returns:
        :class:`FinetuneExperiment` with the frozen baseline and one
        :class:`RunResult` per loss.

    Raises:
        ConfigError: unknown settings, too few pairs, missing WordNet / model packages.
    """
    t0 = time.perf_counter()
    cfg = config or FinetuneConfig()
    if overrides:
        known = set(FinetuneConfig.__dataclass_fields__)
        bad = sorted(set(overrides) - known)
        if bad:
            raise ConfigError(f"unknown experiment settings {bad}")
        cfg = dataclasses.replace(cfg, **overrides)
    d = _load_data(cfg, pairs)
    runs: dict[str, RunResult] = {}
    words: dict[str, Any] = {}
    for i, name in enumerate(cfg.losses):
        runs[name], start = _run(name, cfg, d, progress, baseline_words=i == 0)
        words = words or start
    first = runs[cfg.losses[0]].points[0]
    baseline = Baseline(
        effective_rank=first.effective_rank,
        mean_cosine=first.mean_cosine,
        recall_at_1=first.recall_at_1,
        lee_pearson=first.lee_pearson,
        simlex_spearman=words.get("simlex999"),
        wordsim_spearman=words.get("wordsim353"),
        verdict=first.verdict,
        corrections=words.get("corrections"),
    )
    data = {"source": d.source, "train_pairs": len(d.train), "heldout_pairs": len(d.heldout),
            "probe_texts": len(d.probe), "lee": d.lee is not None,
            "word_pairs": sorted(d.word_pairs)}  # fmt: skip
    return FinetuneExperiment(cfg, data, baseline, runs, time.perf_counter() - t0)
