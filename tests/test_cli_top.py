"""The top-level command: no arguments lists the commands, --version, one-line usage errors."""

from __future__ import annotations

import pytest

import collapselab
from collapselab.cli import main


def test_no_arguments_lists_every_command_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("check", "demo", "compare", "train", "theory", "embed", "whiten", "rank"):
        lines = [ln for ln in out.splitlines() if ln.split()[:1] == [name]]
        assert len(lines) == 1 and len(lines[0].split()) > 2, name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"collapselab {collapselab.__version__}\n"


@pytest.mark.parametrize("argv", [["chek"], ["check", "--bogus"], ["check", "--chunk-rows", "x"]])
def test_usage_errors_are_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "error:" in err


def test_each_command_parses_the_same_with_the_lazy_parser(capsys) -> None:  # type: ignore[no-untyped-def]
    """main() builds only the named command's options; its --help must equal the one of
    the full parser (no option lost by the laziness)."""
    import contextlib

    from collapselab import cli

    full = cli.build_parser()
    sub = next(a for a in full._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in cli.COMMANDS:
        assert cli.main([name, "--help"]) == 0
        lazy = capsys.readouterr().out
        with contextlib.suppress(SystemExit):
            sub.choices[name].print_help()
        assert lazy == capsys.readouterr().out != ""
        assert "--" in lazy.split("options:")[1].replace("--help", "")  # real options listed
