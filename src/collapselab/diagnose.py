"""The collapse verdict: ``healthy``, ``dimensional`` or ``complete``, with its evidence.

Order of the tests, and why:

1. **complete** is judged first, on the scale of the variance relative to the norm,
   ``relative_variance = trace(C) / E||z||^2`` (C the centred covariance). When all rows
   are nearly one vector ``c`` this ratio is ``|eps|^2 / |c|^2``, tiny. Any *centred*
   measure would miss it: the leftover noise ``eps_i`` of a collapsed matrix can be
   perfectly isotropic once ``c`` is subtracted (effective rank ~ d).
2. **dimensional**: the centred spectrum lives in a few directions, judged by the
   effective rank against the effective rank an isotropic Gaussian of the same
   ``(n, d)`` would have (Marchenko-Pastur reference,
   :func:`collapselab.metrics.spectral.isotropic_effective_rank`). An effective rank near 1
   alone cannot tell complete from one-dimensional collapse, hence test 1 comes first.
3. otherwise **healthy**.

Default thresholds and their calibration (see ``tests/test_diagnose.py``):

- ``complete_relative_variance = 0.05``: rows lie within ~22% (RMS) of their common
  mean. For unit-norm rows ``relative_variance = 1 - |mean u|^2`` and the mean
  random-pair cosine is ``|mean u|^2``, so the threshold is a random-pair cosine of 0.95
  (users report collapsed sentence models at 0.996; a positives-only fine-tune of
  all-MiniLM-L6-v2 reaches 0.97 with recall@1 down from 0.38 to 0.17). Isotropic Gaussians
  give ~1 for zero mean and ``d s^2 / (d s^2 + |c|^2)`` with a mean offset ``c``; strongly
  anisotropic but healthy text models (random-pair cosine 0.7-0.8) sit at 0.2-0.3; healthy
  L2-normalised SSL embeddings at 0.3-0.9.
- ``dimensional_rank_fraction = 0.05``: effective rank below 5% of the isotropic
  reference. Isotropic data sits at fraction ~1 by construction (0.98-1.02 across
  n/d from 0.5 to 100 in the tests); a rank-r signal plus tiny noise sits near r / d.
- ``min_effective_rank = 1.5``: fewer than ~1.5 effective directions is one-dimensional
  collapse whatever d is (skipped when d = 1).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from collapselab.errors import ConfigError, InputError
from collapselab.metrics.summary import EmbeddingMetrics

Verdict = Literal["healthy", "dimensional", "complete"]

#: verdicts from best to worst (``--fail-on X`` fails at X or worse)
SEVERITY: dict[str, int] = {"healthy": 0, "dimensional": 1, "complete": 2}

ADVICE: dict[str, str] = {
    "healthy": "no collapse: variance is spread over many directions.",
    "dimensional": (
        "the embeddings use only a few directions: check for too strong augmentations, "
        "a too small projector or temperature, missing variance/covariance terms; "
        "compare the spectrum (--plot) with the isotropic reference."
    ),
    "complete": (
        "all rows are nearly the same vector: the objective has no repulsive term "
        "(negatives, variance or redundancy term), or a stop-gradient/predictor is "
        "missing, or the encoder is dead; see 'collapselab theory'."
    ),
}


@dataclass(frozen=True)
class Thresholds:
    """Verdict thresholds (calibration in the module docstring); all overridable."""

    complete_relative_variance: float = 0.05  # trace(C) / E||z||^2 below this -> complete
    dimensional_rank_fraction: float = 0.05  # erank / isotropic erank below this -> dimensional
    min_effective_rank: float = 1.5  # erank below this -> dimensional (one line)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"threshold {name} must be a finite number >= 0, got {value!r}")


@dataclass(frozen=True)
class Evidence:
    """One test of the verdict: ``value op threshold`` and whether it fired."""

    name: str
    value: float
    op: str
    threshold: float
    crossed: bool
    meaning: str


@dataclass(frozen=True)
class Diagnosis:
    """A verdict, the evidence behind it, advice, and the metrics it was read from."""

    verdict: Verdict
    evidence: list[Evidence]
    advice: str
    metrics: EmbeddingMetrics = field(repr=False)
    thresholds: Thresholds = field(default_factory=Thresholds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the metrics' fields at top level plus verdict, evidence, thresholds."""
        out = self.metrics.to_dict()
        out.update(
            verdict=self.verdict,
            advice=self.advice,
            evidence=[
                {
                    k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in asdict(e).items()
                }
                for e in self.evidence
            ],
            thresholds=asdict(self.thresholds),
        )
        return out


def diagnose(metrics: EmbeddingMetrics, thresholds: Thresholds | None = None) -> Diagnosis:
    """Label the collapse of an embedding matrix from its metrics.

    Args:
        metrics: from :func:`collapselab.metrics.summarize` or ``compute_metrics``.
        thresholds: overrides of the defaults.

    Raises:
        InputError: the matrix had NaN/Inf rows (a verdict on the rest would mislead).
    """
    th = thresholds or Thresholds()
    if metrics.nonfinite_rows:
        s = "s" if metrics.nonfinite_rows != 1 else ""
        raise InputError(
            f"{metrics.nonfinite_rows} row{s} contain NaN or Inf "
            f"(first: row {metrics.first_nonfinite}); remove or fix them"
        )
    rv = metrics.relative_variance
    erank = metrics.effective_rank
    ref = metrics.isotropic_effective_rank
    frac = erank / ref if ref > 0 and math.isfinite(erank) else 0.0
    ev = [
        Evidence(
            "relative_variance",
            rv,
            "<",
            th.complete_relative_variance,
            rv < th.complete_relative_variance,
            "centred variance / mean squared norm; 0 when all rows are equal",
        ),
        Evidence(
            "effective_rank_fraction",
            frac,
            "<",
            th.dimensional_rank_fraction,
            frac < th.dimensional_rank_fraction,
            f"effective rank {erank:.3g} / {ref:.3g} of an isotropic Gaussian of the same shape",
        ),
    ]
    if metrics.d > 1:
        ev.append(
            Evidence(
                "effective_rank",
                erank if math.isfinite(erank) else 0.0,
                "<",
                th.min_effective_rank,
                not (erank >= th.min_effective_rank),
                "exp entropy of the centred eigenvalues (directions of variance)",
            )
        )
    verdict: Verdict
    if ev[0].crossed:
        verdict = "complete"
    elif any(e.crossed for e in ev[1:]) and metrics.d > 1:
        verdict = "dimensional"
    else:
        verdict = "healthy"
    return Diagnosis(verdict, ev, ADVICE[verdict], metrics, th)
