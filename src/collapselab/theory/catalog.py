"""Every claim of the seed article, in the article's order, bound to its check."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collapselab.theory import (
    claims_analogies,
    claims_collapse,
    claims_demos,
    claims_infonce,
    claims_rank,
)
from collapselab.theory.registry import Claim, ClaimResult, evaluate, select, torch_threads

CLAIMS: tuple[Claim, ...] = (
    Claim(
        "intro-gradients-vanish",
        "Introduction",
        "When this happens, similarity-based learning ceases to function, gradients vanish, "
        "and training stagnates.",
        "For each library objective (InfoNCE, NT-Xent, VICReg, Barlow Twins, SimSiam, BYOL) the "
        "gradient at a collapsed batch z_i = c is 0, and gradient descent from c + 1e-6 xi does "
        "not increase the spread (stagnation).",
        claims_infonce.check_gradients_vanish,
    ),
    Claim(
        "collapsed-rank",
        "Definition of Collapse",
        "Rank of embedding matrix: rank(Z) = 1",
        "For Z = 1 c^T (every row c), rank(Z) = 1, for every c including c = 0.",
        claims_collapse.check_collapsed_rank,
    ),
    Claim(
        "attraction-minimum",
        "Why Collapse is a Stable Solution",
        "Consider minimizing distance between positive pairs: L = sum_{i,j} ||z_i - z_j||^2 "
        "... Minimum occurs when z_i = z_j for all i,j. Thus collapse is global minimum.",
        "L(Z) = sum_{i,j} ||z_i - z_j||^2 >= 0 with equality iff all rows are equal; the "
        "Hessian at collapse has no negative eigenvalue.",
        claims_collapse.check_attraction_minimum,
    ),
    Claim(
        "attraction-stable",
        "Why Collapse is a Stable Solution",
        "Why Collapse is a Stable Solution ... collapse is not a bug. It is a natural optimum "
        "unless prevented.",
        "Collapse is a stable minimum of L: the Hessian at z_i = c is positive semidefinite "
        "and a small perturbation decays under gradient descent.",
        claims_collapse.check_attraction_stable,
    ),
    Claim(
        "variance-gradient",
        "Gradient Analysis of Collapse",
        "Now consider gradient of variance: nabla_{z_i} Var(Z) = 2(z_i - mu)",
        "With Var(Z) = (1/N) sum_i ||z_i - mu||^2, d Var / d z_i = 2 (z_i - mu) (autograd "
        "of the library variance, N in {2, 5, 17}).",
        claims_collapse.check_variance_gradient,
    ),
    Claim(
        "variance-stationary",
        "Gradient Analysis of Collapse",
        "When collapsed: z_i = mu. Thus: nabla = 0 ... Collapse is a stationary point.",
        "grad Var(Z) = 0 at every collapsed Z (|c| in {0, 1, 10}).",
        claims_collapse.check_variance_stationary,
    ),
    Claim(
        "training-stops",
        "Gradient Analysis of Collapse",
        "Training stops permanently.",
        "Minimising Var, training that reaches (or starts near) collapse stays there: the "
        "Hessian at collapse is PSD in z and in the weights of z = x W^T + b (at W = 0), a 1e-6 "
        "perturbation decays under gradient descent, and Adam in float32 started at W = delta "
        "W0 (delta in {1e-2, 1e-6, 1e-10, 0}) stays below 1e-3 of the untrained spread.",
        claims_collapse.check_training_stops,
    ),
    Claim(
        "second-moment-spectrum",
        "Spectral Interpretation",
        "Covariance: C = (1/N) Z^T Z ... Eigen decomposition: C = U Lambda U^T ... Collapse "
        "implies: Lambda = diag(lambda_1, 0, ...)",
        "For collapsed Z = 1 c^T and C = (1/N) Z^T Z, exactly one eigenvalue is non-zero, for "
        "every c (|c| in {0, 1, 3}).",
        claims_collapse.check_second_moment_spectrum,
    ),
    Claim(
        "variance-one-dimension",
        "Spectral Interpretation",
        "Collapse implies: Lambda = diag(lambda_1, 0, ...) ... All variance lies in one "
        "dimension.",
        "For collapsed Z (|c| in {1, 3}) the variance of Z (trace of the centred covariance) "
        "is positive and carried by one eigenvalue of the centred covariance; reported: the "
        "article's lambda_1 of (1/N) Z^T Z against that variance.",
        claims_collapse.check_variance_one_dimension,
    ),
    Claim(
        "demo1-variance",
        "Demonstration in PyTorch",
        "Initially, variance is high. As training progresses, variance approaches zero, "
        "indicating collapse.",
        "In the first demo (Linear(32, 128), Adam 1e-3, 500 steps of collapse_loss), the "
        "printed z.var(0).mean() decreases at every print and ends below 1e-4 of its start.",
        claims_demos.check_demo1_variance,
    ),
    Claim(
        "demo1-eigenvalues",
        "Demonstration in PyTorch",
        "Output tensor([0.0000, 0.0000, 0.0000,...]) All eigenvalues except one are zero, "
        "confirming collapse.",
        "After the first demo, the centred covariance computed by its eigenvalues() has "
        "exactly one eigenvalue above 1e-6 of the largest, and the printed zeros distinguish "
        "the trained model from the untrained one.",
        claims_demos.check_demo1_eigenvalues,
    ),
    Claim(
        "infonce-softmax",
        "Formal Definition of InfoNCE Loss / Softmax Probability Interpretation",
        "This loss can be interpreted as a softmax classification problem ... L_i = -log "
        "P(i^+|i) ... which requires: z_i^T z_i^+ >> z_i^T z_k",
        "The library's InfoNCE equals mean_i -log softmax_k(z_i^T z_k / tau)[i+] over the N "
        "candidates (two views, self-pairs); P(i+|i) -> 1 needs a logit gap large against tau.",
        claims_infonce.check_softmax_reading,
    ),
    Claim(
        "infonce-gradient",
        "Gradient of InfoNCE Loss",
        "nabla_{z_i} L_i = (1/tau) ( sum_{k=1}^{N} P(k|i) z_k - z_i^+ )",
        "In the article's setting (one batch, positive i+ = i+1 mod N != i, z_i among its "
        "own N candidates) the formula equals the partial derivative of L_i with respect to "
        "z_i (autograd of the library's InfoNCE); reported also: two views, the self-pair "
        "batch gradient, L2 normalisation.",
        claims_infonce.check_infonce_gradient,
    ),
    Claim(
        "uniform-softmax",
        "Collapse Scenario Analysis",
        "Softmax probabilities become uniform: P(k|i) = 1/N",
        "At z_k = c for all k, P(k|i) = 1/N over the article's N candidates, and the library's "
        "losses equal log N (self-pairs) and log(2N-1) (NT-Xent).",
        claims_infonce.check_uniform_softmax,
    ),
    Claim(
        "infonce-stationary",
        "Collapse Scenario Analysis",
        "we obtain: nabla_{z_i} = 0. Thus collapse is a stationary point.",
        "The full (batch) gradient of each contrastive loss (article self-pair demo loss; "
        "self-pair normalised; two-view InfoNCE and NT-Xent, raw and normalised) is 0 at every "
        "collapsed batch, for tau in {0.05, 0.2, 1, 5, 50}.",
        claims_infonce.check_infonce_stationary,
    ),
    Claim(
        "infonce-collapse-unstable",
        "Collapse Scenario Analysis",
        "However, collapse is not a minimum of contrastive loss, but a saddle point or "
        "unstable equilibrium.",
        "For d >= 2 the Hessian of each contrastive loss at collapse (N = 4, d = 3, |c| in "
        "{0.5, 3}) has at least one negative eigenvalue; reported: its tau and N dependence "
        "(-2/(N tau)) and the Hessian with respect to the weights of a linear encoder at W = 0.",
        claims_infonce.check_infonce_unstable,
    ),
    Claim(
        "perturbation-argument",
        "Why Collapse is Unstable Under Contrastive Loss",
        "nabla_{z_i} = sum_k P(k|i) epsilon_k - epsilon_i^+. This is nonzero. Thus collapse "
        "becomes unstable.",
        "(1) The printed expression equals grad_{z_i} L_i at z = c + eps in the article's "
        "setting (i+ != i, z_i among its candidates); (2) 'gradient != 0 near collapse' "
        "predicts whether a perturbation grows, for InfoNCE, the attraction loss and Var.",
        claims_infonce.check_perturbation_argument,
    ),
    Claim(
        "perturbation-growth",
        "Why Collapse is Unstable Under Contrastive Loss",
        "Gradient pushes embeddings apart. Variance increases.",
        "Under gradient descent from c + 1e-9 xi the spread of the rows grows for every "
        "contrastive loss, at the rate 1 - lr lambda_min the Hessian predicts (controls: "
        "attraction and variance losses shrink).",
        claims_infonce.check_perturbation_growth,
    ),
    Claim(
        "covariance-zero",
        "Variance Preservation Mechanism",
        "C = (1/N) sum_i (z_i - mu)(z_i - mu)^T ... Collapse implies: C = 0",
        "The centred covariance of a collapsed Z is the zero matrix (|c| in {0, 1, 100}).",
        claims_collapse.check_covariance_zero,
    ),
    Claim(
        "rank-maximised",
        "Variance Preservation Mechanism",
        "Contrastive learning implicitly maximizes variance. ... Minimum loss requires "
        "embeddings to span multiple dimensions. Thus contrastive loss implicitly maximizes "
        "rank of embedding matrix.",
        "The minimum of InfoNCE over rank-r configurations decreases with r and is reached "
        "only at rank >= 2 (normalised loss, N = d = 8, tau = 0.2), and the article's raw loss "
        "rewards rank beyond 2 as well; reported: the rank bonus for tau in {0.05 .. 50}.",
        claims_rank.check_rank_maximised,
    ),
    Claim(
        "centred-spectrum",
        "Spectral Perspective",
        "Collapse implies: lambda_1 > 0, lambda_2 = ... = lambda_d = 0",
        "For the centred covariance C (as defined in the preceding section) of a collapsed Z, "
        "lambda_1 > 0 and all other eigenvalues are 0.",
        claims_collapse.check_centred_spectrum,
    ),
    Claim(
        "small-eigenvalues-grow",
        "Spectral Perspective",
        "Contrastive learning increases smaller eigenvalues: lambda_2, lambda_3, ... This "
        "spreads embeddings across multiple orthogonal directions. Embedding space becomes "
        "full rank.",
        "Training a linear encoder with NT-Xent raises every eigenvalue of the smaller half of "
        "the embedding spectrum and the effective rank, whatever the augmentation strength.",
        claims_rank.check_small_eigenvalues_grow,
    ),
    Claim(
        "energy-softmax",
        "Connection to Energy-Based Models",
        "InfoNCE defines energy: E(z_i, z_k) = -z_i^T z_k. Loss minimizes energy for positives "
        "and increases energy for negatives.",
        "P(k|i) = exp(-E_ik/tau) / sum_j exp(-E_ij/tau), L_i = E_{i,i+}/tau + log Z_i, "
        "dL/dE_{i,i+} > 0 and dL/dE_ik < 0 for negatives.",
        claims_analogies.check_energy_softmax,
    ),
    Claim(
        "energy-collapse",
        "Connection to Energy-Based Models",
        "Collapse equalizes energy: E = constant. Contrastive loss penalizes this. System moves "
        "toward lower-energy structured configuration.",
        "Reading 1, the energy of the system (mean of E over all pairs): at collapse all "
        "energies are equal, the loss (log N) exceeds that of a structured configuration, and "
        "gradient descent from a perturbed collapse lowers the mean pair energy (unit-vector "
        "embeddings, normalised self-pair InfoNCE, tau = 0.5; reported: raw embeddings).",
        claims_analogies.check_energy_collapse,
    ),
    Claim(
        "energy-collapse-positives",
        "Connection to Energy-Based Models",
        "Loss minimizes energy for positives ... Collapse equalizes energy: E = constant. "
        "Contrastive loss penalizes this. System moves toward lower-energy structured "
        "configuration.",
        "Reading 2, the energy of the positive pairs: at collapse all energies are equal, the "
        "loss exceeds that of a structured configuration, and gradient descent from a "
        "perturbed collapse lowers the mean positive-pair energy E(z_i, z_i^+) (raw "
        "embeddings, the article's dot products, self-pair InfoNCE, tau = 0.5; reported: unit "
        "vectors).",
        claims_analogies.check_energy_collapse_positives,
    ),
    Claim(
        "charged-particles",
        "Physical Analogy",
        "Positive pairs: attractive force. Negative pairs: repulsive force ... Repulsive forces "
        "prevent this configuration. Equilibrium occurs when forces balance.",
        "Under NT-Xent's gradient flow, positive pairs on the circle merge and the pairs "
        "spread out while pure attraction collapses them; repulsion excludes the collapsed "
        "configuration (infinite loss at coincidence).",
        claims_analogies.check_charged_particles,
    ),
    Claim(
        "demo2-min-eig",
        "Empirical Demonstration",
        "Initially, eigenvalues are spread out. As training progresses, smaller eigenvalues "
        "increase, preventing collapse.",
        "In the second demo (Linear(32, 128), Adam, 500 steps of CE(z z^T, arange)), the "
        "printed minimum eigenvalue of torch.cov(z.T) increases beyond float32 rounding.",
        claims_demos.check_demo2_min_eig,
    ),
)


def run_all(
    ids: Sequence[str] | None = None,
    threads: int | None = 1,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[ClaimResult]:
    """Run every claim's check (or those with the given ids), in the article's order.

    Deterministic: every random draw comes from a seeded local ``torch.Generator``.

    Args:
        ids: claim ids to run (``None``: all).
        threads: torch intra-op threads while the checks run, restored afterwards (see
            :func:`~collapselab.theory.registry.torch_threads`); ``None`` keeps the current.
        progress: called as ``progress(done, total, claim_id)`` before each claim is run
            (``done`` claims finished) and once more with ``done == total`` at the end.

    Raises:
        ConfigError: an unknown claim id.
    """
    claims = select(CLAIMS, ids)
    results: list[ClaimResult] = []
    with torch_threads(threads):
        for c in claims:
            if progress is not None:
                progress(len(results), len(claims), c.id)
            results.append(evaluate(c))
    if progress is not None:
        progress(len(results), len(claims), "done")
    return results
