"""The ``collapselab`` command: parse, call one library function, render.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_cmd_<name>(args) -> int``.
User errors (:class:`collapselab.errors.CollapseLabError`) become one line on stderr and
the error's exit code (2 for input/config errors); no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from collapselab.errors import CollapseLabError

# --- subcommands -------------------------------------------------------------------------
# (each engineer adds their own _add_X/_cmd_X pair below and one line in build_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collapselab",
        description="Measure, monitor, prevent and explain representation collapse.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    del sub  # registrations go here, one line each
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
