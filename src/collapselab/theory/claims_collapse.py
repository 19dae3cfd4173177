"""Checks of the article's collapse-side claims: attraction, variance, rank and spectra.

Sections "Definition of Collapse", "Why Collapse is a Stable Solution", "Gradient Analysis
of Collapse", "Spectral Interpretation", "Variance Preservation Mechanism" and "Spectral
Perspective". All in float64 on small ``(N, d)`` problems; tolerances are stated where used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from collapselab.losses import pairwise_attraction_loss
from collapselab.metrics import compute_metrics
from collapselab.theory import article
from collapselab.theory.numerics import (
    LossFn,
    adam_near_collapse,
    collapsed,
    curvature,
    gradient,
    hessian,
    linear_encoder_loss,
    perturbation_growth,
)
from collapselab.theory.registry import Finding

MatrixFn = Callable[[torch.Tensor], torch.Tensor]
GradFn = Callable[[torch.Tensor], torch.Tensor]

#: Relative tolerance for identities evaluated in float64 (rounding is ~1e-16 per operation;
#: the sums here have at most a few hundred terms, so 1e-10 leaves six orders of margin).
EXACT = 1e-10
#: Gradient steps of the perturbation experiments. With lr = 0.5 / max|lam| the stable modes
#: shrink by at most 1/2 per step, so 20 steps (2^-20 ~ 1e-6) keep a 1e-6 perturbation well
#: above the float64 rounding floor (~1e-16 |c|), while unstable ones grow by >= 1e3.
STEPS = 20


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error ``|a - b| / max(|b|, tiny)``."""
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def check_attraction_minimum(
    loss: LossFn = pairwise_attraction_loss, n: int = 6, d: int = 3, seed: int = 0
) -> Finding:
    """``L = sum_ij ||z_i - z_j||^2`` is 0 exactly at collapse and > 0 elsewhere.

    Evaluates ``loss`` at collapsed matrices (|c| in {0, 1, 10}) and at 200 random ones, and
    the Hessian at collapse (analytically ``4 (N I - 1 1^T) kron I_d``: eigenvalue 4N with
    multiplicity (N-1) d, and 0 with multiplicity d).
    """
    g = torch.Generator().manual_seed(seed)
    at_collapse = [float(loss(collapsed(n, d, r, g))) for r in (0.0, 1.0, 10.0)]
    random_vals = torch.stack(
        [loss(torch.randn(n, d, generator=g, dtype=torch.float64)) for _ in range(200)]
    )
    eig = torch.linalg.eigvalsh(hessian(loss, collapsed(n, d, 1.0, g)))
    cv = curvature(eig)
    # Attracting only positive pairs (what the prose says) is minimised by non-collapsed Z
    # as well: any Z whose positives coincide with their anchors.
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    positives = z.clone()
    pairs_only = float((z - positives).pow(2).sum())
    spread_of_pair_minimum = float(compute_metrics(z).total_variance)
    scale = float(random_vals.abs().max())
    zero_at_collapse = max(abs(v) for v in at_collapse) <= EXACT * scale
    positive_elsewhere = float(random_vals.min()) > 0
    numbers = {
        "loss_at_collapse": at_collapse,
        "min_loss_random": float(random_vals.min()),
        "hessian_eigenvalues_distinct": sorted({round(float(e), 8) + 0.0 for e in eig}),
        "hessian_negative": cv.negative,
        "hessian_zero": cv.zero,
        "positive_pairs_only_loss_at_noncollapsed": pairs_only,
        "spread_of_that_minimiser": spread_of_pair_minimum,
    }
    if zero_at_collapse and positive_elsewhere and cv.negative == 0:
        return Finding(
            "holds",
            f"L(collapse)=0 for |c| in {{0,1,10}}, min over 200 random Z = "
            f"{float(random_vals.min()):.3g} > 0; Hessian PSD ({cv.zero} zero eigenvalues)",
            numbers,
            "L is a sum of squares, zero iff all z_i are equal: every collapsed matrix is a "
            "global minimum. (The prose says 'positive pairs'; the formula sums over all pairs. "
            "Attracting only positive pairs is minimised by any Z whose pairs coincide, "
            "collapsed or not.)",
        )
    return Finding(
        "fails",
        f"L(collapse)={at_collapse}, min random={float(random_vals.min()):.3g}, "
        f"{cv.negative} negative Hessian eigenvalues",
        numbers,
        "The loss under test is not minimised by collapse.",
        correction="sum_ij ||z_i - z_j||^2 is minimised (value 0) exactly at collapse.",
    )


def check_attraction_stable(
    loss: LossFn = pairwise_attraction_loss, n: int = 6, d: int = 3, seed: int = 0
) -> Finding:
    """Collapse is a *stable* minimum of the attraction loss, but not an isolated one.

    Measures the Hessian's null space at collapse (expected: exactly the d translations
    ``z_i -> z_i + t``), the decay of a perturbation under gradient descent, and where
    gradient descent from two random starts ends (the initial mean is conserved, since
    ``sum_i grad_i = 0``: the minimiser reached depends on the start).
    """
    g = torch.Generator().manual_seed(seed)
    z0 = collapsed(n, d, 1.0, g)
    eig, vec = torch.linalg.eigh(hessian(loss, z0))
    cv = curvature(eig)
    tol = 1e-6 * float(eig.abs().max())
    null = vec[:, eig.abs() <= tol].T.reshape(-1, n, d)  # (k, N, d) null directions
    # a translation has identical rows: distance of each null vector from that subspace
    non_translation = float((null - null.mean(dim=1, keepdim=True)).norm()) if len(null) else 0.0
    lr = 0.5 / max(abs(cv.min), abs(cv.max), 1e-12)  # stable step for every mode
    growth = perturbation_growth(loss, z0, 1e-6, STEPS, lr, g)
    ends = []
    for _ in range(2):
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        start_mean = z.mean(dim=0)
        for _ in range(200):
            z = z - lr * gradient(loss, z)
        ends.append((z.mean(dim=0), start_mean, float(compute_metrics(z).total_variance)))
    mean_drift = max(float((e - s).norm()) for e, s, _ in ends)
    numbers = {
        "hessian_negative": cv.negative,
        "hessian_zero": cv.zero,
        "hessian_positive": cv.positive,
        "null_space_is_translations": non_translation <= 1e-8,
        "perturbation_ratio": growth.ratio,
        "steps": STEPS,
        "predicted_per_step_factor": 1.0 - lr * (cv.max if cv.negative == 0 else cv.min),
        "per_step_factor": growth.rate,
        "gd_end_points": [[float(x) for x in e] for e, _, _ in ends],
        "gd_end_variance": [v for _, _, v in ends],
        "gd_mean_drift": mean_drift,
    }
    if cv.negative or growth.ratio >= 1.0:
        return Finding(
            "fails",
            f"{cv.negative} negative curvature directions; perturbation ratio {growth.ratio:.3g}",
            numbers,
            "Collapse is not a stable point of the loss under test: a perturbation grows.",
            correction="Collapse is a stable minimum only of objectives whose Hessian at "
            "collapse is positive semidefinite (such as sum_ij ||z_i - z_j||^2).",
        )
    return Finding(
        "holds",
        f"Hessian PSD ({cv.zero} zero eigenvalues = translations); perturbations shrink "
        f"x{growth.ratio:.2g} in {STEPS} steps; GD ends at its start mean (drift {mean_drift:.1e})",
        numbers,
        "Hessian = 4(N I - 1 1^T) kron I_d: (N-1)d eigenvalues 4N and d zeros whose "
        "eigenvectors are the translations. Perturbations of the spread decay, translations "
        "are neutral: collapse is stable, though not isolated. The minimisers form the "
        "d-dimensional family {z_i = c}; gradient descent conserves the mean and stops at c = "
        "mean of the start, a different minimiser for each start.",
    )


def check_variance_gradient(
    formula: GradFn = article.variance_gradient, sizes: tuple[int, ...] = (2, 5, 17), d: int = 3,
    seed: int = 0,
) -> Finding:
    """Compare ``formula(z)`` (rows: grad of Var w.r.t. z_i) with autograd of the library's
    variance (``Var = d * variance_loss``). The declared correction is the factor 1/N:
    ``grad_{z_i} Var = (2/N)(z_i - mu)`` (the mu-dependence cancels: sum_i (z_i - mu) = 0).
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in sizes:
        z = torch.randn(n, d, generator=g, dtype=torch.float64)
        truth = gradient(article.variance, z)
        claimed = formula(z)
        ratio = float((claimed * truth).sum() / truth.pow(2).sum())
        rows.append(
            {"n": n, "rel_err": _rel(claimed, truth), "rel_err_times_1_over_n":
             _rel(claimed / n, truth), "ratio_claimed_to_autograd": ratio}
        )
    exact = all(r["rel_err"] <= EXACT for r in rows)
    corrected = all(r["rel_err_times_1_over_n"] <= EXACT for r in rows)
    numbers = {"per_n": rows}
    ratios = ", ".join(f"N={r['n']}: {r['ratio_claimed_to_autograd']:.6g}" for r in rows)
    true = "grad_{z_i} Var(Z) = (2/N)(z_i - mu)."
    if exact:
        return Finding("holds", f"formula = autograd (rel. err <= {EXACT:g})", numbers,
                       "The formula matches autograd.")
    if corrected:
        return Finding(
            "fails",
            f"wrong factor: formula / autograd = N ({ratios}); formula/N matches to <= {EXACT:g}",
            numbers,
            "d/dz_i (1/N) sum_k ||z_k - mu||^2 = (2/N)(z_i - mu) - (2/N^2) sum_k (z_k - mu) "
            "= (2/N)(z_i - mu). The formula is off by the factor N (it is the gradient of "
            "sum_i ||z_i - mu||^2, not of Var); the direction and the zero set (z_i = mu) are "
            "right.",
            correction=true,
        )
    return Finding("fails", f"formula differs from autograd even after the 1/N factor "
                   f"({ratios})", numbers,
                   "The formula under test is not the gradient of Var, even up to a factor N.",
                   correction=true)


def check_variance_stationary(
    loss: LossFn = article.variance, n: int = 6, d: int = 3, seed: int = 0
) -> Finding:
    """The gradient of Var vanishes at every collapsed matrix (|c| in {0, 1, 10})."""
    g = torch.Generator().manual_seed(seed)
    norms = {str(r): float(gradient(loss, collapsed(n, d, r, g)).norm()) for r in (0, 1, 10)}
    # scale: the gradient at a unit-spread random point, to make the tolerance relative
    scale = float(gradient(loss, torch.randn(n, d, generator=g, dtype=torch.float64)).norm())
    numbers = {"grad_norm_at_collapse_by_norm_of_c": norms, "grad_norm_random_point": scale}
    worst = max(norms.values())
    if worst <= EXACT * scale:
        return Finding("holds", f"|grad| at collapse <= {worst:.1e} (random point: {scale:.2g})",
                       numbers, "z_i - mu = 0 for every i at collapse, so every term vanishes.")
    return Finding("fails", f"|grad| at collapse = {worst:.3g}", numbers,
                   "The objective under test is not stationary at collapse.",
                   correction="grad_{z_i} Var = (2/N)(z_i - mu) vanishes at every collapsed Z.")


#: Starting scales of the weights for the Adam runs of :func:`check_training_stops`
#: (``W = delta W0``; 0 is exact collapse, 1e-10 rounds to it in float32: ``|z_i - b|``
#: ~ 1e-10 is below half an ulp of ``|b| ~ 1``).
ADAM_DELTAS = (1e-2, 1e-6, 1e-10, 0.0)


def check_training_stops(
    loss: LossFn = article.variance, n: int = 6, d: int = 3, seed: int = 0
) -> Finding:
    """Does training stay at collapse ("Training stops permanently")?

    For the objective under test (the article's variance, which its first demo minimises):
    (1) the Hessian with respect to z at collapse and the decay of a ``1e-6`` perturbation
    under gradient descent; (2) the Hessian with respect to the weights of a linear encoder
    ``z = x W^T + b`` at ``W = 0`` (the demos collapse through ``W -> 0``; for Var it is
    ``2 I_{d_out} kron Sigma_x``, Sigma_x the covariance of x); (3) Adam in float32 from
    ``W = delta W0``, ``delta`` in :data:`ADAM_DELTAS`. The verdict decides on (1): training
    stays where collapse is a minimum in z and a perturbation decays; (2) follows from (1)
    for a linear encoder and (3) shows what Adam does near it (reported). For contrast, the
    perturbation under ``-loss`` (stationary at the same point) is reported.
    """
    g = torch.Generator().manual_seed(seed)
    z0 = collapsed(n, d, 1.0, g)
    eig = torch.linalg.eigvalsh(hessian(loss, z0))
    lr = 0.5 / max(float(eig.abs().max()), 1e-12)
    down = perturbation_growth(loss, z0, 1e-6, STEPS, lr, g)
    up = perturbation_growth(lambda z: -loss(z), z0, 1e-6, STEPS, lr, g)
    cv = curvature(eig)
    d_in, d_out = 4, 3
    x = torch.randn(4 * n, d_in, generator=g, dtype=torch.float64)
    theta0 = torch.cat([torch.zeros(d_out * d_in, dtype=torch.float64),
                        torch.randn(d_out, generator=g, dtype=torch.float64)])  # W = 0
    w_eig = torch.linalg.eigvalsh(hessian(linear_encoder_loss(loss, x, d_out), theta0))
    cw = curvature(w_eig)
    sigma_x = torch.linalg.eigvalsh(torch.cov(x.T, correction=0))
    adam = [adam_near_collapse(loss, delta) for delta in ADAM_DELTAS]
    untrained = adam_near_collapse(loss, 1.0, steps=0).initial_spread
    adam_stays = all(r.final_spread <= 1e-3 * untrained for r in adam)
    numbers = {
        "hessian_eigenvalues_distinct": sorted({round(float(e), 8) + 0.0 for e in eig}),
        "hessian_negative": cv.negative,
        "minimise_perturbation_ratio": down.ratio,
        "minimise_per_step_factor": down.rate,
        "negated_perturbation_ratio": up.ratio,
        "negated_per_step_factor": up.rate,
        "lr": lr,
        "weight_hessian_eigenvalues": w_eig.tolist(),
        "weight_hessian_negative": cw.negative,
        "data_covariance_eigenvalues": sigma_x.tolist(),
        "adam_float32": [r.__dict__ for r in adam],
        "adam_untrained_spread": untrained,
        "adam_stays_collapsed": adam_stays,
    }
    # Decisive: collapse is a minimum in z and perturbations decay. For a linear encoder the
    # weight Hessian at W = 0 is J^T H_z J (z is linear in W), PSD whenever H_z is: reported,
    # with the Adam runs, as evidence of what the demo's parameterisation and optimizer do.
    stays = cv.negative == 0 and down.ratio < 1.0
    summary = (f"z: perturbation x{down.ratio:.2g} in {STEPS} steps; weights: Hessian at W=0 "
               f"has {cw.negative} negative eigenvalues; Adam f32 from W=delta W0 ends at spread "
               f"<= {max(r.final_spread for r in adam):.1e}; under -Var x{up.ratio:.3g}")
    if stays:
        return Finding(
            "holds",
            summary,
            numbers,
            f"Var has Hessian (2/N)(I - 11^T/N) kron I_d >= 0 at collapse ({cv.zero} zero "
            "eigenvalues: translations), and with respect to the weights of z = x W^T + b it is "
            "2 I kron Sigma_x >= 0 at W = 0: collapse is a minimum in both spaces, so gradient "
            "descent and Adam stay there (at exact collapse the float32 gradient is exactly 0; "
            "near it Adam hovers at a spread of ~1e-7). A zero gradient alone would not be "
            "enough: -Var is stationary at the same point and there perturbations grow by "
            "(1 + 2 lr/N) per step.",
        )
    return Finding(
        "fails",
        summary,
        numbers,
        "Under the objective tested, training leaves collapse: the Hessian at collapse has a "
        "negative eigenvalue, in z and in the weights, and a perturbation grows. Adam, which "
        "divides the gradient by its RMS, leaves it even from (float32-)exact collapse when "
        "rounding leaves a non-zero gradient there (adam_float32).",
        correction="Training stays collapsed only where collapse is a minimum of the objective "
        "being minimised; a zero gradient at a saddle or maximum does not stop it (and in "
        "float32 does not even stop Adam at exact collapse).",
    )


def check_collapsed_rank(claimed_rank: int = 1, n: int = 6, d: int = 4, seed: int = 0) -> Finding:
    """rank(Z) of a collapsed matrix (the library's numerical rank of ``(1/N) Z^T Z``),
    for |c| in {0, 1e-3, 1, 1e3}."""
    g = torch.Generator().manual_seed(seed)
    ranks = {
        str(r): compute_metrics(collapsed(n, d, r, g)).numerical_rank_uncentered
        for r in (0.0, 1e-3, 1.0, 1e3)
    }
    nonzero_ok = all(v == claimed_rank for k, v in ranks.items() if float(k) != 0.0)
    zero_ok = ranks["0.0"] == claimed_rank
    numbers = {"rank_by_norm_of_c": ranks, "claimed_rank": claimed_rank}
    if nonzero_ok and zero_ok:
        return Finding("holds", f"rank {claimed_rank} for every c", numbers, "As stated.")
    if nonzero_ok:
        return Finding(
            "holds-with-correction",
            f"rank {claimed_rank} for |c| in {{1e-3, 1, 1e3}}, rank {ranks['0.0']} for c = 0",
            numbers,
            "Z = 1 c^T is an outer product: rank 1 when c != 0 and the zero matrix (rank 0) "
            "when c = 0. Its centred version Z - 1 mu^T is 0 in both cases.",
            correction="rank(Z) = 1 if c != 0 and 0 if c = 0; the centred matrix has rank 0.",
        )
    return Finding("fails", f"measured ranks {ranks} != {claimed_rank}", numbers,
                   "The rank under test does not match a collapsed matrix.",
                   correction="rank(1 c^T) = 1 if c != 0 and 0 if c = 0.")


def _one_nonzero(eigs: torch.Tensor, scale: float) -> tuple[bool, float, float]:
    """(exactly one eigenvalue above 1e-10 * scale, largest, second largest)."""
    e = torch.sort(eigs, descending=True).values
    second = float(e[1]) if e.numel() > 1 else 0.0
    return float(e[0]) > EXACT * scale and abs(second) <= EXACT * scale, float(e[0]), second


ConfigFn = Callable[[int, int, float, torch.Generator], torch.Tensor]


def on_a_line(n: int, d: int, norm: float, generator: torch.Generator) -> torch.Tensor:
    """``z_i = t_i u`` (centred ``t``, ``|u| = 1``) plus ``norm`` times a unit offset
    orthogonal to u: all variance on one line, the offset in another direction (n, d)."""
    u, c = torch.linalg.qr(torch.randn(d, 2, generator=generator, dtype=torch.float64))[0].T
    t = torch.randn(n, 1, generator=generator, dtype=torch.float64)
    return (t - t.mean()) * u + norm * c


def check_second_moment_spectrum(
    matrix: MatrixFn = article.second_moment,
    configuration: ConfigFn = collapsed,
    n: int = 6,
    d: int = 4,
    seed: int = 0,
) -> Finding:
    """"Spectral Interpretation": with ``C = (1/N) Z^T Z``, collapse gives
    ``Lambda = diag(lambda_1, 0, ..., 0)``: exactly one non-zero eigenvalue.

    Decisive: ``matrix`` (default the article's uncentred ``(1/N) Z^T Z``) of
    ``configuration`` (default collapsed) has exactly one non-zero eigenvalue for |c| in
    {1, 3}, and for c = 0. One non-zero eigenvalue for c != 0 only: ``holds-with-correction``
    (the condition c != 0, as in collapsed-rank). The variance half of the sentence is the
    separate claim ``variance-one-dimension`` (:func:`check_variance_one_dimension`)."""
    g = torch.Generator().manual_seed(seed)

    def row(r: float) -> dict[str, Any]:
        z = configuration(n, d, r, g)
        met = compute_metrics(z)
        scale = max(float(z.pow(2).sum(1).mean()), 1e-300)
        ok, top, second = _one_nonzero(torch.linalg.eigvalsh(matrix(z)), scale)
        return {"norm_c": r, "one_nonzero": ok, "lambda_1": top, "lambda_2": second,
                "mean_squared_row_norm": scale,
                "library_uncentered_top": float(met.uncentered_eigenvalues[0])}

    rows = [row(r) for r in (1.0, 3.0)]
    zero = row(0.0)
    numbers = {"per_norm": rows, "c_0": zero,
               "max_abs_eigenvalue_c_0": max(abs(zero["lambda_1"]), abs(zero["lambda_2"]))}
    nonzero_ok = all(r["one_nonzero"] for r in rows)
    summary = (f"lambda_1 = {rows[0]['lambda_1']:.6g}, {rows[1]['lambda_1']:.6g} (|c| = 1, 3), "
               f"lambda_2 = {max(abs(r['lambda_2']) for r in rows):.1g}; c = 0: lambda_1 = "
               f"{zero['lambda_1']:.1g}")
    if nonzero_ok and zero["one_nonzero"]:
        return Finding("holds", summary, numbers,
                       "The matrix under test has exactly one non-zero eigenvalue, for every c.")
    if nonzero_ok:
        return Finding(
            "holds-with-correction",
            summary,
            numbers,
            "(1/N) Z^T Z = c c^T for Z = 1 c^T: one eigenvalue |c|^2 along c, the rest 0, as "
            "printed, when c != 0. For c = 0 the matrix is 0 and every eigenvalue is 0. (The "
            "matrix is the uncentred second moment, not the covariance; what its eigenvalue "
            "says about variance is the claim variance-one-dimension.)",
            correction="For collapsed Z with c != 0, (1/N) Z^T Z = c c^T has Lambda = "
            "diag(|c|^2, 0, ..., 0); for c = 0 every eigenvalue is 0.",
        )
    return Finding(
        "fails", summary, numbers,
        "The matrix under test does not have exactly one non-zero eigenvalue at collapse.",
        correction="For collapsed Z, (1/N) Z^T Z = c c^T has the single non-zero eigenvalue "
        "|c|^2 (c != 0).",
    )


def check_variance_one_dimension(
    configuration: ConfigFn = collapsed,
    matrix: MatrixFn = article.second_moment,
    n: int = 6,
    d: int = 4,
    seed: int = 0,
) -> Finding:
    """"Spectral Interpretation": "All variance lies in one dimension" (said of collapse).

    Decisive, on ``configuration`` (default collapsed, |c| in {1, 3}): the variance of Z
    (total variance, library metric) is positive and the largest eigenvalue of its centred
    covariance carries all of it. Reported: the article's lambda_1 (the top eigenvalue of
    ``matrix``, default its ``(1/N) Z^T Z``) against that variance."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for r in (1.0, 3.0):
        z = configuration(n, d, r, g)
        met = compute_metrics(z)
        scale = max(float(z.pow(2).sum(1).mean()), 1e-300)
        centred = float(met.eigenvalues[0])
        article_top = float(torch.linalg.eigvalsh(matrix(z)).max())
        rows.append({
            "norm_c": r, "total_variance": met.total_variance,
            "centred_lambda_1": centred,
            "variance_positive": met.total_variance > EXACT * scale,
            "in_one_dimension": abs(centred - met.total_variance) <= EXACT * scale,
            "article_lambda_1": article_top,
            "article_lambda_1_is_the_variance": abs(article_top - met.total_variance)
            <= EXACT * scale,
        })
    numbers = {"per_norm": rows}
    true = all(r["variance_positive"] and r["in_one_dimension"] for r in rows)
    summary = (f"total variance {max(r['total_variance'] for r in rows):.1g} (|c| = 1, 3); "
               f"the article's lambda_1 = {rows[0]['article_lambda_1']:.6g}, "
               f"{rows[1]['article_lambda_1']:.6g} is |c|^2")
    if true:
        return Finding("holds", summary, numbers,
                       "The configuration has positive variance, all of it along one direction.")
    return Finding(
        "fails",
        summary,
        numbers,
        "The covariance (1/N) sum (z_i - mu)(z_i - mu)^T of a collapsed Z is exactly 0, so "
        "'all variance lies in one dimension' is false: there is no variance in any dimension. "
        "The article's lambda_1 is the eigenvalue of the uncentred second moment (1/N) Z^T Z "
        "= c c^T, the squared offset |c|^2, not variance. Variance carried by one direction "
        "is the spectrum of points on a line, z_i = c + t_i u (dimensional collapse).",
        correction="For collapsed Z the covariance is 0: no variance in any direction. The one "
        "non-zero eigenvalue |c|^2 of (1/N) Z^T Z is the squared offset; all variance in one "
        "dimension describes points on a line, z_i = c + t_i u.",
    )


def check_covariance_zero(
    matrix: MatrixFn = article.covariance, n: int = 6, d: int = 4, seed: int = 0
) -> Finding:
    """"Variance Preservation Mechanism": the centred covariance of a collapsed Z is 0."""
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    lib = 0.0
    for r in (0.0, 1.0, 100.0):
        z = collapsed(n, d, r, g)
        worst = max(worst, float(matrix(z).abs().max()) / max(r * r, 1.0))
        lib = max(lib, float(compute_metrics(z).total_variance))
    numbers = {"max_abs_entry_relative_to_c_squared": worst, "library_total_variance": lib}
    if worst <= EXACT:
        return Finding("holds", f"max |C_jk| / |c|^2 = {worst:.1e} for |c| in {{0,1,100}}",
                       numbers, "z_i - mu = 0 for all i, so every term of C is 0.")
    return Finding("fails", f"max |C_jk| / |c|^2 = {worst:.3g}", numbers,
                   "The matrix under test is not zero at collapse (it is not centred).",
                   correction="The centred covariance (1/N) sum (z_i - mu)(z_i - mu)^T is 0 "
                   "at collapse; the uncentred (1/N) Z^T Z is c c^T.")


def check_centred_spectrum(
    matrix: MatrixFn = article.covariance, n: int = 6, d: int = 4, seed: int = 0
) -> Finding:
    """"Spectral Perspective": for the centred C, collapse implies lambda_1 > 0 and
    lambda_2 = ... = lambda_d = 0. Also shows which configuration does have that spectrum."""
    g = torch.Generator().manual_seed(seed)
    z = collapsed(n, d, 2.0, g)
    ok, top, second = _one_nonzero(torch.linalg.eigvalsh(matrix(z)), 4.0)
    u = torch.randn(d, generator=g, dtype=torch.float64)
    t = torch.randn(n, 1, generator=g, dtype=torch.float64)
    line = z + t * u  # z_i = c + t_i u: all variance on one line
    met_line = compute_metrics(line)
    numbers = {
        "collapse_lambda_1": top,
        "collapse_lambda_2": second,
        "line_configuration_eigenvalues": [float(e) for e in met_line.eigenvalues],
        "line_configuration_effective_rank": met_line.effective_rank,
    }
    if ok:
        return Finding("holds", f"lambda_1 = {top:.3g} > 0, rest 0", numbers,
                       "The matrix under test has one non-zero eigenvalue at collapse.")
    return Finding(
        "fails",
        f"at collapse the centred C has lambda_1 = {top:.1e}: all eigenvalues 0; "
        f"(lambda_1 > 0, rest 0) is the spectrum of z_i = c + t_i u",
        numbers,
        "The section defines C as the centred covariance, which it has just shown is 0 at "
        "collapse; so lambda_1 = 0 too, contradicting 'lambda_1 > 0'. A spectrum with one "
        "positive eigenvalue describes dimensional collapse onto a line (z_i = c + t_i u, "
        "effective rank 1), not complete collapse; lambda_1 = |c|^2 > 0 holds only for the "
        "uncentred second moment of the earlier section.",
        correction="For the centred covariance, collapse implies lambda_1 = ... = lambda_d = 0; "
        "lambda_1 > 0 with the rest 0 describes points on a line, z_i = c + t_i u.",
    )
