"""Every training method behind one interface (:class:`Method`), in the registry
:data:`METHODS`."""

from collapselab.methods import (  # noqa: F401  (importing registers the methods)
    byol,
    collapse,
    dino,
    moco,
    redundancy,
    simclr,
    simsiam,
)
from collapselab.methods.base import (
    METHODS,
    Method,
    MethodConfig,
    StepOutput,
    build_method,
    get_method_class,
    make_config,
)
from collapselab.methods.teacher import EMATeacher

__all__ = [
    "METHODS",
    "EMATeacher",
    "Method",
    "MethodConfig",
    "StepOutput",
    "build_method",
    "get_method_class",
    "make_config",
]
