"""The optional C row kernel of collapselab.metrics (everything else is in pyproject.toml).

Built when a C compiler is present; without one the install still succeeds and
``collapselab.metrics.moments`` falls back to its numpy path (same numbers, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "collapselab.metrics._rows",
            sources=["src/collapselab/metrics/_rows.c"],
            extra_compile_args=["-O3", "-fopenmp-simd"],
            optional=True,
        )
    ]
)
