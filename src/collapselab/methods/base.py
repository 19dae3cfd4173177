"""The one interface every method implements, and the registry.

A method owns an encoder (backbone), its heads and its loss. One training step::

    out = method(view1, view2)          # StepOutput(loss, terms, embeddings, paired)
    out.loss.backward(); optimizer.step()
    method.after_optimizer_step(step, total_steps)  # EMA teachers, schedules

``embeddings`` are the detached encoder outputs (representations) of the first view,
the rows the :class:`~collapselab.monitor.CollapseMonitor` watches; ``paired``
are the second view's, for alignment. ``embed(x)`` returns the same representation in
evaluation mode, which the evaluation (kNN, linear probe, verdict) reads; ``project(x)``
returns the embeddings the loss acts on (projector output), reported for comparison.

Why the representation and not the projector output: it is what a user keeps and what
downstream accuracy depends on (RankMe, Garrido et al. 2023, measures the rank of the
representation for this reason), and projector outputs are legitimately low-rank in
healthy runs (SimSiam's 512-d output has an effective rank of ~7 on digits while its
representation has ~20; Jing et al. 2022 discuss the projector absorbing collapse).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from collapselab.errors import ConfigError
from collapselab.models import MLPHead

Tensor = torch.Tensor


@dataclass
class StepOutput:
    """Result of one training step.

    Attributes:
        loss: scalar loss with its graph (call ``backward`` on it).
        terms: unweighted loss terms as Python floats (``{"loss": ...}`` at least).
        embeddings: ``(B, d)`` detached representations (encoder outputs) of the first view.
        paired: ``(B, d)`` detached representations of the second view, or None.
    """

    loss: Tensor
    terms: dict[str, float]
    embeddings: Tensor
    paired: Tensor | None = None


@dataclass
class MethodConfig:
    """Fields every method has; subclasses add theirs with the reason beside each.

    ``lr`` and ``weight_decay`` are AdamW settings for these small data sets (the papers'
    LARS / SGD settings are for batch 4096 on ImageNet); the trainer uses them unless the
    run overrides them.
    """

    lr: float = 2e-3  # AdamW peak learning rate after warm-up (batch 256)
    weight_decay: float = 1e-4  # decoupled AdamW decay; small, as for small networks


class Method(nn.Module):
    """Base class: encoder + heads + loss behind ``forward`` / ``after_optimizer_step``.

    Subclasses set ``name`` and ``config_class``, build their heads in ``__init__`` and
    implement ``forward(v1, v2) -> StepOutput`` (``forward`` so that a
    ``DistributedDataParallel`` wrapper sees the computation).

    Args:
        encoder: backbone mapping inputs to ``(B, encoder.out_dim)``.
        config: the method's config dataclass.
    """

    name: ClassVar[str] = "method"
    config_class: ClassVar[type[MethodConfig]] = MethodConfig
    #: True for objectives known to collapse (the article's and the ablations)
    collapse_expected: ClassVar[bool] = False
    #: infimum of the loss when known (used to judge how early a collapse was flagged)
    loss_floor: ClassVar[float | None] = None

    def __init__(self, encoder: nn.Module, config: MethodConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.feature_dim = int(getattr(encoder, "out_dim"))  # noqa: B009

    def forward(self, v1: Tensor, v2: Tensor) -> StepOutput:  # pragma: no cover - abstract
        """Compute the loss of one batch of two views ``(B, ...)`` each."""
        raise NotImplementedError

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after each optimizer step; ``step`` counts completed steps (EMA updates)."""

    @torch.no_grad()
    def embed(self, x: Tensor) -> Tensor:
        """Backbone representation ``(B, feature_dim)`` used by the evaluation."""
        out: Tensor = self.encoder(x)
        return out

    @torch.no_grad()
    def project(self, x: Tensor) -> Tensor:
        """The embeddings the loss acts on (projector output) for inputs ``x``.

        Default: ``self.projector(self.encoder(x))``; methods with another head override.
        """
        projector: nn.Module = getattr(self, "projector")  # noqa: B009
        out: Tensor = projector(self.encoder(x))
        return out

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups: no weight decay on biases and norm parameters
        (1-D tensors), as in SimCLR's / BYOL's LARS setups."""
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for p in self.parameters():
            if p.requires_grad:
                (no_decay if p.ndim <= 1 else decay).append(p)
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]


class ProjectorMethod(Method):
    """A method whose loss acts on ``projector(encoder(view))``: the MLP head of
    ``config.proj_hidden_dim`` and ``config.proj_dim``, with ``config.proj_layers`` layers
    where the config has that field and ``proj_layers`` (the class's) otherwise."""

    proj_layers: ClassVar[int] = 2

    def __init__(self, encoder: nn.Module, config: Any) -> None:
        super().__init__(encoder, config)
        self.cfg = config
        layers = getattr(config, "proj_layers", self.proj_layers)
        self.projector = MLPHead(self.feature_dim, config.proj_hidden_dim, config.proj_dim, layers)

    def encode_views(self, v1: Tensor, v2: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(h1, h2, z1, z2)``: each view's representation ``(B, feature_dim)`` and its
        projection ``(B, proj_dim)``."""
        h1, h2 = self.encoder(v1), self.encoder(v2)
        return h1, h2, self.projector(h1), self.projector(h2)


def split_groups(
    groups: list[dict[str, Any]], params: Iterable[nn.Parameter], **extra: Any
) -> list[dict[str, Any]]:
    """Move ``params`` out of ``groups`` into copies of their groups that carry ``extra``
    keys (``fixed_lr=True``: no schedule; ``lr_scale=s``: ``s`` times the learning rate)."""
    chosen = {id(p) for p in params}
    out: list[dict[str, Any]] = []
    for g in groups:
        out.append({**g, "params": [p for p in g["params"] if id(p) not in chosen]})
        out.append({**g, **extra, "params": [p for p in g["params"] if id(p) in chosen]})
    return [g for g in out if g["params"]]


METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to :data:`METHODS` under ``cls.name``."""
    METHODS[cls.name] = cls
    return cls


def make_config(name: str, overrides: Mapping[str, Any] | None = None) -> MethodConfig:
    """The config of method ``name`` with ``overrides`` applied (values are type-checked).

    Raises:
        ConfigError: unknown method or field, or a value of the wrong type.
    """
    cls = get_method_class(name)
    cfg = cls.config_class()
    fields = {f.name: f for f in dataclasses.fields(cfg)}
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(
                f"method {name!r} has no option {key!r}; options: {', '.join(sorted(fields))}"
            )
        setattr(cfg, key, coerce(f"{name}.{key}", value, type(getattr(cfg, key))))
    return cfg


def coerce(where: str, value: Any, typ: type) -> Any:
    """Convert ``value`` (e.g. a CLI string) to ``typ`` (bool, int, float, str)."""
    if isinstance(value, typ) and not (typ is int and isinstance(value, bool)):
        return value
    try:
        if typ is bool:
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if typ is float and isinstance(value, (int, str)) and not isinstance(value, bool):
            return float(value)
        if typ is int and isinstance(value, str):
            return int(value)
        if typ is str and isinstance(value, str):
            return value
    except ValueError:
        pass
    raise ConfigError(f"{where}: expected {typ.__name__}, got {value!r}")


def get_method_class(name: str) -> type[Method]:
    """The registered class of method ``name``.

    Raises:
        ConfigError: unknown method.
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"--method {name!r}: unknown method; choose one of {', '.join(METHODS)}"
        ) from None


def build_method(
    name: str, encoder: nn.Module, overrides: Mapping[str, Any] | None = None
) -> Method:
    """Instantiate method ``name`` around ``encoder`` with config ``overrides``."""
    cls = get_method_class(name)
    return cls(encoder, make_config(name, overrides))
