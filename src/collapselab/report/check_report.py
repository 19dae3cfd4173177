"""The report on a user's own embeddings (``collapselab check FILE... --report DIR``) and
on a ranking of checkpoints (``collapselab rank ... --report DIR``).

One self-contained page (:func:`collapselab.report.html.write_report`: ``report.html``
with the figures embedded, ``report.json`` with every number the page shows, the PNGs),
opening with a card that says what to conclude and what to do, then the evidence.

The report room does not import ``check`` or ``experiments`` at run time
(``[tool.importlinter]``); it names the records it renders
(:class:`collapselab.check.CheckResult`, :class:`collapselab.experiments.rank.Ranking`) in
type-only imports, which the contracts exclude.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collapselab._json import jsonable
from collapselab.diagnose import Evidence, Measurement
from collapselab.metrics import EmbeddingMetrics
from collapselab.report.figures import (
    add_figure,
    cosine_histogram_figure,
    spearman_figure,
    spectrum_figure,
    variance_share_figure,
)
from collapselab.report.html import Report, Section, Summary, Table, write_report

if TYPE_CHECKING:  # the records rendered; type-only, so report imports no room above it
    from collapselab.check import CheckResult
    from collapselab.experiments.rank import RankedRun, Ranking


# --------------------------------------------------------------------------- helpers


def _num(v: float | None, fmt: str = ".3g") -> str:
    """A number for prose; ``n/a`` where there is none (never a meaningless ratio)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return format(v, fmt)


def _ratio_cell(v: float | None, note: str | None = None) -> float | str:
    """A ratio for a table: the raw float, or ``"n/a"`` (with why) where it is undefined."""
    if v is None or not math.isfinite(v):
        return f"n/a ({note})" if note else "n/a"
    return float(v)


def _files_text(files: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def _now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("collapselab")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "unknown"


# --------------------------------------------------------------------------- the card


def card_headline(m: Measurement) -> str:
    """The card's headline: :attr:`Measurement.headline` (the verdict and why), as a
    sentence."""
    h = m.headline.strip()
    h = h[:1].upper() + h[1:]
    return h if h.endswith((".", "!", "?")) else h + "."


def baseline_statement(m: Measurement) -> str | None:
    """Whether the fine-tune damaged the model relative to its baseline, with the ratios
    that say so (None: no baseline)."""
    b = m.baseline
    if b is None:
        return None
    if b.verdict != "healthy":
        word = "damaged (complete collapse relative to it)"
    elif b.finding:
        word = "being damaged (collapse under way)"
    else:
        word = "not damaged"
    return (f"{word}: spread {b.ratio_text('relative_variance', '.2f')} and effective rank "
            f"{b.ratio_text('effective_rank', '.2f')} of the baseline's; top-{b.k} principal "
            f"subspace overlap {_num(b.subspace_overlap, '.2f')} (1: the same directions)")


def _verdict_fact(m: Measurement) -> str:
    """The level, and with a baseline what each side of it says."""
    if m.baseline is None:
        return m.level_name
    b = m.baseline
    alone: str = m.absolute_verdict
    if alone == "healthy" and any(e.warned for e in m.evidence):
        alone = "healthy, a warning line crossed"
    rel = b.verdict if b.verdict != "healthy" else (
        "collapse under way" if b.finding else "healthy")  # fmt: skip
    return f"{m.level_name} (this matrix alone: {alone}; against the baseline: {rel})"


def compose_actions(m: Measurement, files: Sequence[str]) -> list[str]:
    """What to do, in order: from the verdict, the evidence that set it (absolute or
    against the baseline), the warning and the advice."""
    met, b = m.metrics, m.baseline
    out: list[str] = []
    projector = "projector" in m.advice
    if b is not None and (b.verdict != "healthy" or b.finding):
        out.append("Do not ship this checkpoint yet: compare it with the baseline on a held-out "
                   "task (retrieval recall, a linear probe) first.")  # fmt: skip
        out.append("Fine-tune again from the baseline with in-batch negatives (e.g. "
                   "MultipleNegativesRankingLoss), fewer steps or a lower learning rate, and "
                   "check each checkpoint with --baseline.")  # fmt: skip
    if m.absolute_verdict == "complete":
        if projector:
            out.append("If these are projector outputs (the loss's input: DINO's, a "
                       "no-predictor BYOL's), check the encoder output (the representation) "
                       "before acting: a collapsed projector can sit on a working encoder.")
        out.append("Otherwise give the objective a repulsive term: negatives (InfoNCE, SimCLR), "
                   "a variance and covariance term (VICReg) or a redundancy term (Barlow "
                   "Twins); with BYOL or SimSiam restore the predictor and the stop-gradient.")
        out.append("If the rows were equal from the first step the encoder is dead: check the "
                   "learning rate and the inputs. 'collapselab theory' shows which objectives "
                   "collapse and why.")  # fmt: skip
    elif m.absolute_verdict == "dimensional":
        out.append(f"Compare the spectrum below with the isotropic band: {met.dims_99} of "
                   f"{met.d} directions hold 99% of the variance.")  # fmt: skip
        if projector:
            out.append("If these are projector outputs, check the representation (encoder "
                       "output) first: SimSiam, Barlow Twins and VICReg runs that work often "
                       "have steep projector spectra too.")  # fmt: skip
        out.append("Otherwise weaken the augmentations, widen the projector, raise the "
                   "temperature, or add a variance / covariance term.")  # fmt: skip
        if m.classes is None:
            out.append("If these are supervised features of C classes, check again with "
                       "--classes C: rank C - 1 is then expected by design (neural collapse).")
    elif m.under_way and not out:
        out.append(m.advice[:1].upper() + m.advice[1:])
    if m.warning is not None and "outlier rows" in m.warning:
        out.append("Drop or clip the outlier rows that own the spectrum, then check again.")
    if not out:
        first = files[0] if files else "FILE"
        out.append("Nothing to fix: keep this file as the reference for the next fine-tune "
                   f"('collapselab check NEW --baseline {first}').")  # fmt: skip
        out.append("Gate releases on it in CI with '--fail-on warning'.")
    return out


def check_summary(result: CheckResult) -> Summary:
    """The card: verdict, severity, warning, baseline damage, and what to do."""
    m = result.measurement
    met = m.metrics
    headline = card_headline(m)
    facts = [("Verdict", _verdict_fact(m)),
             ("Severity", f"{m.severity:.2f} (0 healthy, 0.5 at a warning line, 1 at a verdict "
                          "line)")]  # fmt: skip
    if m.warning and m.warning not in headline:  # the headline says it already
        facts.append(("Warning", m.warning))
    damage = baseline_statement(m)
    if damage is not None:
        facts.append(("Against the baseline", damage))
    facts.append(("Matrix", f"{met.n} rows x {met.d} columns"))
    facts.append(("Checked", _files_text(result.files)))
    if result.baseline_files:
        facts.append(("Baseline", _files_text(result.baseline_files)))
    return Summary(headline, m.level_name, facts, compose_actions(m, result.files))


# --------------------------------------------------------------------------- evidence

#: one sentence on what each piece of evidence measures
EXPLAIN: dict[str, str] = {
    "relative_variance": "Spread: the centred variance as a share of the mean squared norm; "
                         "near 0 when every row is nearly the same vector (complete collapse).",
    "effective_rank_fraction": "The effective rank as a share of an isotropic Gaussian's of "
                               "the same shape; reported, not a line: low alone is not "
                               "collapse (healthy SSL features sit at 0.03-0.18).",
    "dims_99_fraction": "The share of the available directions that hold 99% of the variance; "
                        "dimensional collapse when it is small (the other directions have "
                        "vanished).",
    "effective_rank": "How many directions the variance effectively uses (exp entropy of the "
                      "eigenvalues); below 1.5 the rows lie along a line.",
    "effective_rank_vs_classes": "The effective rank over C - 1: supervised features of C "
                                 "classes are expected near rank C - 1 (neural collapse).",
    "relative_variance_vs_baseline": "The spread now over the baseline's: how much of the "
                                     "baseline's spread the fine-tune kept (counts as complete "
                                     "collapse only while the spread is in the warning band).",
    "effective_rank_vs_baseline": "The effective rank (over its isotropic reference) now over "
                                  "the baseline's; counts only while the spread does not grow.",
}  # fmt: skip


def evidence_status(e: Evidence) -> str:
    """``crossed`` (sets the verdict), ``warned`` (a warning line), ``gated`` (below its
    line, but the rule does not count it here) or ``no``."""
    if e.crossed:
        return "crossed"
    if e.warned:
        return "warned"
    if math.isfinite(e.value) and e.value < e.threshold:
        return "gated"
    return "no"


def evidence_rows(m: Measurement) -> list[list[Any]]:
    """One row per test: against, evidence, value, verdict line, warning line, status,
    severity, explanation."""
    groups: list[tuple[str, list[Evidence]]] = [("this matrix", m.evidence)]
    if m.baseline is not None:
        groups.append(("the baseline", m.baseline.evidence))
    rows = []
    for against, evs in groups:
        for e in evs:
            explain = EXPLAIN.get(e.name, "")
            line = e.threshold if math.isfinite(e.threshold) else None  # reported, no line
            rows.append([against, e.name, jsonable(float(e.value)), line,
                         e.warn_threshold, evidence_status(e), round(e.severity, 4),
                         f"{explain} Here: {e.meaning}.".strip()])  # fmt: skip
    return rows


# --------------------------------------------------------------------------- metrics

#: what the metrics table says of each metric (README, "What is measured")
METRIC_MEANING: dict[str, str] = {
    "n": "rows",
    "d": "columns",
    "effective_rank": "exp entropy of the centred eigenvalues",
    "rankme": "RankMe (Garrido et al. 2023): uncentred singular values",
    "effective_rank_normalized": "MONAI's score: centred singular values / min(n - 1, d)",
    "isotropic_effective_rank": "an isotropic Gaussian of the same (n, d)",
    "numerical_rank": "centred eigenvalues above rank_rtol x the largest uncentred one",
    "numerical_rank_uncentered": "the same for the uncentred second moment",
    "participation_ratio": "(sum lambda)^2 / sum lambda^2",
    "dims_90": "directions holding 90% of the variance",
    "dims_99": "directions holding 99% of the variance",
    "power_law_alpha": "decay exponent of lambda_k ~ k^-alpha",
    "power_law_r2": "quality of that fit",
    "total_variance": "trace of the centred covariance",
    "mean_sq_norm": "mean squared row norm",
    "relative_variance": "spread: total variance / mean squared norm",
    "std_of_l2_normalized": "SimSiam's indicator: 0 collapsed, 1/sqrt(d) isotropic",
    "mean_cosine": "exact mean cosine over all pairs of rows",
    "max_cosine": "largest cosine over pairs of the row sample",
    "uniformity": "Wang & Isola (t = 2) over the row sample; lower is more uniform",
    "sample_size": "rows sampled for the pairwise statistics",
    "alignment": "Wang & Isola (alpha = 2) of paired views",
}

_ARRAYS = ("eigenvalues", "uncentered_eigenvalues", "per_dim_std")


def metric_rows(m: EmbeddingMetrics, base: EmbeddingMetrics | None) -> list[list[Any]]:
    """Every scalar metric (and the baseline's beside it)."""
    rows = []
    for f in fields(m):
        if f.name in _ARRAYS:
            continue
        v = jsonable(getattr(m, f.name))
        row = [f.name, v]
        if base is not None:
            row.append(jsonable(getattr(base, f.name)))
        rows.append([*row, METRIC_MEANING.get(f.name, "")])
    return rows


def ratio_rows(m: Measurement) -> list[list[Any]]:
    """The baseline comparison side by side: quantity, now, baseline, ratio (``n/a`` where
    undefined), and what the ratio says."""
    b = m.baseline
    assert b is not None
    now, base = m.metrics, b.metrics

    def frac(x: EmbeddingMetrics) -> float | None:
        iso = x.isotropic_effective_rank
        return jsonable(x.effective_rank / iso) if iso > 0 else None

    spec: list[tuple[str, str, Any, Any]] = [
        ("relative_variance", "spread (relative variance)", now.relative_variance,
         base.relative_variance),
        ("effective_rank", "effective rank / isotropic reference", frac(now), frac(base)),
        ("rankme", "RankMe", now.rankme, base.rankme),
        ("dims_99", "directions holding 99%", now.dims_99, base.dims_99),
        ("mean_cosine", "mean random-pair cosine", now.mean_cosine, base.mean_cosine),
    ]  # fmt: skip
    rows: list[list[Any]] = []
    for key, label, a, c in spec:
        ratio, why = b.ratios.get(key), b.ratio_notes.get(key)
        rows.append([label, jsonable(a), jsonable(c), _ratio_cell(ratio, why)])
    return rows


def subspace_rows(m: Measurement) -> list[list[Any]]:
    """The principal-subspace overlap with the baseline and its random reference."""
    b = m.baseline
    assert b is not None
    return [["directions compared (k: the baseline's dims_90, at most 64)", b.k],
            ["overlap ||U_b^T U||_F^2 / k (1: the same directions)",
             jsonable(b.subspace_overlap)],
            ["unrelated random subspaces: k / d", b.k / m.metrics.d]]  # fmt: skip


# --------------------------------------------------------------------------- the report


def _default_title(files: Sequence[str]) -> str:
    return f"collapselab check: {_files_text(files, limit=2)}"


def build_check_report(result: CheckResult, *, title: str | None = None) -> Report:
    """The check report of ``result`` (:func:`collapselab.check.check_files` or
    :func:`collapselab.text.check_texts`): the card, the evidence, the figures, the
    baseline comparison, every metric, the files and the time."""
    m = result.measurement
    met = m.metrics
    b = m.baseline
    base_met = b.metrics if b is not None else None
    report = Report(
        title or _default_title(result.files),
        subtitle=(f"{met.n} rows x {met.d} columns" + (" against a baseline" if b else "")
                  + f", checked in {result.seconds:.3g} s"),  # fmt: skip
    )
    report.summary = check_summary(result)

    ev = Section("evidence", "The evidence against each line")
    ev.paragraphs.append(
        "Each test compares one number with the line that sets a verdict and with the "
        "warning line before it; 'crossed' sets the verdict, 'warned' raises the warning, "
        "'gated' is below its line but not counted in this case (see its explanation). "
        "Severity grades how far a test has gone towards its line (0.5 at the warning "
        "line, 1 at the verdict line). Advice: " + m.advice[:1].upper() + m.advice[1:])
    ev.tables.append(Table("evidence", ["against", "evidence", "value", "verdict line",
                                        "warning line", "status", "severity", "explanation"],
                           evidence_rows(m)))  # fmt: skip
    ev.tables.append(Table("thresholds", ["threshold", "value"],
                           [[k, v] for k, v in asdict(m.thresholds).items()],
                           "The lines used (override with --threshold NAME=VALUE)."))
    ev.data = {"verdict": m.verdict, "absolute_verdict": m.absolute_verdict,
               "severity": m.severity, "warning": m.warning, "advice": m.advice,
               "evidence": [e.to_dict() for e in m.evidence],
               "baseline_evidence": None if b is None else [e.to_dict() for e in b.evidence]}
    report.sections.append(ev)

    spec = Section("spectrum", "Spectrum against the isotropic reference")
    spec.paragraphs.append(
        "Each eigenvalue of the centred covariance as a share of the mean squared norm (they "
        "sum to the spread), largest first, on a log scale. A centred isotropic Gaussian of "
        "the same shape fills the shaded band (Marchenko-Pastur, around 1/d); a collapsing "
        "matrix falls below it after a few directions (dimensional) or everywhere "
        "(complete: the spread is tiny).")
    fig = spectrum_figure(met, base_met)
    add_figure(spec, "spectrum", fig, "Eigen-spectrum (log) with the Marchenko-Pastur band"
               + (" and the baseline's spectrum" if base_met is not None else ""))
    spec.data = {"eigenvalues": met.eigenvalues, "mean_sq_norm": met.mean_sq_norm,
                 "baseline_eigenvalues": None if base_met is None else base_met.eigenvalues,
                 "baseline_mean_sq_norm": None if base_met is None else base_met.mean_sq_norm}
    share_fig, share = variance_share_figure(met, base_met)
    add_figure(spec, "variance_share", share_fig,
               "Share of the variance per direction (top directions) and cumulative share")
    spec.data["variance_share"] = share
    spec.tables.append(Table("directions", ["", "this matrix"] + (["baseline"] if base_met else []),
                             [[k, getattr(met, k)] + ([getattr(base_met, k)] if base_met else [])
                              for k in ("dims_90", "dims_99", "participation_ratio",
                                        "power_law_alpha")],
                             "Directions holding 90% / 99% of the variance, participation "
                             "ratio and power-law decay."))  # fmt: skip
    report.sections.append(spec)

    pairs = Section("pairs", "Cosine of random pairs of rows")
    samples = []
    if m.moments is not None and m.moments.sample_rows.shape[0] >= 2:
        samples.append(("this matrix", m.moments.sample_rows, met.mean_cosine))
        bm = result.baseline_moments
        if bm is not None and base_met is not None and bm.sample_rows.shape[0] >= 2:
            samples.append(("baseline", bm.sample_rows, base_met.mean_cosine))
    if samples:
        pairs.paragraphs.append(
            "All pairs of the uniform row sample kept for pairwise statistics; the dashed "
            "lines mark the exact mean cosine over all pairs. Healthy embeddings spread "
            "around a small mean; a collapsing matrix piles up towards 1.")
        hist_fig, hist = cosine_histogram_figure(samples, met.d)
        add_figure(pairs, "cosines", hist_fig, "Histogram of random-pair cosines"
                   + (" against the baseline's" if len(samples) > 1 else ""))
        pairs.data = hist
    else:
        pairs.paragraphs.append("No row sample was kept with this result (fewer than 2 rows "
                                "sampled), so there is no histogram.")
    report.sections.append(pairs)

    if b is not None:
        base = Section("baseline", "Against the baseline")
        base.paragraphs.append(
            "Now / baseline for each quantity (n/a where a ratio would mean nothing: the "
            "baseline's value is 0, within noise of 0, or undefined). The lines: a spread "
            f"ratio below {m.thresholds.baseline_warn_ratio:g} warns, below "
            f"{m.thresholds.baseline_complete_ratio:g} (with the spread in its warning band) "
            "is complete collapse; an effective-rank ratio below "
            f"{m.thresholds.baseline_rank_ratio:g} warns while the spread does not grow; "
            "RankMe, directions and cosine ratios are context. The model is "
            + (baseline_statement(m) or "") + ".")
        base.tables.append(Table("ratios", ["quantity", "now", "baseline", "now / baseline"],
                                 ratio_rows(m)))  # fmt: skip
        base.tables.append(Table("subspace", ["top principal directions", "value"],
                                 subspace_rows(m), "Do the top directions of variance stay "
                                 "where they were?"))  # fmt: skip
        base.data = b.to_dict()
        drift = getattr(result, "drift", None)
        if isinstance(drift, str):
            base.paragraphs.append(drift[:1].upper() + drift[1:] + ".")
        elif drift is not None:
            base.paragraphs.append(
                "Drift: the distribution " + drift.headline()[len("drift: "):] + ". The "
                "null permutes blocks of consecutive rows between the two sets: exact when "
                "rows are in random order, conservative when their order carries structure "
                "(by time, by topic).")
            base.tables.append(Table("drift", ["", "distance", "p-value"], [
                ["squared Frechet distance", jsonable(drift.frechet), jsonable(drift.p_value)],
                ["mean shift term", jsonable(drift.mean_term), jsonable(drift.p_mean)],
                ["covariance (Bures) term", jsonable(drift.bures_term),
                 jsonable(drift.p_bures)],
                ["over the baseline's total variance", jsonable(drift.relative), ""],
                ["permutations / blocks of rows", drift.permutations,
                 f"{drift.blocks[0]} + {drift.blocks[1]} blocks of {drift.block_rows}"],
            ], "The two-sample test (collapselab.drift)."))  # fmt: skip
            base.data["drift"] = drift.to_dict()
        report.sections.append(base)

    health = getattr(result, "health", None)
    if health is not None:
        hs = Section("health", "Index health")
        problems = health.problems
        hs.paragraphs.append(
            (f"{len(problems)} finding{'s' if len(problems) != 1 else ''} to look at: "
             + "; ".join(problems) + "." if problems else "Nothing to look at: no NaN, "
             "Inf, all-zero or duplicate rows, no outlying norms, no rogue dimension.")
            + " The lines are conventions, not calibrated against outcomes (there is no "
            "labelled corpus of store faults); row numbers count over the files in order.")
        hs.tables.append(Table("health", ["finding"], [[line] for line in health.lines()],
                               "What one pass over the rows found (collapselab.health)."))
        hs.data = health.to_dict()
        report.sections.append(hs)

    mt = Section("metrics", "Every metric")
    mt.paragraphs.append("Every scalar metric of the matrix" + (" and of the baseline" if b else "")
                         + "; report.json holds check --json's whole object under "
                         "sections.metrics.data.check (the spectra included).")
    header = ["metric", "this matrix"] + (["baseline"] if base_met else []) + ["meaning"]
    mt.tables.append(Table("metrics", header, metric_rows(met, base_met)))
    mt.data = {"check": result_dict(result)}
    report.sections.append(mt)

    fs = Section("files", "Files checked and time")
    rows: list[list[Any]] = [["checked", f] for f in result.files]
    rows += [["baseline", f] for f in (result.baseline_files or [])]
    rows += [["read as", note] for note in getattr(result, "notes", ())]
    fs.tables.append(Table("files", ["role", "file"], rows))
    fs.tables.append(Table("run", ["", "value"], [
        ["rows", met.n], ["columns", met.d], ["check time (s)", round(result.seconds, 4)],
        ["rows sampled for pairwise statistics", met.sample_size],
        ["report written", _now_utc()], ["collapselab", _version()]]))  # fmt: skip
    report.sections.append(fs)
    return _text_in_json(report)


def _text_in_json(report: Report) -> Report:
    """Put each section's prose and figure captions in its JSON data too, so every number
    the page shows is in ``report.json``."""
    for s in report.sections:
        s.data["paragraphs"] = list(s.paragraphs)
        s.data["captions"] = {f.name: f.caption for f in s.figures}
    return report


def result_dict(result: CheckResult) -> dict[str, Any]:
    """``check --json``'s object (:meth:`collapselab.check.CheckResult.to_dict`)."""
    return result.to_dict()


def write_check_report(result: CheckResult, out_dir: str | Path, *,
                       title: str | None = None) -> Path:  # fmt: skip
    """Write the check report into ``out_dir`` (``report.html``, ``report.json``, PNGs,
    each atomically); returns ``report.html``'s path."""
    return write_report(build_check_report(result, title=title), out_dir)


# --------------------------------------------------------------------------- rank

TRUST_MEANING: dict[str, str] = {
    "high": "high: the metric's worst 95% lower bound over the validation data sets is >= 0.7",
    "moderate": "moderate: its worst 95% lower bound is >= 0.4",
    "low": "low: its worst 95% lower bound is above 0, but below 0.4",
    "none": "none: on some validation data set its 95% interval reaches 0 or below: "
            "it may not predict accuracy at all",
}  # fmt: skip

TRUST_ACTIONS: dict[str, str] = {
    "high": "Pick the first input; spot-check it with a few labels if the choice matters.",
    "moderate": "Use the order to shortlist; confirm the first few with a small labelled "
                "evaluation (linear probe or kNN) before you pick.",
    "low": "Treat the order as a hint: evaluate the top candidates with labels before you "
           "pick.",
    "none": "Do not pick on this order alone: evaluate the candidates with a few labels "
            "(linear probe or kNN); the metric's correlation with accuracy was not "
            "established.",
}  # fmt: skip


def _direction(runs: Sequence[RankedRun]) -> str:
    for r in runs:
        if math.isfinite(r.value) and r.value != 0 and math.isfinite(r.score):
            return "higher is better" if r.score / r.value > 0 else "lower is better"
    return "higher score is better"


def validation_rows(validation: Mapping[str, Any]) -> tuple[list[list[Any]], list[list[Any]]]:
    """Across-method rows (data set, runs, rho, lo, hi, excludes 0) and within-method rows
    (data set, method, rho, lo, hi)."""
    across, within = [], []
    for data, entry in validation.items():
        s = entry.get("spearman") or {}
        lo, hi = s.get("lo"), s.get("hi")
        excl = None if lo is None or hi is None else bool(lo > 0 or hi < 0)
        across.append([data, entry.get("n"), s.get("value"), lo, hi, excl])
        for method, w in sorted((entry.get("within") or {}).items()):
            within.append([data, method, w.get("value"), w.get("lo"), w.get("hi")])
    return across, within


def build_rank_report(ranking: Ranking, *, title: str | None = None) -> Report:
    """The rank report: the order best first, the metric and why, the trust level, the
    metric's validated Spearman correlation with accuracy (95% interval) per data set, and
    the notes."""
    runs = list(ranking.runs)
    metric = ranking.metric
    report = Report(title or f"collapselab rank: {len(runs)} inputs by {metric}",
                    subtitle=f"best first by {metric} ({_direction(runs)}); trust "
                             f"{ranking.trust}")  # fmt: skip
    first = runs[0] if runs else None
    across, within = validation_rows(ranking.validation)
    if first is not None:
        headline = (f"{first.path} ranks first by {metric} ({_num(first.value, '.4g')}); "
                    f"trust in the order: {ranking.trust}.")  # fmt: skip
    else:
        headline = f"Nothing to rank; trust: {ranking.trust}."
    facts = [("Ranks first", first.path if first else "-"),
             ("Metric", f"{metric} ({_direction(runs)})"),
             ("Why this metric", ranking.why),
             ("Trust", TRUST_MEANING.get(ranking.trust, ranking.trust)),
             ("Inputs ranked", str(len(runs)))]  # fmt: skip
    for data, n, rho, lo, hi, _ in across:
        facts.append((f"Validated on {data}", f"Spearman rho {_num(rho, '+.2f')} "
                      f"[{_num(lo, '+.2f')}, {_num(hi, '+.2f')}] over {n} runs"))
    actions = [TRUST_ACTIONS.get(ranking.trust, TRUST_ACTIONS["none"])]
    if within:
        actions.append("Compare checkpoints of one method where you can: within a method the "
                       "correlation can differ, even in sign (see the within-method table).")
    actions += [f"Note: {n}" for n in ranking.notes]
    report.summary = Summary(headline, f"trust-{ranking.trust}", facts, actions)

    order = Section("order", "The order, best first")
    order.paragraphs.append(f"Score = {metric} oriented so that higher is better "
                            f"({_direction(runs)} for {metric}).")
    order.tables.append(Table("order", ["rank", "input", "kind", metric, "score"],
                              [[i + 1, r.path, r.kind, jsonable(float(r.value)),
                                jsonable(float(r.score))]
                               for i, r in enumerate(runs)]))  # fmt: skip
    order.data = {"metric": metric, "why": ranking.why, "trust": ranking.trust}
    report.sections.append(order)

    val = Section("validation", "How far to trust it")
    val.paragraphs.append(
        f"Why {metric}: {ranking.why}. Trust {TRUST_MEANING.get(ranking.trust, ranking.trust)}."
        f" The correlations come from collapselab's validation sweep "
        f"({ranking.source or 'the shipped table'}): Spearman rho of {metric} (oriented as its "
        "paper claims) with "
        "linear-probe accuracy, with percentile-bootstrap 95% intervals over runs.")
    if across:
        val.tables.append(Table("spearman", ["data set", "runs", "Spearman rho", "95% low",
                                             "95% high", "interval excludes 0"], across))
        if within:
            val.tables.append(Table("spearman_within", ["data set", "method", "Spearman rho",
                                                        "95% low", "95% high"], within,
                                    "Within one method (fewer runs: wider intervals)."))
        add_figure(val, "spearman", spearman_figure(metric, ranking.validation),
                   f"Spearman correlation of {metric} with linear-probe accuracy, 95% intervals")
    else:
        val.paragraphs.append(f"{metric} was not validated: there is no correlation with "
                              "accuracy to show.")
    val.data = {"validation": dict(ranking.validation), "source": ranking.source}
    report.sections.append(val)

    notes = Section("notes", "Notes")
    notes.paragraphs += list(ranking.notes) or ["No notes."]
    notes.tables.append(Table("rank_run", ["", "value"], [
        ["validation table", ranking.source or "-"], ["report written", _now_utc()],
        ["collapselab", _version()]]))  # fmt: skip
    notes.data = {"notes": list(ranking.notes)}
    report.sections.append(notes)
    return _text_in_json(report)


def write_rank_report(ranking: Ranking, out_dir: str | Path, *,
                      title: str | None = None) -> Path:  # fmt: skip
    """Write the rank report into ``out_dir``; returns ``report.html``'s path."""
    return write_report(build_rank_report(ranking, title=title), out_dir)


__all__ = ["CheckResult", "Ranking", "build_check_report", "build_rank_report",
           "write_check_report", "write_rank_report"]  # fmt: skip
