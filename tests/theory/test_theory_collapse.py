"""Collapse-side claims: attraction, variance, rank and spectra (float64, exact values).

Tolerances: identities in float64 are asserted to 1e-10 relative (rounding of a few hundred
operations is ~1e-14); finite-difference Hessians to 1e-6 relative (truncation ~1e-10,
rounding ~1e-11, see collapselab.theory.numerics).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from collapselab.losses import article_info_nce, pairwise_attraction_loss
from collapselab.theory import Finding, article
from collapselab.theory import claims_collapse as cc
from collapselab.theory.numerics import collapsed, curvature, hessian, perturbation_growth

Get = Callable[[str], Finding]


def reference_attraction(z: torch.Tensor) -> torch.Tensor:
    """The article's sum over ordered pairs, written as the double loop it is."""
    n = z.shape[0]
    return sum(((z[i] - z[j]) ** 2).sum() for i in range(n) for j in range(n))  # type: ignore[return-value]


def test_library_attraction_matches_the_double_sum() -> None:
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(pairwise_attraction_loss(z), reference_attraction(z), rtol=1e-12)


def test_attraction_minimum(claim_evidence: Get) -> None:
    ev = claim_evidence("attraction-minimum")
    n, d = 6, 3
    assert max(abs(v) for v in ev.numbers["loss_at_collapse"]) < 1e-20
    assert ev.numbers["min_loss_random"] > 1.0
    # Hessian of sum_ij ||z_i - z_j||^2 is 4 (N I - 1 1^T) kron I_d: {0 (d times), 4N}
    assert ev.numbers["hessian_eigenvalues_distinct"] == pytest.approx([0.0, 4 * n], abs=1e-6)
    assert ev.numbers["hessian_zero"] == d
    assert ev.numbers["positive_pairs_only_loss_at_noncollapsed"] == 0.0
    assert ev.numbers["spread_of_that_minimiser"] > 0.1


def test_attraction_minimum_rejects_a_loss_maximised_by_collapse() -> None:
    ev = cc.check_attraction_minimum(loss=lambda z: -pairwise_attraction_loss(z))
    assert ev.verdict == "fails"


def test_attraction_stable(claim_evidence: Get) -> None:
    ev = claim_evidence("attraction-stable")
    num = ev.numbers
    assert (num["hessian_negative"], num["hessian_zero"], num["hessian_positive"]) == (0, 3, 15)
    assert num["null_space_is_translations"]
    # lr = 0.5 / 4N halves every non-flat mode per step: 20 steps -> 2^-20 ~ 9.5e-7
    assert num["perturbation_ratio"] == pytest.approx(0.5**20, rel=1e-3)
    assert num["predicted_per_step_factor"] == pytest.approx(0.5, rel=1e-6)
    assert num["gd_mean_drift"] < 1e-12  # sum_i grad_i = 0: the mean is conserved
    assert max(num["gd_end_variance"]) < 1e-20
    ends = torch.tensor(num["gd_end_points"])
    assert (ends[0] - ends[1]).norm() > 0.1  # two starts, two different minimisers
    assert ev.verdict == "holds" and ev.correction is None


def test_attraction_stable_rejects_an_unstable_loss() -> None:
    assert cc.check_attraction_stable(loss=lambda z: -pairwise_attraction_loss(z)).verdict == (
        "fails")


def test_variance_gradient(claim_evidence: Get) -> None:
    ev = claim_evidence("variance-gradient")
    # a wrong factor is a statement false as printed: fails, with the true formula
    assert ev.verdict == "fails" and ev.correction == "grad_{z_i} Var(Z) = (2/N)(z_i - mu)."
    for row in ev.numbers["per_n"]:
        assert row["ratio_claimed_to_autograd"] == pytest.approx(row["n"], rel=1e-12)
        assert row["rel_err_times_1_over_n"] < 1e-12


def test_variance_gradient_correct_formula_holds() -> None:
    ev = cc.check_variance_gradient(formula=lambda z: (2 / z.shape[0]) * (z - z.mean(0)))
    assert ev.verdict == "holds"


@pytest.mark.parametrize(
    "wrong",
    [
        lambda z: (z - z.mean(0)) / z.shape[0],  # the factor 2 missing
        lambda z: 2 * z / z.shape[0],  # mu forgotten
        lambda z: -2 * (z - z.mean(0)),  # sign flipped
    ],
    ids=["missing-2", "missing-mu", "sign"],
)
def test_variance_gradient_wrong_variants_fail(wrong: cc.GradFn) -> None:
    assert cc.check_variance_gradient(formula=wrong).verdict == "fails"


def test_variance_stationary(claim_evidence: Get) -> None:
    ev = claim_evidence("variance-stationary")
    assert max(ev.numbers["grad_norm_at_collapse_by_norm_of_c"].values()) < 1e-14
    # the uncentred second moment is not stationary at c != 0
    assert cc.check_variance_stationary(loss=lambda z: (z**2).mean()).verdict == "fails"


def test_training_stops(claim_evidence: Get) -> None:
    ev = claim_evidence("training-stops")
    num = ev.numbers
    n = 6
    assert ev.verdict == "holds"
    assert num["hessian_eigenvalues_distinct"] == pytest.approx([0.0, 2 / n], abs=1e-8)
    # lr = 0.5 / (2/N): minimising multiplies by 1 - 0.5, maximising by 1 + 0.5 per step.
    # rel 1e-4: the shrinking spread ends near 1e-12, where float64 rounding of |c| = 1 rows
    # (~1e-16) is a 1e-4 relative error.
    assert num["minimise_per_step_factor"] == pytest.approx(0.5, rel=1e-4)
    assert num["negated_per_step_factor"] == pytest.approx(1.5, rel=1e-6)
    assert num["negated_perturbation_ratio"] == pytest.approx(1.5**20, rel=1e-3)
    # weights of z = x W^T + b at W = 0: Hessian of Var = 2 I_{d_out} kron Sigma_x, exactly
    # (eigenvalues 2 sigma_k, each d_out = 3 times, and 3 zeros for the bias); FD error 1e-8
    sigma = sorted(2 * s for s in num["data_covariance_eigenvalues"])
    expected = [0.0] * 3 + [s for s in sigma for _ in range(3)]
    assert num["weight_hessian_eigenvalues"] == pytest.approx(expected, abs=1e-8)
    adam = {r["delta"]: r for r in num["adam_float32"]}
    # W = 0 and W = 1e-10 W0 (below float32 resolution of z ~ b): the gradient is exactly 0
    # and Adam does not move
    for delta in (0.0, 1e-10):
        assert adam[delta]["first_grad_norm"] == 0.0 and adam[delta]["final_spread"] == 0.0
    # near collapse Adam's lr-sized steps first push the spread up (x10 from 1e-6), but it
    # stays far below the untrained spread
    assert adam[1e-6]["final_spread"] > 3 * adam[1e-6]["initial_spread"]
    assert num["adam_stays_collapsed"]


def test_training_stops_fails_for_an_objective_that_repels() -> None:
    ev = cc.check_training_stops(loss=lambda z: -article.variance(z))
    assert ev.verdict == "fails" and ev.correction
    assert ev.numbers["weight_hessian_negative"] == 12  # -2 sigma_k, d_out x d_in of them


def test_training_stops_fails_under_infonce_and_adam_leaves_float32_exact_collapse() -> None:
    # InfoNCE is stationary at collapse but a saddle; and float32 rounding leaves a ~1e-7
    # gradient at W = 0 exactly, which Adam (dividing by the gradient's RMS) turns into
    # lr-sized steps
    ev = cc.check_training_stops(loss=article_info_nce)
    assert ev.verdict == "fails" and not ev.numbers["adam_stays_collapsed"]
    exact = next(r for r in ev.numbers["adam_float32"] if r["delta"] == 0.0)
    assert exact["initial_spread"] == 0.0
    assert 0.0 < exact["first_grad_norm"] < 1e-5
    assert exact["final_spread"] > 0.1


def test_collapsed_rank(claim_evidence: Get) -> None:
    ev = claim_evidence("collapsed-rank")
    assert ev.numbers["rank_by_norm_of_c"] == {"0.0": 0, "0.001": 1, "1.0": 1, "1000.0": 1}
    assert cc.check_collapsed_rank(claimed_rank=2).verdict == "fails"


def test_second_moment_spectrum(claim_evidence: Get) -> None:
    ev = claim_evidence("second-moment-spectrum")
    # right as printed for c != 0; the condition c != 0 is left out
    assert ev.verdict == "holds-with-correction" and ev.correction and "c != 0" in ev.correction
    for row in ev.numbers["per_norm"]:
        # (1/N) Z^T Z = c c^T: one eigenvalue |c|^2, the rest 0
        assert row["one_nonzero"]
        assert row["lambda_1"] == pytest.approx(row["norm_c"] ** 2, rel=1e-12)
        assert row["library_uncentered_top"] == pytest.approx(row["norm_c"] ** 2, rel=1e-12)
        assert abs(row["lambda_2"]) < 1e-12 * row["lambda_1"]
    assert not ev.numbers["c_0"]["one_nonzero"]
    assert ev.numbers["max_abs_eigenvalue_c_0"] == 0.0


def test_second_moment_spectrum_verdict_follows_the_matrix_and_the_configuration() -> None:
    # one non-zero eigenvalue for every c, c = 0 included: variance on a line, centred
    ev = cc.check_second_moment_spectrum(matrix=article.covariance, configuration=cc.on_a_line)
    assert ev.verdict == "holds" and ev.correction is None
    # the centred covariance of a collapse (all 0), the second moment of a line (rank 2)
    assert cc.check_second_moment_spectrum(matrix=article.covariance).verdict == "fails"
    assert cc.check_second_moment_spectrum(configuration=cc.on_a_line).verdict == "fails"


def test_variance_one_dimension(claim_evidence: Get) -> None:
    ev = claim_evidence("variance-one-dimension")
    assert ev.verdict == "fails" and ev.correction and "no variance" in ev.correction
    for row in ev.numbers["per_norm"]:
        # the variance is 0, while the article's lambda_1 is the squared offset |c|^2
        assert row["total_variance"] < 1e-20 and not row["variance_positive"]
        assert row["article_lambda_1"] == pytest.approx(row["norm_c"] ** 2, rel=1e-12)
        assert not row["article_lambda_1_is_the_variance"]


def test_variance_one_dimension_holds_for_points_on_a_line() -> None:
    # the one setting where the sentence is true: z_i = c + t_i u
    ev = cc.check_variance_one_dimension(configuration=cc.on_a_line)
    assert ev.verdict == "holds" and ev.correction is None
    for row in ev.numbers["per_norm"]:
        assert row["centred_lambda_1"] == pytest.approx(row["total_variance"], rel=1e-12)
        assert row["total_variance"] > 0.01
    # variance in two directions: not "one dimension"
    def on_a_plane(n: int, d: int, norm: float, g: torch.Generator) -> torch.Tensor:
        return cc.on_a_line(n, d, norm, g) + cc.on_a_line(n, d, 0.0, g)

    assert cc.check_variance_one_dimension(configuration=on_a_plane).verdict == "fails"


def test_covariance_zero(claim_evidence: Get) -> None:
    ev = claim_evidence("covariance-zero")
    assert ev.numbers["max_abs_entry_relative_to_c_squared"] < 1e-14
    assert cc.check_covariance_zero(matrix=article.second_moment).verdict == "fails"


def test_centred_spectrum(claim_evidence: Get) -> None:
    ev = claim_evidence("centred-spectrum")
    assert abs(ev.numbers["collapse_lambda_1"]) < 1e-14
    line = ev.numbers["line_configuration_eigenvalues"]
    assert line[0] > 0.1 and max(line[1:]) < 1e-12 * line[0]
    assert ev.numbers["line_configuration_effective_rank"] == pytest.approx(1.0, abs=1e-9)
    # the check is not hard-wired: the uncentred matrix does show the pattern
    assert cc.check_centred_spectrum(matrix=article.second_moment).verdict == "holds"


def test_fd_hessian_of_library_attraction_is_the_analytic_one() -> None:
    n, d = 4, 2
    z = collapsed(n, d, 1.0, torch.Generator().manual_seed(0))
    expected = 4 * torch.kron(n * torch.eye(n) - torch.ones(n, n), torch.eye(d)).double()
    assert torch.allclose(hessian(pairwise_attraction_loss, z), expected, atol=1e-6)


def test_curvature_counts_and_kinds() -> None:
    c = curvature(torch.tensor([-2.0, 0.0, 1e-9, 3.0], dtype=torch.float64))
    assert (c.negative, c.zero, c.positive, c.kind) == (1, 2, 1, "saddle")
    assert curvature(torch.tensor([-1.0, 0.0])).kind == "maximum"
    assert curvature(torch.tensor([1.0, 0.0])).kind == "minimum"


def test_perturbation_growth_on_a_quadratic_is_exact() -> None:
    # L = -(a/2) |z|^2 on centred data: each step multiplies the spread by 1 + lr a exactly
    g = torch.Generator().manual_seed(0)
    z0 = torch.zeros(5, 2, dtype=torch.float64)
    out = perturbation_growth(lambda z: -0.5 * 0.4 * (z - z.mean(0)).pow(2).sum(), z0, 1e-3, 8,
                              0.5, g)  # fmt: skip
    assert out.ratio == pytest.approx(1.2**8, rel=1e-10)
    assert out.rate == pytest.approx(1.2, rel=1e-10)
