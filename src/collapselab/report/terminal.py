"""The terminal view of each typed record a command returns: :func:`render` picks the view
by the record's type, so the command line only parses, calls and prints.

Tables wrap to the terminal's width (``_term.table``); on a pipe lines are whole. This
module imports the standard library and ``_term`` only: the records are read by their
attributes (``CheckResult``, ``Ranking``, ``WhitenReport``, ``EmbedResult``,
``TrainSummary``, ``ClaimResult`` lists, the demo's ``Summary``), never imported.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from collapselab._term import fmt, table, term_width
from collapselab.errors import ConfigError


def _wrap(text: str, indent: str = "", more: str = "", width: int | None = None) -> str:
    width = width or min(100, term_width())
    return "\n".join(textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=more,
                                   break_on_hyphens=False))  # fmt: skip


def check_text(result: Any, plot: str | None = None) -> str:
    """``collapselab check``: the level and the headline first, then the metrics, the
    ratios to the baseline, the evidence against each line and the advice."""
    dg, m = result.measurement, result.measurement.metrics
    rows = [
        ("rows x dims", f"{m.n} x {m.d}"),
        ("effective rank",
         f"{m.effective_rank:.4g}  (isotropic reference {m.isotropic_effective_rank:.4g})"),
        ("RankMe (paper)", m.rankme),
        ("numerical rank", f"{m.numerical_rank}  (uncentred {m.numerical_rank_uncentered}, "
                           f"rtol {m.rank_rtol:.1e})"),
        ("participation ratio", m.participation_ratio),
        ("dims for 90% / 99%", f"{m.dims_90} / {m.dims_99}"),
        ("power-law alpha", f"{m.power_law_alpha:.3g}  (R^2 {m.power_law_r2:.3g})"),
        ("total variance", m.total_variance),
        ("relative variance", m.relative_variance),
        ("std of L2-normalised",
         f"{m.std_of_l2_normalized:.4g}  (isotropic {m.d**-0.5:.4g}, collapsed 0)"),
        ("mean / max cosine", f"{m.mean_cosine:.4g} / {m.max_cosine:.4g}"),
        ("uniformity (t=2)", m.uniformity),
        ("mean norm", f"{m.mean_norm:.4g} (min {m.min_norm:.4g}, max {m.max_norm:.4g})"),
    ]  # fmt: skip
    if m.clipped_eigenvalues:
        rows.append(("clipped eigenvalues", f"{m.clipped_eigenvalues} (most negative "
                                            f"{m.most_negative_eigenvalue:.2e})"))  # fmt: skip
    evidence = list(dg.evidence) + ([] if dg.baseline is None else dg.baseline.evidence)
    ev = [
        (e.name, e.value, f"{e.op} {fmt(e.threshold)}" if math.isfinite(e.threshold) else "-",
         "-" if e.warn_threshold is None else f"< {fmt(e.warn_threshold)}",
         "CROSSED" if e.crossed else ("warning" if e.warned else "no"))
        for e in evidence
    ]  # fmt: skip
    also = "" if dg.level_name == dg.verdict else f"; verdict {dg.verdict}"
    out = [f"{', '.join(result.files)}: {dg.level_name.upper()} (level {dg.level} of 3, "
           f"severity {dg.severity:.2f}{also})", _wrap(dg.headline)]  # fmt: skip
    out += [_wrap(f"read: {note}", more="  ") for note in getattr(result, "notes", ())]
    out += ["", table(rows)]
    if dg.baseline is not None:
        b = dg.baseline
        names = ", ".join(result.baseline_files or ["baseline"])
        brow = [(k, b.ratio_text(k)) for k in b.ratios]
        brow.append((f"top-{b.k} subspace overlap", f"{b.subspace_overlap:.3g}"))
        brow.append(("relative verdict", b.verdict))
        out += ["", f"against {names} (now / baseline):", table(brow)]
    drift = getattr(result, "drift", None)
    if drift is not None:
        out += ["", _wrap(drift if isinstance(drift, str) else drift.headline(), more="  ")]
    health = getattr(result, "health", None)
    if health is not None:
        out += ["", "index health:"] + [_wrap(line, "  ", "    ") for line in health.lines()]
    out += ["", table(ev, header=("evidence", "value", "verdict line", "warning line",
                                  "crossed")),
            "", f"advice: {dg.advice}", f"({result.seconds:.2f} s)"]  # fmt: skip
    if plot:
        out.append(f"spectrum plot: {plot}")
    return "\n".join(out)


def _short(v: Any, items: int = 6) -> str:
    """A value of a claim's evidence on one line (long lists abridged)."""
    if isinstance(v, list):
        inner = ", ".join(_short(x, items) for x in v[:items])
        more = f", ...] ({len(v)} values)" if len(v) > items else "]"
        return f"[{inner}{more}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x, items)}" for k, x in v.items()) + "}"
    return fmt(v)


def claim_text(r: Any) -> str:
    """``collapselab theory --claim ID``: everything one claim's check found."""

    def para(label: str, text: str) -> list[str]:
        return [f"{label}:", _wrap(text, "  ", "  "), ""]

    out = [f"{r.id}: {r.verdict.upper()}  ({r.section}; {r.seconds:.1f} s)", ""]
    out += para("the article", f'"{r.quote}"') + para("statement tested", r.statement)
    out += para("finding", r.summary) + para("why", r.explanation)
    if r.correction:
        out += para("correction", r.correction)
    out += ["numbers:", table([(k, _short(v)) for k, v in r.evidence.items()])]
    return "\n".join(out)


def theory_text(results: Sequence[Any], detail: bool = False) -> str:
    """``collapselab theory``: one row per claim (``detail``: every claim in full)."""
    if detail:
        return "\n\n".join(claim_text(r) for r in results)
    counts = {v: sum(r.verdict == v for r in results)
              for v in ("holds", "holds-with-correction", "fails")}  # fmt: skip
    return (table([(r.id, r.verdict, r.summary) for r in results],
                  header=("claim", "verdict", "evidence"))
            + f"\n\n{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
            + f" ({sum(r.seconds for r in results):.1f} s); "
            "collapselab theory --claim ID shows one claim's numbers")  # fmt: skip


def ranking_text(r: Any) -> str:
    """``collapselab rank``: the order, the metric, and how far to trust it."""
    rows = [(i + 1, x.path, x.kind, fmt(x.value)) for i, x in enumerate(r.runs)]
    out = [table(rows, header=("#", "run", "kind", r.metric)), "",
           f"metric: {r.metric} ({r.why}); trust: {r.trust}"]  # fmt: skip
    for data, v in r.validation.items():
        s = v.get("spearman")
        if s:
            within = ", ".join(f"{m} {w['value']:+.2f}" for m, w in v.get("within", {}).items()
                               if w.get("value") is not None)  # fmt: skip
            out.append(f"  {data}: Spearman {s['value']:+.2f} [{s['lo']:+.2f}, {s['hi']:+.2f}] "
                       f"with linear-probe accuracy over {v['n']} runs"
                       + (f"; within a method: {within}" if within else ""))  # fmt: skip
    out += [f"note: {note}" for note in r.notes]
    return "\n".join(out)


def whiten_text(r: Any) -> str:
    """``collapselab whiten``: the geometry before and after the transform."""
    b, a = r.before, r.after
    rows = [
        ("rows x dims", f"{b.n} x {b.d}", f"{a.n} x {a.d}"),
        ("mean random-pair cosine", b.mean_cosine, a.mean_cosine),
        *((f"top-{k} variance share", v, a.top_share.get(k)) for k, v in b.top_share.items()),
        ("mean-vector share of E|z|^2", b.mean_share, a.mean_share),
        ("effective rank", b.effective_rank, a.effective_rank),
        ("std of L2-normalised", b.std_of_l2_normalized, a.std_of_l2_normalized),
        ("verdict", b.verdict, a.verdict),
    ]
    if r.recall_before is not None:
        rows.append(("held-out recall@1", r.recall_before, r.recall_after))
    t = r.transform
    return "\n".join([f"{t.method} fitted on {', '.join(r.fitted_on)} ({t.n_fit} rows, d "
                      f"{t.d_in} -> {t.d_out}); evaluated on {r.evaluated}", "",
                      table(rows, header=("", "before", "after")),
                      *(f"wrote {path}" for path in r.written)])  # fmt: skip


def embed_text(r: Any) -> str:
    """``collapselab embed``: what was written, how fast."""
    return (f"{r.path}: {r.n} x {r.d} float32 embeddings by {r.model} ({r.seconds:.1f} s, "
            f"{r.texts_per_second:.1f} texts/s)")  # fmt: skip


#: ``train``'s summary keys, in order, with their labels
_TRAIN_ROWS = (
    ("method", "method"), ("data", "data"), ("steps", "steps"),
    ("knn_accuracy", "kNN accuracy (k=20, cosine)"),
    ("linear_accuracy", "linear-probe accuracy"),
    ("knn_accuracy_5_per_class", "1-NN accuracy, 5 labels/class"),
    ("effective_rank", "effective rank (test representation)"),
    ("verdict", "verdict (test representation)"),
    ("warning", "warning (test representation vs untrained encoder)"),
    ("projection_effective_rank", "effective rank (test projector output)"),
    ("projection_verdict", "verdict (test projector output)"),
    ("first_collapse_step", "monitor: collapse alarm at step"),
    ("seconds", "seconds"),
)  # fmt: skip


def train_text(summary: Any) -> str:
    """``collapselab train``: the evaluation of the frozen representation."""
    d = summary.to_dict()
    rows = [(label, "none" if d[k] is None else d[k]) for k, label in _TRAIN_ROWS if k in d]
    out = (d.get("config") or {}).get("out")
    return table(rows + ([("output", out)] if out else []))


def summary_text(s: Any) -> str:
    """A report's :class:`~collapselab.report.html.Summary` card: the headline, the facts
    and the numbered actions (what ``collapselab demo`` prints at the end)."""
    out = [_wrap(s.headline)]
    out += [_wrap(f"{label}: {value}", "  ", "    ") for label, value in s.facts]
    out += [_wrap(f"{i}. {a}", "  ", "     ") for i, a in enumerate(s.actions, 1)]
    return "\n".join(out)


_VIEWS: dict[str, Callable[..., str]] = {
    "CheckResult": check_text,
    "Ranking": ranking_text,
    "WhitenReport": whiten_text,
    "EmbedResult": embed_text,
    "TrainSummary": train_text,
    "ClaimResult": claim_text,
    "Summary": summary_text,
    "Table": lambda t: table(t.rows, header=t.header),
}


def render(record: Any, **options: Any) -> str:
    """The terminal view of ``record``, chosen by its type (a list of ``ClaimResult``: the
    theory table, or each claim in full with ``detail=True``)."""
    if isinstance(record, list):
        return theory_text(record, **options)
    # by type name, the record's own or a base class's (DemoSummary is a Summary)
    view = next((_VIEWS[c.__name__] for c in type(record).__mro__ if c.__name__ in _VIEWS), None)
    if view is None:
        raise ConfigError(f"no terminal view for {type(record).__name__}")
    return view(record, **options)


def show(record: Any, as_json: bool = False, report: Any = None, **options: Any) -> str:
    """What a command prints for ``record``: its terminal view (:func:`render`) and, when a
    report was written, its path; or, with ``as_json``, one JSON document (a list for a
    list of records; the report's path under ``"report"``)."""
    if not as_json:
        return render(record, **options) + (f"\n\nreport: {report}" if report else "")
    import dataclasses
    import json

    from collapselab._json import jsonable

    def plain(r: Any) -> Any:
        return r.to_dict() if hasattr(r, "to_dict") else dataclasses.asdict(r)

    data: Any = [plain(r) for r in record] if isinstance(record, list) else plain(record)
    if report:
        data["report"] = str(report)
    return json.dumps(jsonable(data), default=str)


__all__ = ["check_text", "claim_text", "render", "show", "summary_text", "theory_text"]
