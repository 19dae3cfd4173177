"""Training loop, CollapseMonitor, evaluation, checkpoints and torch.distributed.

Public names are imported lazily so that ``from collapselab import CollapseMonitor``
does not pull in the data sets, methods and scikit-learn.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CollapseMonitor": "collapselab.monitor",
    "MonitorState": "collapselab.monitor",
    "TrainConfig": "collapselab.train.config",
    "build_config": "collapselab.train.config",
    "Progress": "collapselab.train.trainer",
    "train": "collapselab.train.trainer",
    "FeatureEvaluation": "collapselab.train.evaluate",
    "evaluate_features": "collapselab.train.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'collapselab.train' has no attribute {name!r}")
