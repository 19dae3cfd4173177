"""collapselab: measure, monitor, prevent and explain representation collapse."""

from __future__ import annotations

from typing import Any

from collapselab.errors import CollapseLabError, InputError

__version__ = "0.1.0"

__all__ = ["CollapseLabError", "InputError", "CollapseMonitor", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that `import collapselab` stays light (the monitor pulls in torch).
    if name == "CollapseMonitor":
        from collapselab.monitor import CollapseMonitor

        return CollapseMonitor
    raise AttributeError(f"module 'collapselab' has no attribute {name!r}")
