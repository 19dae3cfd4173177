"""Rank / small-eigenvalue claims, the energy reading and the particle analogy."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from collapselab.losses import nt_xent
from collapselab.theory import Evidence
from collapselab.theory import claims_analogies as ca
from collapselab.theory import claims_rank as cr

Get = Callable[[str], Evidence]


def test_rank_maximised(claim_evidence: Get) -> None:
    num = claim_evidence("rank-maximised").numbers
    best = num["normalised_optimum_by_rank"]
    # N = 8 unit vectors, tau = 0.2: rank 1 allows only +-u, i.e. each point has 4 copies
    # (itself included) among 8 candidates at the same logit: log 4 (Adam reaches it exactly
    # up to the exp(-2/tau) ~ 5e-5 weight of the antipodal four)
    assert best["1"] == pytest.approx(math.log(4), abs=1e-3)
    assert best["1"] > best["2"] > best["4"] > best["7"]
    # rank N - 1 reaches the regular simplex; more dimensions do not help (Adam residual 1e-6)
    assert best["7"] == pytest.approx(num["simplex_value"], abs=1e-6)
    assert best["8"] == pytest.approx(num["simplex_value"], abs=1e-6)
    raw = num["raw_dot_product_loss_by_scale"]
    assert raw["10"]["rank_2_ring"] < 1e-10  # a rank-2 ring reaches the infimum by scaling
    assert num["ring_effective_rank"] == pytest.approx(2.0, abs=1e-9)
    # the simplex is centred: unit rows reach the largest possible total variance, 1
    assert num["optimum_total_variance_of_unit_rows"] == pytest.approx(1.0, abs=1e-6)


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
    num = claim_evidence("energy-collapse").numbers
    col, orth = num["collapsed"], num["structured"]
    assert col["energy_range"] == 0.0
    assert col["self_pair_loss"] == pytest.approx(math.log(4), rel=1e-12)
    assert col["nt_xent_loss"] == pytest.approx(math.log(7), rel=1e-12)
    assert orth["self_pair_loss"] < col["self_pair_loss"]
    assert col["mean_negative_pair_energy"] == pytest.approx(-1.0, abs=1e-12)  # the minimum
    assert orth["mean_negative_pair_energy"] == pytest.approx(0.0, abs=1e-12)


def test_charged_particles(claim_evidence: Get) -> None:
    num = claim_evidence("charged-particles").numbers
    assert num["nt_xent_equals_alignment_plus_gaussian_log_sum_abs_err"] < 1e-12
    runs = num["runs"]
    assert runs["attraction only"]["resultant_length"] == pytest.approx(1.0, abs=1e-9)
    assert runs["NT-Xent"]["resultant_length"] < 0.05
    assert runs["NT-Xent"]["alignment_of_pairs"] < 1e-6
    # 8 merged pairs evenly spread: the largest gap approaches 1/8 of the circle
    assert runs["NT-Xent"]["largest_gap_over_2pi"] == pytest.approx(1 / 8, abs=0.01)
    assert runs["Gaussian repulsion only"]["resultant_length"] < 0.05
    assert num["force_at_exact_collapse"] < 1e-14
    assert num["pair_force_by_distance"]["0"] == 0.0
    assert num["uniformity_at_collapse"] == 0.0  # finite potential at coincidence


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
