"""The labelled calibration corpus of the verdict (``docs/verdict.md``).

Every case is an embedding matrix whose label was earned *outside* the verdict under
test: from downstream quality (kNN / retrieval recall against a healthy reference) or,
for synthetic matrices, from how the matrix was built; never from
:func:`collapselab.diagnose.measure` nor from a quantity the verdict draws a line on.
The structural kind (complete / dimensional) is a second axis, known from the
construction or the objective, reported beside the score.
``benchmarks/calibration/run.py`` regenerates the corpus from offline data with fixed
seeds, runs the verdict over it, scores it in sample and out of family, and writes the
table; ``tests/experiments/test_calibration.py`` rebuilds a fast subset and scores it.

Groups (one module each, each yields :class:`Case` objects):

- :mod:`.synthetic`: isotropic Gaussians, rank-r plus noise, a common vector plus
  noise, power-law spectra, heavy tails, huge-norm outliers;
- :mod:`.ssl`: self-supervised runs on digits and Fashion-MNIST (healthy methods,
  collapse ablations, onset snapshots; representation and projector outputs) and
  supervised features (neural collapse, ``classes`` set);
- :mod:`.text`: all-MiniLM-L6-v2 frozen, fine-tuned with in-batch negatives or a
  positives-only loss at several steps, whitened; gensim's corpora and WordNet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from collapselab.errors import ConfigError

#: the case's downstream outcome, the axis the verdict is scored on:
#: ``healthy``: quality kept (the verdict must say healthy, no warning);
#: ``hurt``: quality lost, or being lost (the verdict must flag it: a warning, or a
#: dimensional / complete verdict);
#: ``ambiguous``: kept in the corpus, not scored: either reading is defensible (a
#: snapshot of a run that collapses later while its quality is still intact; a model
#: whose quality is not measurable); the table reports how the verdict reads it.
Label = Literal["healthy", "hurt", "ambiguous"]
LABELS: tuple[str, ...] = ("healthy", "hurt", "ambiguous")
#: the structural kind, a second axis reported beside the score (never part of it):
#: known from the construction or the objective (e.g. an attraction-only loss, whose
#: optimum is one point), not from any verdict metric
STRUCTURES: tuple[str, ...] = ("complete", "dimensional", "outliers")


@dataclass(frozen=True)
class Case:
    """One labelled embedding matrix of the corpus.

    Attributes:
        name: unique id, ``group/what`` (e.g. ``"ssl-digits/simclr-repr-300"``).
        group: the family: ``synthetic``, ``ssl-digits``, ``ssl-fashion``,
            ``supervised``, ``text`` (left out together when scoring out of family).
        label: the downstream outcome (see :data:`Label`).
        why: how the label was earned: the downstream numbers against the healthy
            reference, or the construction (one line).
        z: ``(n, d)`` float32 embeddings.
        baseline: ``(n', d)`` reference embeddings the case is compared with (the
            model before fine-tuning, the run's first evaluation), or None.
        classes: number of classes when the features are supervised (neural collapse
            makes rank ``classes - 1`` expected), else None.
        kind: ``representation`` (encoder output), ``projector`` (the loss's input)
            or ``embedding`` (a model's output / synthetic matrix).
        quality: downstream numbers (``knn``, ``linear``, ``recall_at_1``, ...) and
            those of the healthy reference (``ref_knn``, ...), for the table.
        fast: part of the fast subset the test suite rebuilds.
        structure: the structural kind known from the construction or the objective
            (see :data:`STRUCTURES`), or None where nothing outside the verdict says it.
        blind_spot: a known miss of any geometric verdict, with the reason (listed in
            docs/verdict.md; a miss still counts as a miss).
    """

    name: str
    group: str
    label: Label
    why: str
    z: NDArray[np.float32] = field(repr=False)
    baseline: NDArray[np.float32] | None = field(default=None, repr=False)
    classes: int | None = None
    kind: str = "embedding"
    quality: dict[str, float] = field(default_factory=dict)
    fast: bool = False
    structure: str | None = None
    blind_spot: str | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ConfigError(f"{self.name}: label {self.label!r} not in {LABELS}")
        if self.structure is not None and self.structure not in STRUCTURES:
            raise ConfigError(f"{self.name}: structure {self.structure!r} not in {STRUCTURES}")
        if self.z.ndim != 2:
            raise ConfigError(f"{self.name}: z must be (n, d), got {self.z.shape}")
