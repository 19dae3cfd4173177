"""The figures of a method comparison (``collapselab compare``, the demo's section 4).

Four figures, added to a report section: total variance and effective rank over training,
the final eigen-spectrum, the alignment-uniformity plane and the loss against the
effective rank; each with a caption built from the runs' numbers.

The report room may not import ``experiments`` (``[tool.importlinter]``), so the runs are
typed by the protocols :class:`RunRecord` and :class:`MonitorPoint`, which
:class:`collapselab.experiments.compare.RunRecord` and
:class:`collapselab.experiments.compare.MonitorPoint` satisfy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from collapselab.report.html import Report, Section
from collapselab.report.plots import OKABE_ITO, add_report_figure, legend_below, page_figure

if TYPE_CHECKING:  # the records drawn; type-only, so report imports no room above it
    from collapselab.experiments.compare import RunRecord


def _series(rec: RunRecord, key: str) -> tuple[list[int], list[float]]:
    """The steps and finite values of the monitor's ``key`` (a :class:`MonitorPoint`
    attribute) over ``rec``'s history."""
    pts = [(int(h.step), float(v)) for h in rec.history
           if (v := getattr(h, key)) is not None and math.isfinite(v)]  # fmt: skip
    return [p[0] for p in pts], [p[1] for p in pts]


def _last(rec: RunRecord, key: str) -> float | None:
    """The last finite value of ``key`` in the monitor's history (None if none)."""
    _, v = _series(rec, key)
    return v[-1] if v else None


def _first_per_method(records: Sequence[RunRecord]) -> dict[str, RunRecord]:
    first: dict[str, RunRecord] = {}
    for r in records:  # one line per method: its first seed
        first.setdefault(r.method, r)
    return first


def align_uniform_caption(records: Sequence[RunRecord]) -> str:
    """How to read the alignment-uniformity plane, with this run's numbers: why a
    collapsing run can sit at a *lower* (more uniform-looking) uniformity than a healthy one."""
    first = _first_per_method(records)
    text = (
        "Trajectories in Wang & Isola's alignment-uniformity plane (lower is better on both "
        "axes; dot = end of training), for the representation the monitor watches (encoder "
        "output, not the projector output the loss acts on). Complete collapse sits at "
        "uniformity 0 with alignment 0."
    )
    healthy = [r for r in first.values() if r.verdict == "healthy"]
    ref = healthy[0] if healthy else None
    u_ref = None if ref is None else _last(ref, "uniformity")
    if ref is None or u_ref is None:
        return text
    odd = [r for r in first.values() if r.verdict in ("dimensional", "complete")
           and (u := _last(r, "uniformity")) is not None and u < u_ref]  # fmt: skip
    if not odd:
        return text

    def desc(r: RunRecord) -> str:
        return (f"{r.method}: uniformity {_last(r, 'uniformity'):.3g}, mean cosine "
                f"{_last(r, 'mean_cosine'):.3g}, spread trace(C)/E||z||^2 "
                f"{_last(r, 'relative_variance'):.3g}, effective rank "
                f"{_last(r, 'effective_rank'):.3g}")  # fmt: skip

    names = " and ".join(r.method for r in odd)
    verb = "looks" if len(odd) == 1 else "look"
    text += (
        f" Why {names} ({'/'.join(sorted({str(r.verdict) for r in odd}))} "
        f"collapse) {verb} MORE uniform than {ref.method} here: uniformity, "
        "log E exp(-2||u - v||^2), is computed on the L2-normalised, uncentred rows, so it "
        "sees only the angles between rows, not in how many directions they spread. A "
        "representation whose spread around its mean grows along one or two directions "
        "puts its rows further apart in angle (a lower mean cosine) while its effective "
        "rank collapses. In the monitor's last window: "
        + "; ".join(desc(r) for r in [*odd, ref])
        + ". Read the plane together with the effective rank, never alone."
    )
    return text


def variance_caption(first: dict[str, RunRecord]) -> str:
    """The caption of the variance / effective-rank figure (``first``: one run per
    method): names the collapsing runs whose total variance ends above a healthy one's."""
    text = (
        "The article's 'Variance Plot' for every method: total variance (left, log) and "
        "effective rank (right) of the representation in the monitor's window, per step. "
        "The effective rank separates healthy from collapsing runs; total variance alone "
        "need not: a run can collapse onto a few directions while its variance grows "
        "along them."
    )
    end = {m: (r.verdict, _last(r, "total_variance"), _last(r, "effective_rank"))
           for m, r in first.items()}  # fmt: skip
    healthy = [(m, tv) for m, (v, tv, _) in end.items() if v == "healthy" and tv is not None]
    if not healthy:
        return text
    ref, tv_ref = max(healthy, key=lambda x: x[1])
    louder = [(m, tv, er) for m, (v, tv, er) in end.items()
              if v in ("dimensional", "complete") and tv is not None and tv > tv_ref]  # fmt: skip
    if louder:
        text += " Here " + "; ".join(
            f"{m} ends with total variance {tv:.3g} but effective rank {er:.3g}"
            for m, tv, er in louder
        ) + (f", while {ref} (healthy) ends with total variance {tv_ref:.3g} and effective "
             f"rank {end[ref][2]:.3g}.")
    return text


def compare_figures(records: Sequence[RunRecord], report: Report, section: Section) -> None:
    """The four comparison figures, added to ``section`` (titles and axis labels recorded
    in ``section.data["figures"]``); one line per method, its first seed."""
    first = _first_per_method(records)
    colour = {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(first)}
    styles = ["-", "--", "-.", ":"]
    seeds = "" if len(records) == len(first) else " (first seed of each)"

    def finish(title: str, name: str, caption: str, ncols: int = 5, which: str = "major") -> None:
        """Title, grid and legend of the current one-axis figure, then into the report."""
        ax.set_title(title)
        ax.grid(True, which=which, alpha=0.3)
        legend_below(fig, ax, ncols=ncols)
        add_report_figure(report, section, name, fig, caption)

    fig = page_figure(height=4.6)
    ax1, ax2 = fig.subplots(1, 2)
    for i, (m, r) in enumerate(first.items()):
        ls = styles[i // len(OKABE_ITO) % len(styles)]
        s, v = _series(r, "total_variance")
        ax1.semilogy(s, v, ls, color=colour[m], label=m)
        s, v = _series(r, "effective_rank")
        ax2.plot(s, v, ls, color=colour[m], label=m)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("total variance trace(C) (log)")
    ax1.set_title("Total variance (the article's 'Variance Plot')")
    ax2.set_xlabel("training step")
    ax2.set_ylabel("effective rank (directions)")
    ax2.set_title("Effective rank: separates healthy from collapsing")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"Variance and effective rank of the representation over training{seeds}")
    legend_below(fig, ax1, ncols=4)
    add_report_figure(report, section, "compare-variance-rank", fig,
                      variance_caption(first))  # fmt: skip

    fig = page_figure(height=4.6)
    ax = fig.subplots()
    for i, (m, r) in enumerate(first.items()):
        lam = np.asarray(r.spectrum)
        lam = lam[lam > 0]
        if lam.size:
            ax.semilogy(np.arange(1, lam.size + 1), lam / lam.sum(), color=colour[m],
                        ls=styles[i // len(OKABE_ITO) % len(styles)], label=m)  # fmt: skip
    d = max((len(r.spectrum) for r in first.values()), default=1)
    ax.axhline(1 / max(d, 1), color="0.3", lw=1, ls="--", label="isotropic (1/d)")
    ax.set_xlabel("eigenvalue rank k")
    ax.set_ylabel("share of variance in direction k (log)")
    finish(f"Final eigen-spectrum of the representation per method{seeds}", "compare-spectrum",
           "The article's 'Eigenvalue Plot' done right: centred covariance eigenvalues at the "
           "end of training, normalised to shares, on a log scale against the isotropic "
           "reference 1/d.", which="both")  # fmt: skip

    fig = page_figure(height=5.0)
    ax = fig.subplots()
    for m, r in first.items():
        pts = [(h.uniformity, h.alignment) for h in r.history]
        pts = [(u, a) for u, a in pts if u is not None and a is not None]
        if pts:
            u, a = zip(*pts, strict=True)
            er = r.effective_rank  # the table's (held-out representation)
            name = f"{m}: {r.verdict}" + (
                f", effective rank {er:.3g}" if isinstance(er, float) else "")
            ax.plot(u, a, "-", color=colour[m], alpha=0.7, label=name)
            ax.plot(u[-1], a[-1], "o", color=colour[m], ms=8)
    ax.set_xlabel("uniformity  log E exp(-2||u - v||^2)  (lower: rows further apart in angle)")
    ax.set_ylabel("alignment  E||u - u'||^2\n(lower: the two views agree)")
    finish(f"Alignment-uniformity plane of the representation (dot = end){seeds}",
           "compare-align-uniform", align_uniform_caption(records), ncols=2)  # fmt: skip

    fig = page_figure(height=4.6)
    ax = fig.subplots()
    for m, r in first.items():
        loss = dict(r.losses)
        pts = [(loss[h.step + 1], h.effective_rank) for h in r.history
               if h.step + 1 in loss and h.effective_rank is not None]  # fmt: skip
        if pts:
            lv, ranks = zip(*pts, strict=True)
            ax.plot(ranks, lv, ".-", color=colour[m], ms=5, label=m)
            ax.plot(ranks[-1], lv[-1], "o", color=colour[m])
    ax.set_xlabel("effective rank of the representation")
    ax.set_ylabel("training loss")
    finish(f"Loss vs effective rank (dot = end){seeds}", "compare-loss-rank",
           "Where the loss keeps falling while the space collapses: each line is a run, read "
           "in time from its start (dot = end of training). Losses of different methods are "
           "on different scales; compare the direction of each line.")  # fmt: skip


__all__ = [
    "align_uniform_caption",
    "compare_figures",
    "variance_caption",
]
