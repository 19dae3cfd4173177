"""collapselab: measure, monitor, prevent and explain representation collapse."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from collapselab.errors import CollapseLabError, InputError

__version__ = "0.1.0"

#: public names, imported on first use so that `import collapselab` stays light
_LAZY = {
    "CollapseMonitor": "collapselab.monitor",
    "MonitorState": "collapselab.monitor",
    "AlarmPolicy": "collapselab.monitor",
    "Measurement": "collapselab.diagnose",
    "Thresholds": "collapselab.diagnose",
    "measure": "collapselab.diagnose",
    "measure_array": "collapselab.diagnose",
}

__all__ = ["CollapseLabError", "InputError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'collapselab' has no attribute {name!r}")
