"""Reader for ``.pt`` / ``.pth`` files: a tensor, or a dict of tensors picked by ``PATH:KEY``.

Loaded with ``torch.load(weights_only=True)`` only: a file holding anything but tensors
and plain containers is refused, never unpickled. Files in torch's zip format (the
default since torch 1.6) are memory-mapped (``mmap=True``): opening is cheap and rows are
paged in as they are read, but pages already read stay resident (counted in RSS, though
reclaimable page cache) until the source is dropped. Legacy files are loaded whole. For
bounded memory on very large matrices prefer ``.npy`` or ``.safetensors``.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from collapselab.io._base import ArraySource, EmbeddingSource, check_shape, fail, pick_key


def _detail(message: str) -> str:
    """The informative line of torch's multi-line weights-only refusal."""
    boiler = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.strip() for ln in message.splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(boiler)]
    return useful[0] if useful else lines[0] if lines else "unknown reason"


#: torch's weights-only unpickler warns on any PROTO opcode but protocol 2's, which a
#: damaged byte produces (``Detected pickle protocol 44 in the checkpoint``): the load then
#: either fails (the error says it all) or yields tensors that are checked like any others
_PROTOCOL_WARNING = "Detected pickle protocol"


def _load(path: Path, path_name: str) -> Any:
    """``torch.load`` of ``path``, weights only; its warnings are recorded and shown
    after it returns, but for the pickle-protocol one (see above); when it fails, only
    the one-line error remains (``catch_warnings`` is process-wide while it runs)."""
    import torch

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            obj = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except pickle.UnpicklingError as e:
        raise fail(
            path_name,
            f"torch.load(weights_only=True) refused the file ({_detail(str(e))}): it is "
            "corrupt or holds Python objects besides tensors, and collapselab never "
            "unpickles user data; save a tensor or a dict of tensors, or use .safetensors",
        ) from e
    except Exception as e:  # torch's parsers raise anything (IndexError, KeyError, ...) on junk
        detail = _detail(str(e)) if str(e) else type(e).__name__
        raise fail(path_name, f"not a readable torch file ({detail})") from e
    for w in caught:  # under the caller's own filters again
        if not str(w.message).startswith(_PROTOCOL_WARNING):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return obj


def open_torch(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open a ``.pt``/``.pth`` file holding a tensor or a dict of tensors.

    Args:
        path: The file.
        path_name: Display name of the file.
        key: Name of the tensor in a dict; ``None`` takes the only tensor.

    Returns:
        An :class:`ArraySource` whose chunks come from the (memory-mapped) tensor.
    """
    import torch

    obj = _load(path, path_name)
    if isinstance(obj, torch.Tensor):
        if key is not None:
            raise fail(path_name, f"holds a single tensor, not a dict; drop ':{key}'")
        name, tensor = path_name, obj
    elif isinstance(obj, Mapping):
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        key = pick_key(path_name, list(tensors), key, what="tensor")
        name, tensor = f"{path_name}:{key}", tensors[key]
    else:
        raise fail(
            path_name,
            f"holds a {type(obj).__name__}; expected a tensor or a dict of tensors",
        )
    dtype = str(tensor.dtype).removeprefix("torch.")
    if tensor.layout != torch.strided:
        raise fail(name, f"{tensor.layout} tensor; expected a dense tensor")
    if tensor.is_complex():
        raise fail(name, f"complex dtype {dtype}; expected real numbers")
    check_shape(name, tuple(tensor.shape))
    bf16 = tensor.dtype == torch.bfloat16
    try:
        # bfloat16 has no numpy dtype: hand over its bits as uint16 (decoded per chunk).
        array = tensor.view(torch.int16).numpy().view(np.uint16) if bf16 else tensor.numpy()
    except (TypeError, RuntimeError) as e:
        raise fail(name, f"dtype {dtype} is not supported; expected a float or int dtype") from e
    return ArraySource(name, array, dtype, bf16=bf16)
