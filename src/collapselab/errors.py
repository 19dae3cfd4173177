"""One exception family for every error a user can act on.

The CLI maps each subclass to a one-line message and an exit code (see ``EXIT_CODES``);
library callers catch :class:`CollapseLabError`.
"""

from __future__ import annotations


class CollapseLabError(Exception):
    """Base class: the message is one line a user can act on."""

    exit_code = 2


class InputError(CollapseLabError, ValueError):
    """A user-supplied file or array is missing, unreadable, or malformed.

    The message names the file (or argument) and the problem, e.g.
    ``"emb.npy: 1-D array of shape (512,); expected (N, d)"``.
    """


class DegenerateInputError(InputError):
    """The input is well-formed but no verdict can be given (e.g. fewer than 2 rows)."""


class ConfigError(CollapseLabError, ValueError):
    """An option or configuration value is invalid."""


class EngineError(CollapseLabError, RuntimeError):
    """A cluster engine (Spark, Ray) could not run the check: Java missing, workers that
    cannot import collapselab, a cluster that cannot be reached. The message says what
    failed and how to fix it, e.g. ``"Spark workers cannot import collapselab (they run
    python3): set PYSPARK_PYTHON to an interpreter that has collapselab"``.
    """


class NonFiniteLossError(CollapseLabError, FloatingPointError):
    """Training produced a NaN or Inf loss; the message says at which step."""

    exit_code = 3


class CollapseDetected(CollapseLabError):
    """Raised by :class:`CollapseMonitor` with ``on_collapse='raise'``."""

    exit_code = 1
