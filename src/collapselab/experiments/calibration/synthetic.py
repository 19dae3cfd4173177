"""Synthetic cases: matrices whose structure is known by construction.

A synthetic matrix has no downstream task, so its label is its construction, and only
where the construction itself says so; where it does not (how much noise around a
common vector is "collapse"?) the case is ``ambiguous``: kept, reported, not scored. No
line below is placed on a quantity the verdict measures.

- isotropic Gaussians (any ``n / d``) and heavy-tailed (Student-t, 3 degrees of freedom)
  isotropic rows: ``healthy``;
- rank-``r`` signal plus noise 1e-3 as large: ``hurt`` (structure ``dimensional``) when
  ``r <= d / 8`` (seven of eight directions carry nothing but the noise),
  ``healthy`` when ``r >= d / 4``;
- a common vector ``c`` plus noise of RMS ``s |c|``: ``hurt`` (``complete``) when
  ``s <= 0.01`` (every row within 1% of one vector), ``healthy`` when ``s >= 1`` (the
  noise as large as the vector), ``ambiguous`` between (0.1 to 0.5: no construction says
  where collapse begins);
- power-law spectra ``lam_k = k^-alpha`` in 64 dimensions: ``healthy`` for
  ``alpha <= 1``; ``ambiguous`` for ``alpha = 2, 3`` (no direction is removed; how steep
  is too steep is not given by the construction);
- isotropic rows plus a handful of rows 1000 times longer: ``hurt`` (structure
  ``outliers``): the bulk is healthy but five rows own the spectrum, which the user must
  be told.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from collapselab.experiments.calibration import Case, Label

GROUP = "synthetic"


def _case(name: str, label: Label, why: str, z: np.ndarray, structure: str | None = None) -> Case:
    return Case(f"{GROUP}/{name}", GROUP, label, why, z.astype(np.float32), fast=True,
                structure=structure)  # fmt: skip


def cases(fast: bool = False) -> Iterator[Case]:
    """Every synthetic case (all are cheap; ``fast`` keeps them all)."""
    rng = np.random.default_rng(0)
    for d in (64, 256):
        for ratio in (0.5, 1, 2, 10, 100):
            n = int(ratio * d)
            if n * d > 4_000_000:
                continue
            yield _case(f"isotropic-d{d}-n{n}", "healthy", f"isotropic Gaussian, n/d = {ratio}",
                        rng.standard_normal((n, d)))  # fmt: skip
    n, d = 4096, 64
    t = rng.standard_t(3, size=(n, d))
    yield _case("student-t3", "healthy", "isotropic Student-t rows (3 dof): heavy tails", t)
    for d in (64, 256):
        n = 4096
        ranks = sorted({max(1, round(f * d)) for f in (0.01, 0.02, 0.05, 0.1, 0.25, 0.5)})
        for r in ranks:
            if d / 8 < r < d / 4:
                continue
            basis = np.linalg.qr(rng.standard_normal((d, r)))[0]  # (d, r) orthonormal
            z = rng.standard_normal((n, r)) @ basis.T + 1e-3 * rng.standard_normal((n, d))
            hurt = r <= d / 8
            yield _case(f"rank{r}-d{d}", "hurt" if hurt else "healthy",
                        f"rank-{r} signal in {d} dims plus 1e-3 noise (r/d = {r / d:.3f})", z,
                        "dimensional" if hurt else None)  # fmt: skip
    n, d = 4096, 64
    c = rng.standard_normal(d)
    c /= np.linalg.norm(c)
    for s in (1e-4, 1e-3, 1e-2, 0.1, 0.2, 0.3, 0.5, 1.0):
        z = c + s * rng.standard_normal((n, d)) / np.sqrt(d)  # row noise RMS s |c|
        label: Label = "hurt" if s <= 0.01 else ("healthy" if s >= 1 else "ambiguous")
        cos = 1 / (1 + s * s)
        yield _case(f"common-vector-s{s:g}", label,
                    f"|c| = 1 plus noise of RMS {s:g}: random-pair cosine {cos:.3f}", z,
                    "complete" if label == "hurt" else None)  # fmt: skip
    for alpha in (0.5, 1.0, 2.0, 3.0):
        lam = np.arange(1, d + 1, dtype=np.float64) ** -alpha
        basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
        z = (rng.standard_normal((n, d)) * np.sqrt(lam)) @ basis.T
        label = "healthy" if alpha <= 1 else "ambiguous"
        top = lam[:8].sum() / lam.sum()
        yield _case(f"power-law-a{alpha:g}", label,
                    f"eigenvalues k^-{alpha:g}: top 8 of {d} hold {top:.0%}", z)
    z = rng.standard_normal((n, d))
    z[rng.choice(n, 5, replace=False)] *= 1000.0
    yield _case("outliers-5", "hurt",
                "isotropic bulk plus 5 rows 1000x longer, which own 99.6% of the variance", z,
                "outliers")  # fmt: skip
