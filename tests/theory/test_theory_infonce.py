"""InfoNCE claims: softmax reading, gradient, stationarity, Hessian at collapse, perturbations.

References in this file are written from the papers' equations with explicit loops (float64)
and differentiated with ``torch.autograd.functional.hessian`` (exact second derivatives), so
they check the library losses and the finite-difference Hessian used by the checks.
Tolerances: float64 identities 1e-10; finite-difference Hessians 1e-6 (absolute, entries of
order 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from collapselab.losses import info_nce, nt_xent, pairwise_attraction_loss
from collapselab.theory import Finding, article
from collapselab.theory import claims_infonce as ci
from collapselab.theory.numerics import collapsed, hessian

Get = Callable[[str], Finding]


def reference_info_nce(a: torch.Tensor, p: torch.Tensor, tau: float) -> torch.Tensor:
    """van den Oord et al. 2018, Eq. 4 (in-batch candidates), raw dot products, as loops."""
    n = a.shape[0]
    total = a.new_zeros(())
    for i in range(n):
        logits = torch.stack([a[i] @ p[k] / tau for k in range(n)])
        total = total - logits[i] + torch.logsumexp(logits, dim=0)
    return total / n


def reference_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> torch.Tensor:
    """SimCLR Eq. 1 on cosine similarities, as loops over the 2N anchors."""
    z = torch.cat([z1, z2])
    z = z / z.norm(dim=1, keepdim=True)
    m, n = z.shape[0], z1.shape[0]
    total = z.new_zeros(())
    for i in range(m):
        j = (i + n) % m
        others = torch.stack([z[i] @ z[k] / tau for k in range(m) if k != i])
        total = total - z[i] @ z[j] / tau + torch.logsumexp(others, dim=0)
    return total / m


def test_fd_hessian_matches_exact_hessian_of_references_at_collapse() -> None:
    g = torch.Generator().manual_seed(0)
    n, d, tau = 3, 2, 0.5
    z0 = collapsed(2 * n, d, 1.3, g) + 0.01 * torch.randn(2 * n, d, generator=g,
                                                            dtype=torch.float64)  # fmt: skip
    cases = [
        (lambda z: info_nce(z[:n], z[n:], temperature=tau, normalize=False),
         lambda z: reference_info_nce(z[:n], z[n:], tau)),
        (lambda z: nt_xent(z[:n], z[n:], temperature=tau), lambda z: reference_nt_xent(
            z[:n], z[n:], tau)),
    ]  # fmt: skip
    for lib, ref in cases:
        exact = torch.autograd.functional.hessian(ref, z0).reshape(2 * n * d, 2 * n * d)
        assert torch.allclose(hessian(lib, z0), exact, atol=1e-6)


def test_softmax_reading(claim_evidence: Get) -> None:
    ev = claim_evidence("infonce-softmax")
    num = ev.numbers
    assert max(num["rel_err_two_view"], num["rel_err_self_pair"]) < 1e-12
    assert num["rel_err_nt_xent_2n_minus_1_candidates"] < 1e-12
    assert num["p_pos_at_that_gap"] == pytest.approx(0.99, abs=1e-12)


def test_softmax_reading_rejects_a_denominator_without_the_positive() -> None:
    def decoupled(a: torch.Tensor, p: torch.Tensor, tau: float) -> torch.Tensor:
        logits = a @ p.T / tau
        pos = torch.diagonal(logits)
        neg = logits.masked_fill(torch.eye(a.shape[0], dtype=torch.bool), -math.inf)
        return (torch.logsumexp(neg, dim=1) - pos).mean()

    assert ci.check_softmax_reading(loss=decoupled).verdict == "fails"


def test_full_self_pair_gradient_against_a_loop_reference() -> None:
    # d/dz_i of (1/N) sum_j [-z_j.z_j/tau + lse_k z_j.z_k/tau], term by term
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    tau, n = 0.7, 4
    p = torch.softmax(z @ z.T / tau, dim=1)
    manual = torch.zeros_like(z)
    for i in range(n):
        for j in range(n):
            if j == i:
                manual[i] += -2 * z[i] / tau + (p[i] @ z) / tau + p[i, i] * z[i] / tau
            else:
                manual[i] += p[j, i] * z[j] / tau
    assert torch.allclose(ci.full_self_pair_gradient(z, tau), manual / n, rtol=1e-12)


def corrected_anchor_gradient(
    a: torch.Tensor, p: torch.Tensor, c: torch.Tensor, tau: float
) -> torch.Tensor:
    """The true partial derivative: the article's formula plus P(i|i) z_i / tau when the anchor
    is among its own candidates (the article's batch)."""
    probs = article.softmax_probabilities(a, c, tau)
    own = torch.diagonal(probs)[:, None] * a if a is c else torch.zeros_like(a)
    return (probs @ c - p + own) / tau


def test_own_setting_anchor_gradient_against_a_loop_reference() -> None:
    # L_i = -z_i.z_{i+}/tau + log sum_k exp(z_i.z_k/tau), differentiated in z_i only, by hand
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    tau, positive = 0.3, torch.tensor([2, 0, 4, 1, 3])
    manual = torch.zeros_like(z)
    for i in range(5):
        w = torch.softmax(z[i] @ z.T / tau, dim=0)  # P(k|i)
        manual[i] = (w @ z + w[i] * z[i] - z[positive[i]]) / tau
    assert torch.allclose(ci.own_setting_anchor_gradient(z, positive, tau), manual, rtol=1e-12)


def test_infonce_gradient(claim_evidence: Get) -> None:
    ev = claim_evidence("infonce-gradient")
    num = ev.numbers
    # the article's own setting: the printed formula misses P(i|i) z_i / tau, an O(1) term
    assert ev.verdict == "fails" and ev.correction and "P(i|i) z_i" in ev.correction
    assert num["own_setting_rel_err"] > 0.1
    assert num["own_setting_rel_err_with_P_ii_z_i_term"] < 1e-12
    assert num["a_two_view_anchor_rel_err"] < 1e-12
    assert num["b_self_pair_batch_rel_err_article"] > 0.1
    assert num["b_self_pair_batch_rel_err_full_formula"] < 1e-12
    assert num["c_normalised_rel_err_projected"] < 1e-12
    assert num["c_normalised_rel_err_unprojected"] > 0.1


def test_infonce_gradient_holds_for_the_corrected_formula() -> None:
    ev = ci.check_infonce_gradient(formula=corrected_anchor_gradient)
    assert ev.verdict == "holds" and ev.numbers["own_setting_rel_err"] < 1e-12


@pytest.mark.parametrize(
    "wrong",
    [
        lambda a, p, c, tau: corrected_anchor_gradient(a, p, c, tau) * tau,  # 1/tau missing
        lambda a, p, c, tau: -corrected_anchor_gradient(a, p, c, tau),  # sign
        lambda a, p, c, tau: (c.mean(0) - p) / tau,  # uniform weights instead of P(k|i)
    ],
    ids=["missing-1-over-tau", "sign", "uniform-weights"],
)
def test_infonce_gradient_wrong_variants_fail(wrong: ci.AnchorGradFn) -> None:
    assert ci.check_infonce_gradient(formula=wrong).verdict == "fails"


def test_uniform_softmax(claim_evidence: Get) -> None:
    num = claim_evidence("uniform-softmax").numbers
    assert num["max_abs_P_minus_1_over_N"] < 1e-15
    assert num["self_pair_loss"] == pytest.approx(math.log(5), rel=1e-12)
    assert num["nt_xent_loss"] == pytest.approx(math.log(9), rel=1e-12)


def test_uniform_softmax_rejects_n_minus_1_candidates() -> None:
    def without_self(a: torch.Tensor, c: torch.Tensor, tau: float) -> torch.Tensor:
        logits = (a @ c.T / tau).masked_fill(torch.eye(a.shape[0], dtype=torch.bool), -math.inf)
        return torch.softmax(logits, dim=1)

    assert ci.check_uniform_softmax(probabilities=without_self).verdict == "fails"


def test_infonce_stationary(claim_evidence: Get) -> None:
    num = claim_evidence("infonce-stationary").numbers
    rows = num["per_loss"]
    # 5 normalised/raw two-view and self-pair losses per tau (5 taus) + the article's (tau = 1)
    assert len(rows) == 5 * 5 + 1
    assert max(r["grad_norm_at_collapse"] for r in rows.values()) < 1e-13
    # the article's per-anchor partial at collapse is c / (N tau), not 0 (|c| = 1)
    for r in num["own_setting_anchor_partial_at_collapse"].values():
        assert r["measured_row_norm"] == pytest.approx(r["closed_form_norm_c_over_n_tau"],
                                                       rel=1e-12)  # fmt: skip


def test_infonce_stationary_rejects_the_denominator_alone() -> None:
    lse_only = ci.Variant("lse only", lambda z: torch.logsumexp(z @ z.T, dim=1).mean(), 1, False)
    ev = ci.check_infonce_stationary(variants=lambda tau: [lse_only], taus=(1.0,))
    assert ev.verdict == "fails"


def test_infonce_collapse_unstable(claim_evidence: Get) -> None:
    num = claim_evidence("infonce-collapse-unstable").numbers
    rows = num["per_loss"]
    assert all(r["negative"] > 0 for r in rows.values())
    # raw self-pairs, tau = 1: (N-1)(d-1) = 6 eigenvalues -2/N = -0.5, N-1 = 3 at
    # (2/N)(|c|^2/2 - 1): negative for |c| = 0.5 (maximum), 1.75 for |c| = 3 (saddle)
    assert rows["article self-pair (raw, tau=1), |c|=0.5"]["kind"] == "maximum"
    assert rows["article self-pair (raw, tau=1), |c|=3.0"]["kind"] == "saddle"
    assert rows["article self-pair (raw, tau=1), |c|=3.0"]["max"] == pytest.approx(1.75, abs=1e-6)
    assert max(num["closed_form_max_abs_err"].values()) < 1e-6
    # normalised self-pairs: collapse is the global maximum log N; two views: saddles
    assert rows["self-pair normalised (tau=0.5), |c|=3.0"]["kind"] == "maximum"
    assert rows["NT-Xent normalised (tau=0.5), |c|=0.5"]["kind"] == "saddle"
    assert num["article_loss_d_1"] == {"0.5": "maximum", "3.0": "minimum"}


def test_saddle_sweep_matches_minus_2_over_n_tau() -> None:
    # closed forms: -2/(N tau) raw, -2/(N tau |c|^2) normalised; the FD Hessian is accurate to
    # ~1e-9 relative for these entries (see numerics), so rel 1e-6
    rows = ci.saddle_sweep((0.05, 1.0, 50.0), torch.Generator().manual_seed(0), ns=(4, 8))
    assert len(rows) == 12
    for r in rows:
        assert r["lambda_min"] == pytest.approx(r["closed_form"], rel=1e-6), r
        expected = -2.0 / (r["n"] * r["tau"] * (4.0 if r["normalised"] else 1.0))
        assert r["closed_form"] == pytest.approx(expected, rel=1e-15)


def test_weight_space_hessian_matches_its_closed_form(claim_evidence: Get) -> None:
    rows = claim_evidence("infonce-collapse-unstable").numbers["weight_space"]
    for r in rows:
        # -(2/tau) sigma_k twice each (d_out - 1 = 2): 8 negative eigenvalues at either tau
        assert r["closed_form_max_abs_err"] < 1e-6 and r["negative"] == 8
    assert [r["kind"] for r in rows] == ["saddle", "saddle"]


def test_infonce_collapse_unstable_rejects_a_stable_loss() -> None:
    stable = ci.Variant("attraction", pairwise_attraction_loss, 1, False)
    assert ci.check_infonce_unstable(variants=[stable], taus=(1.0,)).verdict == "fails"


def test_batch_size_sweep_fades_in_z_but_not_in_the_weights(claim_evidence: Get) -> None:
    sweep = claim_evidence("infonce-collapse-unstable").numbers["batch_size_sweep"]
    z, w = sweep["z_space"], sweep["weight_space"]
    assert [r["n"] for r in z] == [r["n"] for r in w] == [8, 32, 128]
    for zr, wr in zip(z, w, strict=True):
        # z: -2/(N tau), the mean loss; weights: -2 lambda_max(Sigma_x)/tau, no N in it
        assert zr["lambda_min"] == pytest.approx(zr["formula"], rel=1e-6)
        assert zr["formula"] == pytest.approx(-2.0 / (zr["n"] * zr["tau"]), rel=1e-15)
        assert wr["lambda_min"] == pytest.approx(wr["formula"], rel=1e-6)
        assert wr["formula"] == pytest.approx(-2.0 * wr["lambda_max_sigma_x"] / wr["tau"],
                                              rel=1e-15)  # fmt: skip
        assert wr["kind"] == "saddle"
    # 16 x the batch: z-curvature / 16; the weight curvature stays of order -2/tau (it moves
    # only with the sample's lambda_max(Sigma_x), which tends to 1 for standard normal x)
    assert z[-1]["lambda_min"] / z[0]["lambda_min"] == pytest.approx(1 / 16, rel=1e-6)
    assert all(r["lambda_min"] < -2.0 for r in w)


def test_infonce_collapse_unstable_fails_where_the_weights_sit_at_a_minimum() -> None:
    # the embeddings' losses unchanged, the weights trained with a loss minimal at collapse
    ev = ci.check_infonce_unstable(taus=(1.0,), weight_loss=lambda tau: pairwise_attraction_loss)
    assert ev.verdict == "fails" and ev.correction
    assert all(r["negative"] == 0 for r in ev.numbers["batch_size_sweep"]["weight_space"])


def corrected_perturbation(
    c: torch.Tensor, eps: torch.Tensor, positive: torch.Tensor, tau: float
) -> torch.Tensor:
    z = c + eps
    p = article.softmax_probabilities(z, z, tau)
    return (p @ eps + torch.diagonal(p)[:, None] * z - eps[positive]) / tau


def test_perturbation_argument(claim_evidence: Get) -> None:
    ev = claim_evidence("perturbation-argument")
    num = ev.numbers
    assert ev.verdict == "fails" and ev.correction
    # the printed expression misses 1/tau and the O(1) term P(i|i) z_i / tau
    assert num["algebra_rel_err"] > 0.5 and "algebra wrong" in ev.summary
    att = num["per_loss"]["pairwise attraction"]
    assert att["criterion_says_unstable"] and att["perturbation_ratio_20_steps"] < 1e-3
    assert num["per_loss"]["two-view InfoNCE"]["perturbation_ratio_20_steps"] > 10


def test_perturbation_argument_holds_with_the_right_algebra_and_criterion() -> None:
    ev = ci.check_perturbation_argument(formula=corrected_perturbation,
                                        criterion=ci.negative_curvature)  # fmt: skip
    assert ev.verdict == "holds" and ev.numbers["algebra_rel_err"] < 1e-12


@pytest.mark.parametrize(
    ("formula", "criterion", "says"),
    [
        (corrected_perturbation, ci.nonzero_gradient, "algebra matches"),  # bad inference
        (lambda c, e, p, t: corrected_perturbation(c, e, p, t) * t, ci.negative_curvature,
         "algebra wrong"),  # 1/tau dropped
        (lambda c, e, p, t: -corrected_perturbation(c, e, p, t), ci.negative_curvature,
         "algebra wrong"),  # sign
    ],
    ids=["gradient-nonzero-criterion", "missing-1-over-tau", "sign"],
)
def test_perturbation_argument_fails_for_each_wrong_half(
    formula: ci.PerturbGradFn, criterion: ci.InstabilityCriterion, says: str
) -> None:
    ev = ci.check_perturbation_argument(formula=formula, criterion=criterion)
    assert ev.verdict == "fails" and says in ev.summary


def test_perturbation_growth(claim_evidence: Get) -> None:
    rows = claim_evidence("perturbation-growth").numbers["per_loss"]
    for name, r in rows.items():
        if "control" in name:
            assert r["ratio"] < 1e-3, name
            # exact linear dynamics (quadratic losses); rel 1e-4 covers float64 rounding once
            # the spread has shrunk from 1e-3 to ~1e-10
            assert r["per_step"] == pytest.approx(r["predicted_per_step"], rel=1e-4), name
        else:
            assert r["ratio"] > 100, name
            # the dominant unstable mode grows at 1 - lr lambda_min (linear regime; a second
            # mode with a close rate can bias the last-quarter estimate by < 1%)
            assert r["per_step"] == pytest.approx(r["predicted_per_step"], rel=1e-2), name


def test_perturbation_growth_rejects_a_stable_loss() -> None:
    stable = ci.Variant("attraction", pairwise_attraction_loss, 1, False)
    assert ci.check_perturbation_growth(variants=[stable]).verdict == "fails"


def test_gradients_vanish(claim_evidence: Get) -> None:
    ev = claim_evidence("intro-gradients-vanish")
    rows = ev.numbers["per_loss"]
    assert max(r["grad_norm_at_collapse"] for r in rows.values()) < 1e-14
    for name in ("InfoNCE", "NT-Xent", "VICReg", "Barlow Twins"):
        assert rows[name]["spread_ratio_30_steps"] > 100, name
    for name in ("SimSiam (no predictor)", "BYOL (no predictor)"):
        assert rows[name]["spread_ratio_30_steps"] <= 1.0, name


def test_gradients_vanish_holds_where_collapse_is_stable() -> None:
    stuck = [v for v in ci.ssl_losses() if "no predictor" in v.name]
    ev = ci.check_gradients_vanish(variants=stuck)
    assert ev.verdict == "holds" and ev.correction is None


def test_gradients_vanish_rejects_a_loss_with_a_gradient_at_collapse() -> None:
    pull = ci.Variant("pull to origin", lambda z: z.pow(2).sum(), 2, False)
    assert ci.check_gradients_vanish(variants=[pull]).verdict == "fails"
