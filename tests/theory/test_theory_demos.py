"""The article's two demos, replayed: verdicts and the numbers that decide them.

Expected values are derived, not copied from a run: nn.Linear's default init draws weights
from U(-1/sqrt(32), 1/sqrt(32)), so each output coordinate of the untrained model has variance
32 * (1/32) / 3 = 1/3 on unit-variance inputs; an affine map of 32 input dimensions has a
centred output of rank <= 32, so 128 - 32 = 96 covariance eigenvalues are 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from collapselab.losses import variance_loss
from collapselab.theory import Evidence, article
from collapselab.theory import claims_demos as cd

Get = Callable[[str], Evidence]


def test_linear_matches_pytorch_default_init_distribution() -> None:
    layer = article.linear(32, 128, torch.Generator().manual_seed(0))
    bound = 1 / math.sqrt(32)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    # variance of U(-b, b) is b^2 / 3; 4096 draws give a 2% standard error
    assert float(layer.weight.detach().var()) == pytest.approx(bound**2 / 3, rel=0.1)
    again = article.linear(32, 128, torch.Generator().manual_seed(0))
    assert torch.equal(layer.weight, again.weight)  # explicit generator: reproducible


def test_demo1_variance(claim_evidence: Get) -> None:
    ev = claim_evidence("demo1-variance")
    for row in ev.numbers["per_seed"]:
        assert row["monotone_decreasing"]
        # unbiased z.var over 512 rows of coordinates with variance ~1/3 (20% band: the
        # 128 x 32 weights are a finite sample)
        assert row["values"][0] == pytest.approx(1 / 3, rel=0.2)
        assert row["last_over_first"] < 1e-4
        assert row["printed"][0].startswith("Step 0, variance 0.3")
        assert len(row["printed"]) == 10


def test_demo1_variance_fails_when_the_variance_is_rewarded() -> None:
    ev = cd.check_demo1_variance(loss=lambda z: -variance_loss(z), seeds=(0,), steps=101)
    assert ev.verdict == "fails"
    values = ev.numbers["per_seed"][0]["values"]
    assert values[-1] > values[0]


def test_demo1_eigenvalues(claim_evidence: Get) -> None:
    ev = claim_evidence("demo1-eigenvalues")
    for row in ev.numbers["per_seed"]:
        assert row["init_near_zero_eigenvalues"] == 96
        assert row["init_numerical_rank"] == 32
        # ascending print: the first three are ~0 before training as well
        assert max(abs(v) for v in row["init_first_three_printed"]) < 1e-5
        assert row["final_eigenvalues_above_1e-6_of_lambda_1"] == 32
        assert row["final_lambda_2_over_lambda_1"] > 0.1  # no dominant direction
        assert row["total_variance_final"] < 1e-5 * row["total_variance_init"]
        # the uncentred second moment is dominated by the untouched bias: mu_1 = |b|^2
        assert row["final_uncentred_mu_1"] == pytest.approx(row["bias_norm_squared"], rel=1e-3)
        assert row["final_uncentred_mu_2_over_mu_1"] < 1e-4
        assert "e-" in row["final_printout_head"]  # torch prints scientific notation


def test_demo2_min_eig(claim_evidence: Get) -> None:
    ev = claim_evidence("demo2-min-eig")
    row = ev.numbers["per_seed"][0]
    assert row["all_within_noise"]
    assert row["near_zero_eigenvalues_init"] == row["near_zero_eigenvalues_final"] == 96
    assert row["rank_cap"] == 32
    assert row["smallest_nonzero_final"] > row["smallest_nonzero_init"]
    # the self-pair loss is nearly solved at initialisation (collapse would be log 512)
    assert row["loss_first_print"] < 0.01 * row["loss_at_collapse_log_n"]
    assert len(row["printed"]) == 10
    fixed, capped = ev.numbers["corrected_linear_128_to_128"], ev.numbers[
        "corrected_loss_article_encoder_32_to_128"]
    assert fixed["min_eig_final"] > 100 * fixed["min_eig_init"]
    assert fixed["effective_rank_final"] > 1.2 * fixed["effective_rank_init"]
    # normalised rows of a rank-33 affine image: the covariance keeps >= 95 zero eigenvalues
    assert capped["min_eig_final"] < 1e-12
