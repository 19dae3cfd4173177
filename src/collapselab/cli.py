"""The ``collapselab`` command: parse, call one library function, render.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args) -> int``.
User errors (:class:`collapselab.errors.CollapseLabError`) become one line on stderr and
the error's exit code (2 for input/config errors); no traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from collapselab._term import ProgressBar, fmt, table
from collapselab.diagnose import Thresholds
from collapselab.errors import CollapseLabError, ConfigError

if TYPE_CHECKING:
    from collapselab.check import CheckResult

# --- subcommands -------------------------------------------------------------------------
# (each engineer adds their own _add_X/_cmd_X pair below and one line in build_parser)


def _add_check(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check",
        help="diagnose an embedding matrix (files larger than memory are streamed)",
        description="Diagnose collapse of the embedding matrix in PATH (several files or a "
        "glob of shards are checked as one matrix). Formats: .npy .npz .safetensors .pt "
        ".pth .csv .tsv .parquet; PATH:KEY picks an array. Exit 0 ok, 1 --fail-on "
        "triggered, 2 input error.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="file, PATH:KEY, or a glob")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="save the eigen-spectrum figure")
    p.add_argument(
        "--fail-on",
        choices=["complete", "dimensional"],
        help="exit 1 when the verdict is at least this bad",
    )
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a verdict threshold (complete_relative_variance, "
        "dimensional_rank_fraction, min_effective_rank)",
    )
    p.add_argument("--chunk-rows", type=int, default=None, help="rows per read")
    p.add_argument(
        "--sample-size",
        type=int,
        default=2048,
        help="rows sampled for pairwise statistics (uniformity, max cosine)",
    )
    p.set_defaults(func=_cmd_check)


def _parse_thresholds(items: Sequence[str]) -> Thresholds:
    known = {f.name for f in dataclasses.fields(Thresholds)}
    values: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in known:
            raise ConfigError(
                f"--threshold {item!r}: expected NAME=VALUE with NAME in {sorted(known)}"
            )
        try:
            values[name] = float(value)
        except ValueError:
            raise ConfigError(f"--threshold {item!r}: {value!r} is not a number") from None
    return Thresholds(**values)


def _cmd_check(args: argparse.Namespace) -> int:
    from collapselab.check import check_files
    from collapselab.diagnose import SEVERITY

    thresholds = _parse_thresholds(args.threshold)
    bar = ProgressBar("check")
    try:
        result = check_files(
            args.paths,
            thresholds=thresholds,
            chunk_rows=args.chunk_rows,
            sample_size=args.sample_size,
            progress=bar,
        )
    finally:
        bar.close()
    dg = result.diagnosis
    if args.plot:
        from collapselab.report.plots import plot_spectrum

        plot_spectrum(dg.metrics, args.plot)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(render_check(result, args.plot))
    if args.fail_on and SEVERITY[dg.verdict] >= SEVERITY[args.fail_on]:
        return 1
    return 0


def render_check(result: CheckResult, plot: str | None = None) -> str:
    dg, m = result.diagnosis, result.diagnosis.metrics
    rows = [
        ("rows x dims", f"{m.n} x {m.d}"),
        (
            "effective rank",
            f"{m.effective_rank:.4g}  (isotropic reference {m.isotropic_effective_rank:.4g})",
        ),
        ("RankMe (paper)", m.rankme),
        (
            "numerical rank",
            f"{m.numerical_rank}  (uncentred {m.numerical_rank_uncentered}, "
            f"rtol {m.rank_rtol:.1e})",
        ),
        ("participation ratio", m.participation_ratio),
        ("dims for 90% / 99%", f"{m.dims_90} / {m.dims_99}"),
        ("power-law alpha", f"{m.power_law_alpha:.3g}  (R^2 {m.power_law_r2:.3g})"),
        ("total variance", m.total_variance),
        ("relative variance", m.relative_variance),
        (
            "std of L2-normalised",
            f"{m.std_of_l2_normalized:.4g}  (isotropic {m.d**-0.5:.4g}, collapsed 0)",
        ),
        ("mean / max cosine", f"{m.mean_cosine:.4g} / {m.max_cosine:.4g}"),
        ("uniformity (t=2)", m.uniformity),
        ("mean norm", f"{m.mean_norm:.4g} (min {m.min_norm:.4g}, max {m.max_norm:.4g})"),
    ]
    if m.clipped_eigenvalues:
        rows.append(
            (
                "clipped eigenvalues",
                f"{m.clipped_eigenvalues} (most negative {m.most_negative_eigenvalue:.2e})",
            )
        )
    ev = [
        (e.name, e.value, f"{e.op} {fmt(e.threshold)}", "yes" if e.crossed else "no")
        for e in dg.evidence
    ]
    out = [
        f"{', '.join(result.files)}: verdict {dg.verdict.upper()}",
        "",
        table(rows),
        "",
        table(ev, header=("evidence", "value", "threshold", "crossed")),
        "",
        f"advice: {dg.advice}",
        f"({result.seconds:.2f} s)",
    ]
    if plot:
        out.append(f"spectrum plot: {plot}")
    return "\n".join(out)


def _add_demo(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("demo", help="run the built-in demonstration")
    p.add_argument("--out", default="collapselab-demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from collapselab.experiments.examples import builtin_examples

    rows = []
    for name, z in builtin_examples().items():
        from collapselab.diagnose import diagnose
        from collapselab.metrics import compute_metrics

        dg = diagnose(compute_metrics(z))
        m = dg.metrics
        rows.append(
            (
                name,
                f"{m.n}x{m.d}",
                m.effective_rank,
                m.relative_variance,
                m.std_of_l2_normalized,
                dg.verdict,
            )
        )
    print(
        table(
            rows,
            header=(
                "example",
                "shape",
                "effective rank",
                "relative variance",
                "std of L2-normalised",
                "verdict",
            ),
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collapselab",
        description="Measure, monitor, prevent and explain representation collapse.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_check(sub)
    _add_demo(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CollapseLabError as exc:
        print(f"collapselab {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"collapselab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
