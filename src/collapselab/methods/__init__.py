"""Every training method behind one interface (:class:`Method`), in the registry
:data:`METHODS`."""

from collapselab.methods import collapse, simclr  # noqa: F401  (registration)
from collapselab.methods.base import (
    METHODS,
    Method,
    MethodConfig,
    StepOutput,
    build_method,
    get_method_class,
    make_config,
)

__all__ = [
    "METHODS",
    "Method",
    "MethodConfig",
    "StepOutput",
    "build_method",
    "get_method_class",
    "make_config",
]
