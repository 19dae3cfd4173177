"""Rank / small-eigenvalue claims, the energy reading and the particle analogy."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from collapselab.losses import info_nce, nt_xent, pairwise_attraction_loss
from collapselab.theory import Finding
from collapselab.theory import claims_analogies as ca
from collapselab.theory import claims_rank as cr

Get = Callable[[str], Finding]


def test_rank_maximised(claim_evidence: Get) -> None:
    ev = claim_evidence("rank-maximised")
    num = ev.numbers
    # a counterexample in the article's own setting (raw dot products): fails, with the
    # normalised statement as the correction
    assert ev.verdict == "fails" and ev.correction and "rank-2" in ev.correction
    best = num["normalised_optimum_by_rank"]
    # N = 8 unit vectors, tau = 0.2: rank 1 allows only +-u, i.e. each point has 4 copies
    # (itself included) among 8 candidates at the same logit: log 4 (Adam reaches it exactly
    # up to the exp(-2/tau) ~ 5e-5 weight of the antipodal four)
    assert best["1"] == pytest.approx(math.log(4), abs=1e-3)
    assert best["1"] > best["2"] > best["4"] > best["7"]
    # rank N - 1 reaches the regular simplex; more dimensions do not help (Adam residual 1e-6)
    sweep = {r["tau"]: r for r in num["tau_sweep"]}
    assert best["7"] == pytest.approx(sweep[0.2]["simplex"], abs=1e-6)
    assert best["8"] == pytest.approx(sweep[0.2]["simplex"], abs=1e-6)
    assert num["normalised_optimum_first_reached_at_rank"] == 7
    assert num["optimum_numerical_rank"] == 7
    raw = num["raw_loss_by_scale"]
    assert raw["10.0"]["rank_2_ring"] < 1e-10  # a rank-2 ring reaches the infimum by scaling
    assert num["raw_rank_2_suffices"]
    assert num["ring_effective_rank"] == pytest.approx(2.0, abs=1e-9)
    # the simplex is centred: unit rows reach the largest possible total variance, 1
    assert num["optimum_total_variance_of_unit_rows"] == pytest.approx(1.0, abs=1e-6)


def test_rank_tau_sweep_against_closed_forms() -> None:
    n = 8
    rows = cr.rank_tau_sweep(n, n, (0.05, 0.2, 1.0, 5.0, 50.0, 500.0))
    for r in rows:
        # the library loss at the simplex and the antipodal pair = their closed forms
        # the loss is a difference of logits of size 1/tau (20 at tau 0.05): its float64
        # round-off is a few 1/tau * eps (~1e-14), whatever the loss's own size (8e-10 there)
        assert r["simplex"] == pytest.approx(r["simplex_closed_form"], rel=1e-6,
                                             abs=64 * 2.2e-16 / r["tau"])  # fmt: skip
        assert r["antipodal"] == pytest.approx(r["antipodal_closed_form"], rel=1e-12)
        assert r["first_order_collapsed"] == pytest.approx(1.0, rel=1e-9)  # |mean u|^2 = 1
    big = rows[-1]
    # large tau: rank bonus -> (N-2)/(2(N-1) tau^2) and the antipodal first-order term -> 0
    # (both with O(1/tau) relative corrections: 1/500)
    assert big["rank_bonus_times_tau_squared"] == pytest.approx((n - 2) / (2 * (n - 1)),
                                                                rel=5e-3)  # fmt: skip
    assert abs(big["first_order_antipodal"]) < 2e-3
    bonus = [r["rank_bonus"] for r in rows]
    assert all(b < a for a, b in zip(bonus, bonus[1:], strict=False))


def test_rank_maximised_fails_for_a_constant_loss_and_a_rank_penalty() -> None:
    def rank_penalty(z: torch.Tensor) -> torch.Tensor:
        s = torch.linalg.svdvals(F.normalize(z, dim=1))
        return (s**2).sum() - s[0] ** 2  # energy outside the top direction

    constant = cr.check_rank_maximised(loss=lambda z: z.sum() * 0 + 1.0, steps=20, taus=(1.0,))
    assert constant.verdict == "fails"
    penalty = cr.check_rank_maximised(loss=rank_penalty, steps=100, taus=(1.0,))
    assert penalty.verdict == "fails"
    assert penalty.numbers["normalised_optimum_first_reached_at_rank"] == 1


def test_rank_maximised_holds_when_the_raw_loss_is_normalised_too() -> None:
    ev = cr.check_rank_maximised(raw_loss=lambda z: info_nce(z, z, temperature=0.2),
                                 ranks=(1, 2, 7), taus=(1.0,))  # fmt: skip
    assert ev.verdict == "holds" and not ev.numbers["raw_rank_2_suffices"]
    # the same run with the article's raw loss: the rank-2 ring is the counterexample
    raw = cr.check_rank_maximised(ranks=(1, 2, 7), taus=(1.0,))
    assert raw.verdict == "fails" and raw.numbers["raw_rank_2_suffices"]
    assert raw.numbers["raw_loss_by_scale"]["10.0"]["rank_2_ring"] < 1e-10


def test_small_eigenvalues_grow(claim_evidence: Get) -> None:
    sides = claim_evidence("small-eigenvalues-grow").numbers["per_side"]
    weak, strong = sides["weak"], sides["strong_in_half"]
    assert weak["smaller_half_grew"] == 8
    assert weak["effective_rank_after"] > weak["effective_rank_before"] + 3
    assert strong["eigenvalues_below_1e-6_of_largest_after"] == 8
    assert strong["effective_rank_after"] == pytest.approx(8.0, abs=0.2)


def test_small_eigenvalues_check_fails_for_alignment_alone() -> None:
    def alignment_only(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (F.normalize(a, dim=1) - F.normalize(b, dim=1)).pow(2).sum(dim=1).mean()

    assert cr.check_small_eigenvalues_grow(loss=alignment_only, steps=100).verdict == "fails"


def test_energy_softmax(claim_evidence: Get) -> None:
    num = claim_evidence("energy-softmax").numbers
    assert num["max_abs_err_probabilities"] < 1e-12
    assert num["rel_err_loss_as_free_energy"] < 1e-12
    assert num["dL_dE_positive_min"] > 0 > num["dL_dE_negative_max"]


def test_energy_softmax_rejects_the_wrong_sign() -> None:
    assert ca.check_energy_softmax(energy=lambda a, c: a @ c.T).verdict == "fails"


def test_energy_collapse(claim_evidence: Get) -> None:
    ev = claim_evidence("energy-collapse")
    num = ev.numbers
    col, orth = num["collapsed"], num["structured"]
    assert ev.verdict == "fails" and ev.correction and "free energy" in ev.correction
    assert col["energy_range"] == 0.0
    assert col["loss"] == pytest.approx(math.log(4), rel=1e-12)
    assert orth["loss"] < col["loss"]
    assert col["mean_negative_pair_energy"] == pytest.approx(-1.0, abs=1e-12)  # the minimum
    assert orth["mean_negative_pair_energy"] == pytest.approx(0.0, abs=1e-12)
    run = num["descent_from_perturbed_collapse"]
    assert run["end"]["mean_pair_energy"] > run["start"]["mean_pair_energy"] + 0.5
    # raw embeddings: the mean over all pairs, -|mean z|^2, barely moves
    raw_run = num["raw_descent_from_perturbed_collapse"]
    assert abs(raw_run["end"]["mean_pair_energy"] - raw_run["start"]["mean_pair_energy"]) < 0.05
    raw = num["raw_energy_at_collapse_by_norm"]
    assert raw["100.0"] == pytest.approx(-1e4, rel=1e-12)  # -|c|^2, unbounded below


def test_energy_collapse_flips_with_the_energy_and_the_loss() -> None:
    # with the opposite energy, descent does lower it: the statement becomes true
    assert ca.check_energy_collapse(energy=lambda a, c: a @ c.T).verdict == "holds"
    # a loss that prefers collapse does not penalise it
    ev = ca.check_energy_collapse(energy=lambda a, c: a @ c.T, loss=pairwise_attraction_loss)
    assert ev.verdict == "fails"


def test_energy_collapse_positives(claim_evidence: Get) -> None:
    ev = claim_evidence("energy-collapse-positives")
    num = ev.numbers
    assert ev.verdict == "holds" and ev.correction is None
    assert num["collapsed"]["energy_range"] == 0.0
    assert num["structured"]["loss"] < num["collapsed"]["loss"]
    run = num["descent_from_perturbed_collapse"]
    # raw embeddings: the positives' energy -|z_i|^2 falls, the negatives' rises
    assert run["end"]["mean_positive_pair_energy"] < run["start"]["mean_positive_pair_energy"] - 1
    assert run["end"]["mean_negative_pair_energy"] > run["start"]["mean_negative_pair_energy"]
    assert run["end"]["loss"] < 0.01
    # unit vectors, self-pairs: the positive energy is -1 throughout
    unit = num["unit_vectors_descent"]
    for side in ("start", "end"):
        assert unit[side]["mean_positive_pair_energy"] == pytest.approx(-1.0, abs=1e-12)


def test_energy_collapse_positives_flips_with_the_setting_and_the_energy() -> None:
    # unit vectors (normalised loss): the positives' energy cannot fall below -1
    unit = ca.check_energy_collapse_positives(unit=True)
    assert unit.verdict == "fails" and unit.correction
    # the opposite energy: descent raises it
    assert ca.check_energy_collapse_positives(energy=lambda a, c: a @ c.T).verdict == "fails"


def test_charged_particles(claim_evidence: Get) -> None:
    ev = claim_evidence("charged-particles")
    num = ev.numbers
    assert ev.verdict == "holds-with-correction"
    assert num["nt_xent_equals_alignment_plus_gaussian_log_sum_abs_err"] < 1e-12
    runs = num["runs"]
    assert runs["attraction only"]["resultant_length"] == pytest.approx(1.0, abs=1e-9)
    assert runs["loss under test"]["resultant_length"] < 0.05
    assert runs["loss under test"]["alignment_of_pairs"] < 1e-6
    # 8 merged pairs evenly spread: the largest gap approaches 1/8 of the circle
    assert runs["loss under test"]["largest_gap_over_2pi"] == pytest.approx(1 / 8, abs=0.01)
    assert num["force_at_exact_collapse"] < 1e-14
    assert num["loss_at_exact_collapse"] == pytest.approx(math.log(15), rel=1e-12)  # log(2N-1)
    # pair force of exp(-t r^2), t = 1/(2 tau) = 1: 2 t r exp(-t r^2), 0 at r = 0
    for r, f in num["pair_force_by_distance"].items():
        assert f == pytest.approx(2 * float(r) * math.exp(-float(r) ** 2), rel=1e-2, abs=1e-15)
    assert num["pair_force_by_distance"]["0"] == 0.0
    assert num["uniformity_at_collapse"] == 0.0  # finite potential at coincidence
    assert num["gaussian_repulsion_at_collapse"] == 0.0


def barrier_loss(pairs: int, tau: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """NT-Xent plus a tiny logarithmic (2-D Coulomb) repulsion between non-partners: infinite
    at coincidence, negligible elsewhere."""

    def f(z: torch.Tensor) -> torch.Tensor:
        m = z.shape[0]
        mask = torch.ones(m, m, dtype=torch.bool).triu(1)
        mask[torch.arange(pairs), torch.arange(pairs) + pairs] = False
        return nt_xent(z[:pairs], z[pairs:], temperature=tau) - 1e-7 * torch.log(
            torch.cdist(z, z)[mask]).sum()

    return f


def test_charged_particles_flips_with_the_repulsion() -> None:
    # a singular repulsion excludes collapse: the statement holds as printed
    assert ca.check_charged_particles(loss=barrier_loss).verdict == "holds"
    # attraction alone does not spread the points
    ev = ca.check_charged_particles(loss=lambda p, t: pairwise_attraction_loss, lr=0.2 / 64)
    assert ev.verdict == "fails"


def test_gaussian_repulsion_is_the_metrics_uniformity() -> None:
    from collapselab.metrics.geometry import uniformity

    u = F.normalize(torch.randn(7, 3, generator=torch.Generator().manual_seed(2),
                                dtype=torch.float64), dim=1)  # fmt: skip
    assert float(ca.gaussian_repulsion(u, 2.0)) == pytest.approx(uniformity(u), rel=1e-12)


def test_nt_xent_identity_on_random_unit_vectors() -> None:
    g = torch.Generator().manual_seed(5)
    u = F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    tau = 0.3
    sq = torch.cdist(u, u).pow(2) / (2 * tau)
    sq.fill_diagonal_(math.inf)
    partner = torch.tensor([3, 4, 5, 0, 1, 2])
    rewritten = (sq[torch.arange(6), partner] + torch.logsumexp(-sq, dim=1)).mean()
    assert float(rewritten) == pytest.approx(float(nt_xent(u[:3], u[3:], temperature=tau)),
                                             rel=1e-12)  # fmt: skip


def test_small_eigenvalues_grow_holds_when_no_direction_is_noise_dominated() -> None:
    # the condition the article leaves out, met: weak augmentation in every direction
    ev = cr.check_small_eigenvalues_grow(strong=0.1)
    assert ev.verdict == "holds" and ev.correction is None
