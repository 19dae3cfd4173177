"""The CLI's progress bar: tqdm on a terminal, nothing at all otherwise."""

from __future__ import annotations

import io

from collapselab._term import ProgressBar


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_draws_on_a_terminal_with_counts_and_extra() -> None:
    s = Tty()
    bar = ProgressBar("check", stream=s)
    for done in range(0, 100001, 25000):
        bar(done, 100000, "erank 3.2")
    bar.close()
    out = s.getvalue()
    assert "check" in out and "100k/100k" in out and "erank 3.2" in out
    assert out.endswith("\n")
    bar.reset("next")
    assert bar.label == "next"


def test_bar_is_silent_when_not_a_terminal() -> None:
    s = io.StringIO()
    bar = ProgressBar("check", stream=s)
    bar(5, 10)
    bar.close()
    assert s.getvalue() == ""
