"""Atomic checkpoints that a resumed run continues from bit for bit.

A checkpoint holds the method (weights, EMA teacher, queue, centre: its ``state_dict``),
the optimizer, the step, the data order of the current epoch, the states of every random
generator and the monitor's accumulators. It is written to a temporary file in the same
directory and renamed (:mod:`collapselab._atomic`), so an interrupted write leaves the previous
checkpoint intact; it is read back with ``torch.load(weights_only=True)`` (no unpickling
of arbitrary objects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from collapselab._atomic import atomic_open
from collapselab.errors import InputError

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``."""
    with atomic_open(path, "wb") as fh:
        torch.save({"format": FORMAT_VERSION, **state}, fh)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (weights-only unpickler).

    Raises:
        InputError: missing, unreadable, or not a collapselab checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no checkpoint to resume from (run without --resume first)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise InputError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise InputError(f"{p}: not a collapselab checkpoint (format {FORMAT_VERSION})")
    return state
