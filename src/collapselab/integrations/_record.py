"""What every adapter logs, from the one typed record (:class:`MonitorState`)."""

from __future__ import annotations

import math
import warnings

import numpy as np
from numpy.typing import NDArray

from collapselab import dist
from collapselab.monitor import MonitorState, OnCollapse


def flat_metrics(state: MonitorState, prefix: str = "collapse/") -> dict[str, float]:
    """``state.metrics`` (``Measurement.scalars()``), finite values only, prefixed.

    Among them ``level`` (``Measurement.level`` = ``state.level``, the one ladder):
    0 healthy, 1 warning, 2 dimensional, 3 complete.
    """
    return {f"{prefix}{k}": float(v) for k, v in state.metrics.items()
            if v is not None and math.isfinite(v)}  # fmt: skip


def spectrum_shares(state: MonitorState) -> NDArray[np.float64]:
    """``(d,)`` eigenvalue shares ``lambda_i / sum(lambda)`` of the window, descending.

    Shares (not raw eigenvalues) make runs of any scale comparable; a collapsing run moves
    its mass into the first few.
    """
    ev = np.clip(np.asarray(state.spectrum, dtype=np.float64), 0.0, None)
    total = float(ev.sum())
    return ev / total if total > 0 else ev


def is_rank_zero() -> bool:
    """True outside torch.distributed and on its global rank 0."""
    return dist.is_main()


def resolve_on_collapse(
    on_collapse: OnCollapse | None, stop_on_collapse: bool | None
) -> OnCollapse | None:
    """Map the callbacks' deprecated ``stop_on_collapse=True`` to ``on_collapse="stop"``."""
    if stop_on_collapse is None:
        return on_collapse
    warnings.warn("stop_on_collapse is deprecated; pass on_collapse='stop'",
                  DeprecationWarning, stacklevel=3)  # fmt: skip
    return "stop" if stop_on_collapse else on_collapse
