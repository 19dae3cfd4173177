"""Synthetic cases: matrices whose structure is known by construction.

Labels come from the construction, with the line drawn where the structure, not a
metric, says so:

- isotropic Gaussians (any ``n / d``), heavy-tailed (Student-t, 3 degrees of freedom)
  isotropic rows, a common vector plus noise as wide as the vector: ``healthy``;
- rank-``r`` signal plus noise 1e-3 as large: ``dimensional`` when ``r <= d / 8`` (seven
  of eight directions carry no signal), ``healthy`` when ``r >= d / 4``;
- a common vector ``c`` plus noise of RMS ``s |c|``: ``complete`` when ``s <= 0.2``
  (every row within 20% of one vector: random-pair cosine >= 0.96 for the unit rows),
  ``warning`` at ``s = 0.3`` (random-pair cosine 0.92: on the way), ``healthy`` at
  ``s >= 0.5`` (random-pair cosine <= 0.8, the anisotropy of healthy text models);
- power-law spectra ``lam_k = k^-alpha`` in 64 dimensions: ``healthy`` for
  ``alpha <= 2`` (``alpha = 2``: the top direction holds 61% of the variance, yet 99%
  needs 31 of the 64 directions: steep like healthy SSL representations, whose effective
  rank is 0.03-0.18 of the reference, but no direction has vanished); ``dimensional`` at
  ``alpha = 3`` (99% in 6 directions);
- isotropic rows plus a handful of rows 1000 times longer: ``warning``: the bulk is
  healthy but the outliers own the spectrum, which the user must be told.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from collapselab.experiments.calibration import Case

GROUP = "synthetic"


def _case(name: str, label: str, why: str, z: np.ndarray, fast: bool = True) -> Case:
    return Case(f"{GROUP}/{name}", GROUP, label, why, z.astype(np.float32), fast=fast)  # type: ignore[arg-type]


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
            label = "dimensional" if r <= d / 8 else "healthy"
            yield _case(f"rank{r}-d{d}", label,
                        f"rank-{r} signal in {d} dims plus 1e-3 noise (r/d = {r / d:.3f})", z)
    n, d = 4096, 64
    c = rng.standard_normal(d)
    c /= np.linalg.norm(c)
    for s in (1e-4, 1e-3, 1e-2, 0.1, 0.2, 0.3, 0.5, 1.0):
        z = c + s * rng.standard_normal((n, d)) / np.sqrt(d)  # row noise RMS s |c|
        label = "complete" if s <= 0.2 else ("warning" if s < 0.5 else "healthy")
        cos = 1 / (1 + s * s)
        yield _case(f"common-vector-s{s:g}", label,
                    f"|c| = 1 plus noise of RMS {s:g}: random-pair cosine {cos:.3f}", z)
    for alpha in (0.5, 1.0, 2.0, 3.0):
        lam = np.arange(1, d + 1, dtype=np.float64) ** -alpha
        basis = np.linalg.qr(rng.standard_normal((d, d)))[0]
        z = (rng.standard_normal((n, d)) * np.sqrt(lam)) @ basis.T
        label = "healthy" if alpha < 3 else "dimensional"
        top = lam[:8].sum() / lam.sum()
        yield _case(f"power-law-a{alpha:g}", label,
                    f"eigenvalues k^-{alpha:g}: top 8 of {d} hold {top:.0%}", z)
    z = rng.standard_normal((n, d))
    z[rng.choice(n, 5, replace=False)] *= 1000.0
    yield _case("outliers-5", "warning",
                "isotropic bulk plus 5 rows 1000x longer, which own 99.6% of the variance", z)
