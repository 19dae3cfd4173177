"""JSON-ready values: the one cleaner every JSON output goes through.

:func:`jsonable` turns numbers, NumPy scalars and arrays (and torch tensors, where torch
is already imported) into plain Python values, recursively through mappings, lists and
tuples, and by default writes every non-finite float (nan, +-inf) as ``None``: strict
JSON has no NaN. Importing this module never imports torch.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["jsonable", "finite_or_none"]


def finite_or_none(v: Any) -> float | None:
    """``float(v)``, or None where ``v`` is None or not finite."""
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def jsonable(value: Any, *, finite: bool = True) -> Any:
    """``value`` as plain JSON-ready Python values.

    Mappings become dicts with ``str`` keys, lists / tuples / arrays / tensors become lists,
    NumPy and Python booleans, integers and floats become ``bool`` / ``int`` / ``float``;
    any other value (``str``, ``None``, ...) is returned as is.

    Args:
        value: what to convert.
        finite: write non-finite floats as ``None`` (``False`` keeps them as floats,
            for a log that ``json.dumps`` writes with its ``NaN`` extension).
    """
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, finite=finite) for k, v in value.items()}
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        return jsonable(t.double().numpy() if t.is_floating_point() else t.numpy(), finite=finite)
    if isinstance(value, np.ndarray):
        return [jsonable(v, finite=finite) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [jsonable(v, finite=finite) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return finite_or_none(value) if finite else float(value)
    return value
