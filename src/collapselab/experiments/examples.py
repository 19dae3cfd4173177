"""Built-in example embedding matrices with known verdicts (used by the demo and docs)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def builtin_examples(n: int = 4000, d: int = 128, seed: int = 0) -> dict[str, NDArray[np.float32]]:
    """Four ``(n, d)`` float32 matrices: healthy, dimensional (rank 3), one-dimensional and
    complete collapse (``z_i = c + 1e-4 eps_i``)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(d)
    return {
        "isotropic Gaussian": rng.standard_normal((n, d)).astype(np.float32),
        "rank-3 signal + noise": (
            rng.standard_normal((n, 3)) @ rng.standard_normal((3, d))
            + 1e-3 * rng.standard_normal((n, d))
        ).astype(np.float32),
        "one direction": (rng.standard_normal((n, 1)) * c).astype(np.float32),
        "all rows ~ c": (c + 1e-4 * rng.standard_normal((n, d))).astype(np.float32),
    }
