"""``collapselab rank``: order checkpoints or embedding files by a label-free metric.

The metric is the one the validation sweep (:mod:`collapselab.experiments.selection`,
``benchmarks/bench_selection.py``) found to predict linear-probe accuracy best, unless the
user picks one; the validation table it reads
(:data:`collapselab.experiments.selection.VALIDATED_NAME`, shipped with collapselab) also
says how far to trust the order (:attr:`Ranking.trust`).

Embedding files are read through :mod:`collapselab.io` and measured without torch; a
``collapselab train`` checkpoint is loaded
(:func:`collapselab.experiments.selection.load_trained`) and its data set's test split
embedded, which also gives the view-based metrics (LiDAR, alignment).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from collapselab.errors import ConfigError, InputError
from collapselab.experiments.selection import (
    VALIDATED_NAME,
    json_ready,
    load_trained,
    measure_method,
    nan_to_low,
)
from collapselab.metrics.label_free import label_free_metrics, metric_spec


@dataclass(frozen=True)
class RankedRun:
    """One input of :func:`rank_runs` and its score (``sign * metric``: higher is better)."""

    path: str
    kind: str  # "checkpoint" or "embeddings"
    value: float
    score: float


@dataclass(frozen=True)
class Ranking:
    """The inputs ordered best first by ``metric``, and how far to trust the order.

    Attributes:
        metric: the metric used.
        why: why this metric (best validated, or chosen, or the best one the inputs allow).
        runs: best first.
        validation: per data set, the across-method Spearman correlation with linear-probe
            accuracy and its 95% interval, and the within-method ones (empty if the metric
            was not validated).
        trust: :func:`trust_level` of the metric's worst lower bound: ``high`` (>= 0.7),
            ``moderate`` (>= 0.4), ``low`` (> 0) or ``none``.
        source: where the validation table was read from.
        notes: caveats for the reader (inputs for which the metric is undefined).
    """

    metric: str
    why: str
    runs: list[RankedRun]
    validation: dict[str, Any]
    trust: str
    source: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (nan becomes None)."""
        return json_ready(dataclasses.asdict(self))


def load_validation(path: str | Path | None = None) -> tuple[dict[str, Any], str]:
    """The validation table (``path``, or the one shipped with collapselab).

    Raises:
        InputError: unreadable or malformed.
    """
    try:
        if path is None:
            ref = resources.files("collapselab.experiments").joinpath(VALIDATED_NAME)
            text, where = ref.read_text(encoding="utf-8"), f"collapselab.experiments/{ref.name}"
        else:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        table = json.loads(text)
    except OSError as exc:
        raise InputError(f"{path or VALIDATED_NAME}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path or VALIDATED_NAME}: not a JSON validation table ({exc})") from None
    if not isinstance(table, dict) or not {"order", "metrics"} <= set(table):
        raise InputError(f"{where}: not a selection validation table (keys order, metrics)")
    return table, where


#: trust lines: the worst 95% lower bound of the metric's across-method Spearman rho
TRUST_HIGH = 0.7
TRUST_MODERATE = 0.4


def trust_level(worst_lo: float | None) -> str:
    """``high`` (lower bound >= :data:`TRUST_HIGH`), ``moderate`` (>=
    :data:`TRUST_MODERATE`), ``low`` (> 0) or ``none`` (0 or below, or unknown: the
    interval does not exclude "no relation")."""
    if worst_lo is None or not math.isfinite(worst_lo) or worst_lo <= 0:
        return "none"
    return "high" if worst_lo >= TRUST_HIGH else "moderate" if worst_lo >= TRUST_MODERATE else "low"


def validation_notes(metric: str, table: dict[str, Any]) -> list[str]:
    """What the validation table says beyond the trust level, for the reader: what the
    correlation's ``n`` counts, no metric validated at all, the regret of the metric's pick
    beside a random pick's, and methods within which its Kendall tau's interval reaches 0.
    """
    notes: list[str] = []
    design = table.get("design") or {}
    if design.get("unit") == "settings":
        notes.append(f"validation: {design.get('settings')} settings x "
                     f"{len(design.get('seeds') or [])} seeds ({design.get('runs')} runs); "
                     "the correlations are over the settings' seed means, 'runs' counts "
                     "settings")  # fmt: skip
    best = [table["metrics"][m]["worst_lo"] for m in table["order"]]
    if all(trust_level(v) == "none" for v in best):
        notes.append("no metric's 95% interval excludes 0 in the validation sweep: this "
                     "order is not to be trusted; evaluate the inputs with labels")  # fmt: skip
    entry = table["metrics"].get(metric) or {}
    for data, e in (entry.get("data") or {}).items():
        reg, rnd = e.get("regret") or {}, e.get("regret_random") or {}
        if reg.get("all") is not None and rnd.get("all") is not None:
            notes.append(f"{data}: picking by {metric} lost {reg['all']:.2f} points of "
                         f"linear-probe accuracy against the labelled best (random pick: "
                         f"{rnd['all']:.2f})")  # fmt: skip
        weak = sorted(m for m, k in (e.get("kendall_within") or {}).items()
                      if k.get("lo") is None or not k["lo"] > 0)  # fmt: skip
        if weak:
            notes.append(f"{data}: within {', '.join(weak)} the Kendall tau of {metric} with "
                         "accuracy has a 95% interval reaching 0: among checkpoints of one "
                         "such method the order may be noise")  # fmt: skip
    return notes


def _is_checkpoint(path: Path) -> bool:
    return path.suffix in (".pt", ".pth") or (path.is_dir() and (path / "checkpoint.pt").is_file())


def rank_inputs(specs: Sequence[str]) -> list[str]:
    """The inputs ``specs`` name, as ``collapselab check`` reads its paths: a glob gives its
    matches (sorted), a run folder (holding ``checkpoint.pt``) is one input, any other folder
    gives the run folders, checkpoints and embedding files directly in it (sorted); a
    ``:KEY`` applies to every embedding file a spec yields.

    Raises:
        InputError: a missing path, a glob that matches nothing, or a folder with no input.
    """
    import glob

    from collapselab.io.api import DIRECTORY_FORMATS, READERS, is_url, parse_spec

    out: list[str] = []
    for spec in specs:
        if is_url(spec):  # a database table: one input
            out.append(spec)
            continue
        path, key = parse_spec(spec)
        text = str(path)
        found = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not found:
            raise InputError(f"{spec}: no files match this pattern")
        mine: list[str] = []  # this spec's inputs: its key applies to them only
        for f in map(Path, found):
            if not f.exists():
                raise InputError(f"{f}: no such file or folder")
            if f.is_dir() and not _is_checkpoint(f) and f.suffix not in DIRECTORY_FORMATS:
                inner = sorted(c for c in f.iterdir() if _is_checkpoint(c)
                               or (c.is_file() and c.suffix.lower() in READERS))  # fmt: skip
                if not inner:
                    raise InputError(f"{f}: a folder with no run folders, checkpoints or "
                                     "embedding files")  # fmt: skip
                mine += [str(c) for c in inner]
            else:
                mine.append(str(f))
        out += [p if key is None or _is_checkpoint(Path(p)) else f"{p}:{key}" for p in mine]
    return out


def rank_runs(
    paths: Sequence[str], metric: str | None = None, validation: str | Path | None = None
) -> Ranking:
    """Order checkpoints or embedding files by a label-free metric, best first.

    Embedding files (``.npy``, ``.npz``, ... anything :mod:`collapselab.io` reads) are
    measured as they are, without torch; a ``collapselab train`` checkpoint
    (``checkpoint.pt`` or its run folder) is loaded and its data set's test split
    embedded, which also gives the view-based metrics (LiDAR, alignment).

    Args:
        paths: files, ``PATH:KEY``, globs and folders (:func:`rank_inputs`) naming at least
            two inputs.
        metric: a name of :data:`METRICS`; default the best-validated one the inputs allow.
        validation: the validation table (default: the one shipped with collapselab).

    Raises:
        ConfigError: fewer than 2 inputs, or ``metric`` unknown or needing views that
            embedding files lack.
        InputError: an unreadable input or validation table.
    """
    paths = rank_inputs(paths)
    if len(paths) < 2:
        raise ConfigError(f"give at least 2 checkpoints or embedding files to rank (got "
                          f"{len(paths)}: {', '.join(paths) or 'none'})")  # fmt: skip
    table, source = load_validation(validation)
    kinds = ["checkpoint" if _is_checkpoint(Path(p)) else "embeddings" for p in paths]
    views = all(k == "checkpoint" for k in kinds)
    notes: list[str] = []
    if metric is not None:
        spec = metric_spec(metric)
        if spec.needs_views and not views:
            raise ConfigError(f"--metric {metric}: needs augmented views; embedding files "
                              "have none (rank checkpoints instead)")  # fmt: skip
        why = "chosen with --metric"
    else:
        allowed = [m for m in table["order"] if views or not metric_spec(m).needs_views]
        if not allowed:
            raise InputError(f"{source}: no validated metric applies to these inputs")
        spec = metric_spec(allowed[0])
        why = "best validated"
        if allowed[0] != table["order"][0]:
            why = f"best validated without views ({table['order'][0]} needs checkpoints)"
    runs = []
    for p, kind in zip(paths, kinds, strict=True):
        value = _measure_path(Path(p), kind, spec.name)
        runs.append(RankedRun(p, kind, value, spec.sign * value))
    runs.sort(key=lambda r: -nan_to_low(r.score))
    if any(not math.isfinite(r.value) for r in runs):
        notes.append(f"{spec.name} is undefined (nan) for some inputs: ranked last")
    entry = table["metrics"].get(spec.name)
    worst = float(entry["worst_lo"]) if entry and entry["worst_lo"] is not None else math.nan
    notes += validation_notes(spec.name, table)
    return Ranking(spec.name, why, runs, entry["data"] if entry else {}, trust_level(worst),
                   source, notes)  # fmt: skip


def _measure_path(path: Path, kind: str, metric: str) -> float:
    if kind == "checkpoint":
        ck = path / "checkpoint.pt" if path.is_dir() else path
        method, data = load_trained(ck)
        return measure_method(method, data)[metric]
    from collapselab.io import load_embeddings

    z = load_embeddings(str(path))
    finite = np.isfinite(z).all(axis=1)  # before any cast: a signalling NaN warns there
    if not finite.all():
        raise InputError(f"{path}: {int((~finite).sum())} rows contain NaN or Inf (first: row "
                         f"{int(np.argmin(finite))})")  # fmt: skip
    return label_free_metrics(np.asarray(z, dtype=np.float64))[metric]


__all__ = [
    "RankedRun",
    "Ranking",
    "load_validation",
    "TRUST_HIGH",
    "TRUST_MODERATE",
    "rank_inputs",
    "rank_runs",
    "trust_level",
    "validation_notes",
]
