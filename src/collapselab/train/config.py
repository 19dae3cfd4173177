"""The training configuration: one dataclass, overridable from a TOML file and the CLI.

Precedence: dataclass defaults < ``--config FILE.toml`` < command-line flags. The TOML
file holds top-level keys named like the fields (``epochs = 50``) and optional tables
``[method_options]`` (fields of the method's config, e.g. ``temperature = 0.2``) and
``[augment_options]`` (fields of the augmentation, e.g. ``max_rotation = 10.0``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collapselab.errors import ConfigError, InputError

#: epochs of the default run per data set (about 2 minutes on 2 CPU cores for digits)
DEFAULT_EPOCHS: dict[str, int] = {
    "digits": 300,  # 5 steps / epoch at batch 256 -> 1500 steps
    "fashion-mnist": 10,  # 234 steps / epoch -> 2340 steps
    "gaussian-mixture": 100,
    "low-rank": 100,
}


@dataclass
class TrainConfig:
    """Every setting of a training run (``collapselab train``).

    Fields left ``None`` take a default that depends on other fields (documented beside
    each); :meth:`resolved` fills them in.
    """

    method: str = "simclr"  # registry name, collapselab.methods.METHODS
    data: str = "digits"  # registry name, collapselab.data.DATASETS
    data_root: str | None = None  # directory of file-backed data (fashion-mnist IDX files)
    encoder: str = "auto"  # auto (CNN for images, MLP for vectors), cnn or mlp
    epochs: int | None = None  # None: DEFAULT_EPOCHS[data]
    max_steps: int | None = None  # stop after this many steps (schedules still use epochs)
    batch_size: int = 256  # global batch, split evenly over ranks
    optimizer: str = "adamw"  # adamw or sgd (momentum 0.9, nesterov off)
    lr: float | None = None  # peak learning rate; None: the method's default
    weight_decay: float | None = None  # None: the method's default
    warmup_fraction: float = 0.05  # linear warm-up over this share of the steps, then cosine
    min_lr_fraction: float = 0.0  # cosine decays to lr * this
    seed: int = 0  # model init, data order and augmentations
    threads: int = 0  # torch (and BLAS) threads per process; 0: the libraries' defaults
    device: str = "auto"  # auto (cuda when available, else cpu), cpu or cuda
    out: str | None = None  # output directory (metrics.jsonl, checkpoint.pt, summary.json)
    resume: bool = False  # continue from out/checkpoint.pt
    checkpoint_every: int = 500  # steps between checkpoints (and one at the end); 0: end only
    log_every: int = 10  # steps between metrics.jsonl step records
    monitor: bool = True  # run the CollapseMonitor during training
    monitor_every: int = 10  # CollapseMonitor: steps between evaluations
    monitor_window: int = 4  # CollapseMonitor: consecutive batches merged per evaluation
    monitor_patience: int | None = None  # AlarmPolicy: evaluations in a row at warning
    # level or worse before the alarm fires; None: the AlarmPolicy's default
    on_collapse: str | None = None  # what the alarm does: warn, stop (end training, then
    # evaluate), raise (CollapseDetected) or ignore; None: the AlarmPolicy's default
    evaluate: bool = True  # kNN / linear / few-label evaluation at the end
    method_options: dict[str, Any] = field(default_factory=dict)  # method config overrides
    augment_options: dict[str, Any] = field(default_factory=dict)  # augmentation overrides

    def resolved(self) -> TrainConfig:
        """A copy with data-dependent defaults filled in and values checked.

        Raises:
            ConfigError: a value out of range.
        """
        from collapselab.monitor import ACTIONS, AlarmPolicy

        cfg = dataclasses.replace(self)
        if cfg.epochs is None:
            cfg.epochs = DEFAULT_EPOCHS.get(cfg.data, 100)
        policy = AlarmPolicy()  # the alarm defaults of every monitor
        if cfg.monitor_patience is None:
            cfg.monitor_patience = policy.patience
        if cfg.on_collapse is None:
            cfg.on_collapse = str(policy.on_collapse)
        if cfg.on_collapse not in ACTIONS:
            raise ConfigError(f"--on-collapse {cfg.on_collapse!r}: choose "
                              f"{', '.join(ACTIONS[:-1])} or {ACTIONS[-1]}")  # fmt: skip
        positive = {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "log_every": cfg.log_every,
            "monitor_every": cfg.monitor_every,
            "monitor_window": cfg.monitor_window,
            "monitor_patience": cfg.monitor_patience,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if cfg.max_steps is not None and cfg.max_steps < 1:
            raise ConfigError(f"--max-steps must be >= 1, got {cfg.max_steps}")
        for name in ("lr", "weight_decay"):
            value = getattr(cfg, name)
            if value is not None and value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if not 0.0 <= cfg.warmup_fraction < 1.0:
            raise ConfigError(f"--warmup-fraction must be in [0, 1), got {cfg.warmup_fraction}")
        if cfg.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"--optimizer {cfg.optimizer!r}: choose adamw or sgd")
        if cfg.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device {cfg.device!r}: choose auto, cpu or cuda")
        if cfg.checkpoint_every < 0:
            raise ConfigError(f"--checkpoint-every must be >= 0, got {cfg.checkpoint_every}")
        if cfg.resume and cfg.out is None:
            raise ConfigError("--resume needs --out DIR (the run directory to continue)")
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return dataclasses.asdict(self)


def _field_types() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _coerce_field(name: str, value: Any, hint: Any, where: str) -> Any:
    """Check / convert ``value`` for a TrainConfig field of type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is dict or typing.get_origin(hint) is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: {name} must be a table, got {value!r}")
        return dict(value)
    ok = (
        (hint is bool and isinstance(value, bool))
        or (hint is int and isinstance(value, int) and not isinstance(value, bool))
        or (hint is float and isinstance(value, int | float) and not isinstance(value, bool))
        or (hint is str and isinstance(value, str))
    )
    if not ok:
        kind = getattr(hint, "__name__", hint)
        raise ConfigError(f"{where}: {name} must be {kind}, got {value!r}")
    return float(value) if hint is float else value


def _renamed(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``values`` with the deprecated ``stop_on_collapse`` (true: raise CollapseDetected
    at the alarm) turned into ``on_collapse``."""
    out = dict(values)
    if "stop_on_collapse" in out:
        old = out.pop("stop_on_collapse")
        if not isinstance(old, bool):
            raise ConfigError(f"{where}: stop_on_collapse must be bool, got {old!r}")
        if old:
            out.setdefault("on_collapse", "raise")
    return out


def config_from_mapping(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate a mapping of field overrides (TOML keys or CLI values) against TrainConfig.

    The old key ``stop_on_collapse`` is still read, with a DeprecationWarning: true means
    ``on_collapse = "raise"``.

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    if "stop_on_collapse" in values:
        warnings.warn(f"{where}: stop_on_collapse is deprecated; set on_collapse to "
                      "'raise' (or 'stop', 'warn', 'ignore')", DeprecationWarning,
                      stacklevel=2)  # fmt: skip
        values = _renamed(values, where)
    types_ = _field_types()
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types_:
            raise ConfigError(
                f"{where}: unknown setting {key!r}; settings: {', '.join(sorted(types_))}"
            )
        out[key] = _coerce_field(key, value, types_[key], where)
    return out


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read field overrides from a TOML file.

    Raises:
        InputError: the file is missing or not valid TOML.
        ConfigError: an unknown key or a value of the wrong type.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: invalid TOML ({exc})") from None
    return config_from_mapping(data, str(p))


def build_config(
    toml_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    method_options: Mapping[str, Any] | None = None,
    augment_options: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Defaults, then the TOML file, then ``overrides`` (CLI flags that were given).

    ``method_options`` (``-o key=value`` flags) and ``augment_options``
    (``--augment-option``) update the TOML ``[method_options]`` and ``[augment_options]``
    tables key by key rather than replacing them.
    """
    values: dict[str, Any] = {}
    if toml_path is not None:
        values.update(load_toml(toml_path))
    if overrides:
        values.update(config_from_mapping(overrides, "command line"))
    cfg = TrainConfig(**values)
    if method_options:
        cfg.method_options = {**cfg.method_options, **method_options}
    if augment_options:
        cfg.augment_options = {**cfg.augment_options, **augment_options}
    return cfg


def config_json(cfg: TrainConfig) -> str:
    """Canonical JSON of a config (sorted keys), as stored in checkpoints."""
    return json.dumps(cfg.to_dict(), sort_keys=True)


def config_from_json(text: str) -> TrainConfig:
    """The resolved config of :func:`config_json` text, also from checkpoints written
    before ``on_collapse`` replaced ``stop_on_collapse``."""
    return TrainConfig(**_renamed(json.loads(text), "checkpoint")).resolved()


#: the command line's help for the fields whose name alone does not say enough
_HELP = {
    "data_root": "directory of the Fashion-MNIST IDX files "
    "(default /usr/share/datasets/fashion-mnist)",
    "epochs": "passes over the training split (default: 300 on digits, 10 on fashion-mnist)",
    "out": "output directory: metrics.jsonl, checkpoint.pt, summary.json",
    "resume": "continue the run in --out from its checkpoint, bit for bit",
    "lr": "peak learning rate (default: the method's)",
    "weight_decay": "weight decay (default: the method's)",
    "on_collapse": "what the monitor's collapse alarm does: warn (default), stop (end "
    "training, then evaluate), raise (exit 1) or ignore",
}


@dataclass(frozen=True)
class Flag:
    """One :class:`TrainConfig` field as a command-line flag (``--name-with-hyphens``)."""

    name: str
    kind: type
    help: str
    choices: list[str] | None = None


def flags() -> list[Flag]:
    """Every scalar field of :class:`TrainConfig` as a flag, with its type, help and valid
    choices (methods, data sets and alarm actions from their registries)."""
    from collapselab.data.datasets import DATASETS
    from collapselab.methods import METHODS
    from collapselab.monitor import ACTIONS

    choices = {"method": sorted(METHODS), "data": list(DATASETS), "on_collapse": list(ACTIONS)}
    helps = {"method": "simclr (default), or: " + ", ".join(sorted(METHODS)),
             "data": "digits (default), or: " + ", ".join(DATASETS), **_HELP}  # fmt: skip
    out = []
    for f in dataclasses.fields(TrainConfig):
        hint = _field_types()[f.name]
        if f.name in ("method_options", "augment_options"):
            continue
        kind = hint if hint in (bool, int, float, str) else typing.get_args(hint)[0]
        out.append(Flag(f.name, kind, helps.get(f.name, f.name.replace("_", " ")),
                        choices.get(f.name)))  # fmt: skip
    return out


def key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` options (``-o temperature=0.5``): each VALUE read as JSON, or else kept as
    a bare string.

    Raises:
        ConfigError: an item without ``=`` or without a key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out
