"""InfoNCE, NT-Xent and the blockwise log-sum-exp, against loops written from the papers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from collapselab.errors import ConfigError, InputError
from collapselab.losses import InfoNCELoss, NTXentLoss, contrastive_logsumexp, info_nce, nt_xent

F64 = torch.float64


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed))


def _lse(values: list[float]) -> float:
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / math.sqrt(float(v @ v))


def info_nce_loop(a, p, c=None, tau=0.1, normalize=True) -> float:  # type: ignore[no-untyped-def]
    # van den Oord Eq. 4 / article: L_i = -s(a_i, p_i) + log sum_k exp s(a_i, k).
    n = a.shape[0]
    rows = [_unit(r) if normalize else r for r in a]
    pos = [_unit(r) if normalize else r for r in p]
    total = 0.0
    for i in range(n):
        s_pos = float(rows[i] @ pos[i]) / tau
        if c is None:
            cands = [float(rows[i] @ pos[k]) / tau for k in range(n)]
        else:
            negs = [_unit(r) if normalize else r for r in c]
            cands = [s_pos] + [float(rows[i] @ q) / tau for q in negs]
        total += _lse(cands) - s_pos
    return total / n


def nt_xent_loop(z1, z2, tau=0.1, normalize=True) -> float:  # type: ignore[no-untyped-def]
    # SimCLR Eq. 1: l(i, j) = -log exp(s_ij/tau) / sum_{k != i} exp(s_ik/tau), mean over 2N.
    n = z1.shape[0]
    z = [(_unit(r) if normalize else r) for r in torch.cat([z1, z2])]
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        cands = [float(z[i] @ z[k]) / tau for k in range(2 * n) if k != i]
        total += _lse(cands) - float(z[i] @ z[j]) / tau
    return total / (2 * n)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_info_nce_matches_loop(normalize: bool, tau: float) -> None:
    a, p, c = _rand(6, 4, seed=1), _rand(6, 4, seed=2), _rand(5, 4, seed=3)
    ref = info_nce_loop(a, p, None, tau, normalize)
    assert info_nce(a, p, temperature=tau, normalize=normalize).item() == pytest.approx(ref)
    ref_c = info_nce_loop(a, p, c, tau, normalize)
    got_c = info_nce(a, p, c, temperature=tau, normalize=normalize).item()
    assert got_c == pytest.approx(ref_c)


@pytest.mark.parametrize("normalize", [True, False])
def test_nt_xent_matches_loop(normalize: bool) -> None:
    z1, z2 = _rand(5, 3, seed=4), _rand(5, 3, seed=5)
    for tau in (0.1, 0.7):
        ref = nt_xent_loop(z1, z2, tau, normalize)
        assert nt_xent(z1, z2, tau, normalize).item() == pytest.approx(ref, rel=1e-12)
        assert NTXentLoss(tau, normalize)(z1, z2).item() == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_collapsed_values(n: int) -> None:
    c = torch.ones(n, 16) * 0.3
    assert nt_xent(c, c).item() == pytest.approx(math.log(2 * n - 1), abs=1e-5)
    assert nt_xent(c, c, block_size=2).item() == pytest.approx(math.log(2 * n - 1), abs=1e-5)
    assert info_nce(c, c).item() == pytest.approx(math.log(n), abs=1e-5)


def test_article_gradient_of_the_anchor_term() -> None:
    # Article: grad_{z_i} L_i = (1/tau) (sum_k P(k|i) z_k - z_i^+), anchor term only
    # (anchors separate from the candidate set, no normalisation).
    tau = 0.3
    a = _rand(5, 4, seed=6).requires_grad_(True)
    p = _rand(5, 4, seed=7)
    loss_sum = info_nce(a, p, temperature=tau, normalize=False) * a.shape[0]
    (g,) = torch.autograd.grad(loss_sum, a)
    probs = torch.softmax(a.detach() @ p.T / tau, dim=1)  # P(k|i), (N, N)
    expected = (probs @ p - p) / tau
    torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block_size", [None, 2])
def test_full_gradients_match_finite_differences(block_size: int | None) -> None:
    # z_i also appears as a candidate of every other row: check the full gradient in float64.
    z1, z2 = _rand(4, 3, seed=8).requires_grad_(True), _rand(4, 3, seed=9).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, y: nt_xent(x, y, temperature=0.5, block_size=block_size), (z1, z2)
    )
    # The article's self-pair form: anchors == positives == candidates.
    z = _rand(5, 3, seed=10).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x: info_nce(x, x, temperature=0.5, normalize=False, block_size=block_size), (z,)
    )
    c = _rand(3, 3, seed=11).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, y, q: info_nce(x, y, q, temperature=0.5, block_size=block_size), (z1, z2, c)
    )


@pytest.mark.parametrize("block_size", [1, 3, 8, 64])
def test_blockwise_equals_plain(block_size: int) -> None:
    torch.manual_seed(0)
    z1 = torch.randn(21, 8, requires_grad=True)
    z2 = torch.randn(21, 8, requires_grad=True)
    c = torch.randn(13, 8, requires_grad=True)
    for fn in (
        lambda bs: nt_xent(z1, z2, block_size=bs),
        lambda bs: info_nce(z1, z2, block_size=bs),
        lambda bs: info_nce(z1, z2, c, temperature=0.2, block_size=bs),
    ):
        plain, blocked = fn(None), fn(block_size)
        g_plain = torch.autograd.grad(plain, [z1, z2, c], allow_unused=True)
        g_block = torch.autograd.grad(blocked, [z1, z2, c], allow_unused=True)
        torch.testing.assert_close(blocked, plain, rtol=1e-6, atol=1e-6)  # float32 rounding
        for gp, gb in zip(g_plain, g_block, strict=True):
            assert (gp is None) == (gb is None)
            if gp is not None:
                torch.testing.assert_close(gb, gp, rtol=1e-5, atol=1e-7)


def test_logsumexp_core_against_torch() -> None:
    a, c = _rand(6, 5, seed=12).requires_grad_(True), _rand(9, 5, seed=13).requires_grad_(True)
    exclude = torch.tensor([0, 3, 8, 1, 1, 5])
    for bs in (None, 4):
        lse = contrastive_logsumexp(a, c, 2.5, exclude, bs)
        logits = 2.5 * a @ c.T
        mask = F.one_hot(exclude, 9).bool()
        ref = torch.logsumexp(logits.masked_fill(mask, float("-inf")), dim=1)
        torch.testing.assert_close(lse, ref, rtol=1e-12, atol=1e-12)
        w = _rand(6, seed=14)
        g = torch.autograd.grad((lse * w).sum(), [a, c])
        gr = torch.autograd.grad((ref * w).sum(), [a, c])
        for x, y in zip(g, gr, strict=True):
            torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_nt_xent_symmetric_in_views_and_scale_invariant() -> None:
    z1, z2 = _rand(6, 4, seed=15), _rand(6, 4, seed=16)
    assert nt_xent(z1, z2).item() == pytest.approx(nt_xent(z2, z1).item(), rel=1e-12)
    assert nt_xent(3 * z1, 0.5 * z2).item() == pytest.approx(nt_xent(z1, z2).item(), rel=1e-12)
    # a row permutation applied to both views permutes the anchors only
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    assert nt_xent(z1[perm], z2[perm]).item() == pytest.approx(nt_xent(z1, z2).item(), rel=1e-12)


def test_perfectly_separated_views_drive_loss_to_zero() -> None:
    z = torch.eye(8, dtype=F64)  # orthogonal rows, both views identical
    loss = nt_xent(z, z, temperature=0.01).item()
    assert 0 < loss < 1e-40 or loss == 0.0
    assert info_nce(z, z, temperature=0.01).item() < 1e-40


def test_module_forms_and_errors() -> None:
    a, p = _rand(4, 3, seed=17), _rand(4, 3, seed=18)
    assert InfoNCELoss(0.2)(a, p).item() == pytest.approx(info_nce(a, p, temperature=0.2).item())
    with pytest.raises(InputError, match="positives: shape"):
        info_nce(a, p[:3])
    with pytest.raises(InputError, match="candidates: feature size"):
        info_nce(a, p, _rand(2, 5))
    with pytest.raises(InputError, match="z2: shape"):
        nt_xent(a, p[:, :2])
    with pytest.raises(ConfigError, match="temperature"):
        nt_xent(a, p, temperature=0.0)
    with pytest.raises(ConfigError, match="block_size"):
        NTXentLoss(block_size=0)
    with pytest.raises(InputError, match="expected a floating-point"):
        nt_xent(torch.ones(3, 2, dtype=torch.int64), torch.ones(3, 2, dtype=torch.int64))


@pytest.mark.parametrize("block_size", [None, 4])
def test_no_grad_value_and_repeated_backward(block_size: int | None) -> None:
    z1, z2 = _rand(6, 3, seed=19).requires_grad_(True), _rand(6, 3, seed=20)
    loss = nt_xent(z1, z2, block_size=block_size)
    with torch.no_grad():
        assert nt_xent(z1, z2, block_size=block_size).item() == loss.item()
    (g1,) = torch.autograd.grad(loss, z1, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, z1)  # backward does not consume its saved buffers
    assert torch.equal(g1, g2)
