"""Every registered method: one interface, finite loss, gradients where they belong."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from collapselab import losses as L
from collapselab.errors import ConfigError
from collapselab.methods import METHODS, EMATeacher, build_method, make_config
from collapselab.models import BatchNorm, MLPHead, build_encoder

EXPECTED = [
    "alignment", "variance", "simclr", "moco", "byol", "byol-no-predictor", "simsiam",
    "simsiam-no-stopgrad", "dino", "barlow", "vicreg",
]  # fmt: skip


def views(b: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 8, 8, generator=g), torch.rand(b, 1, 8, 8, generator=g)


def small(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_method(name, build_encoder("cnn", (1, 8, 8)))


def test_registry_holds_every_method() -> None:
    assert sorted(METHODS) == sorted(EXPECTED)
    collapse = {n for n, c in METHODS.items() if c.collapse_expected}
    assert collapse == {"alignment", "variance", "byol-no-predictor", "simsiam-no-stopgrad"}


@pytest.mark.parametrize("name", EXPECTED)
def test_step_returns_loss_terms_and_detached_embeddings(name: str) -> None:
    m = small(name)
    if name == "moco":  # the queue starts empty: the first step has no negatives (loss 0)
        assert float(m(*views(seed=1)).loss.detach()) == 0.0
    out = m(*views())
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.terms["loss"] == pytest.approx(float(out.loss.detach()), rel=1e-6)
    assert all(isinstance(v, float) for v in out.terms.values())
    assert out.embeddings.shape[0] == 16 and out.embeddings.ndim == 2
    assert not out.embeddings.requires_grad
    assert out.paired is not None and out.paired.shape == out.embeddings.shape
    out.loss.backward()
    grads = [p.grad for p in m.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)
    # the monitor watches the representation, the same rows `embed` gives in eval mode
    assert out.embeddings.shape == (16, m.feature_dim)
    m.eval()
    x = views()[0]
    assert m.embed(x).shape == (16, m.feature_dim)
    assert m.project(x).ndim == 2


@pytest.mark.parametrize("name", ["moco", "byol", "byol-no-predictor", "dino"])
def test_teachers_get_no_gradient_and_follow_the_ema(name: str) -> None:
    m = small(name)
    teacher = next(mod for mod in m.modules() if isinstance(mod, EMATeacher))
    student = m.online if hasattr(m, "online") else m.student
    before = [p.detach().clone() for p in teacher.module.parameters()]
    m(*views(seed=1))  # (fills MoCo's queue)
    out = m(*views())
    out.loss.backward()
    assert all(p.grad is None and not p.requires_grad for p in teacher.module.parameters())
    with torch.no_grad():  # move the student, then apply one EMA step
        for p in student.parameters():
            p.add_(0.1)
    mom = teacher.momentum(3, 10)
    m.after_optimizer_step(3, 10)
    for t, t0, s in zip(teacher.module.parameters(), before, student.parameters(), strict=True):
        torch.testing.assert_close(t, mom * t0 + (1 - mom) * s, rtol=1e-6, atol=1e-7)


def test_byol_momentum_schedule_is_cosine_to_one() -> None:
    m = small("byol")
    t = m.target
    assert t.momentum(0, 100) == pytest.approx(0.99)
    assert t.momentum(50, 100) == pytest.approx(1 - 0.01 * 0.5)
    assert t.momentum(100, 100) == pytest.approx(1.0)
    assert small("moco").key_encoder.momentum(50, 100) == pytest.approx(0.99)  # constant


def test_simsiam_without_stopgrad_same_value_different_gradient() -> None:
    a, b = small("simsiam"), small("simsiam-no-stopgrad")
    b.load_state_dict(a.state_dict())
    va, vb = a(*views()), b(*views())
    assert float(va.loss.detach()) == pytest.approx(float(vb.loss.detach()), rel=1e-6)
    va.loss.backward()
    vb.loss.backward()
    ga = a.projector.net[-2].weight.grad  # last linear layer of the projector
    gb = b.projector.net[-2].weight.grad
    assert not torch.allclose(ga, gb)


def test_byol_without_predictor_has_identity_predictor() -> None:
    m = small("byol-no-predictor")
    assert isinstance(m.predictor, torch.nn.Identity)
    assert isinstance(small("byol").predictor, MLPHead)


def test_moco_queue_fills_with_unit_keys() -> None:
    m = small("moco")
    assert int(m.queue.count) == 0
    m(*views(b=16))
    m(*views(b=16, seed=1))
    assert int(m.queue.count) == 32
    torch.testing.assert_close(m.queue.current().norm(dim=1), torch.ones(32))


def test_dino_centre_moves_towards_teacher_mean() -> None:
    m = small("dino")
    assert float(m.loss_fn.center.abs().sum()) == 0.0
    m(*views())
    assert float(m.loss_fn.center.abs().sum()) > 0.0


def test_configs_document_overrides_and_reject_bad_options() -> None:
    for name, cls in METHODS.items():
        cfg = make_config(name)
        assert dataclasses.is_dataclass(cfg) and cfg.lr > 0, name
        assert isinstance(cfg, cls.config_class)
    cfg = make_config("simclr", {"temperature": "0.5", "proj_dim": "64"})
    assert cfg.temperature == 0.5 and cfg.proj_dim == 64  # type: ignore[attr-defined]
    assert make_config("simsiam", {"fixed_predictor_lr": "false"}).fixed_predictor_lr is False  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="has no option 'tau'"):
        make_config("simclr", {"tau": 0.1})
    with pytest.raises(ConfigError, match=r"simclr.proj_dim: expected int"):
        make_config("simclr", {"proj_dim": "wide"})
    with pytest.raises(ConfigError, match="unknown method"):
        build_method("swav", build_encoder("mlp", (4,)))


def test_param_groups_exempt_biases_and_norms_and_fix_predictor_lr() -> None:
    m = small("simsiam")
    groups = m.param_groups(0.1)
    names = {id(p): n for n, p in m.named_parameters()}
    for g in groups:
        for p in g["params"]:
            assert (g["weight_decay"] == 0.0) == (p.ndim <= 1), names[id(p)]
    pred = {id(p) for p in m.predictor.parameters()}
    fixed = {id(p) for g in groups if g.get("fixed_lr") for p in g["params"]}
    assert fixed == pred
    assert sum(len(g["params"]) for g in groups) == len(list(m.parameters()))


@pytest.mark.parametrize("shape", [(32, 6), (32, 6, 4, 4)])
def test_batchnorm_matches_torch(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = (torch.randn(*shape) * 3 + 1).double().requires_grad_()
    ours = BatchNorm(6).double()
    ref = (torch.nn.BatchNorm1d(6) if len(shape) == 2 else torch.nn.BatchNorm2d(6)).double()
    y1, y2 = ours(x), ref(x)
    torch.testing.assert_close(y1, y2)
    w = torch.randn_like(y1)
    (g1,) = torch.autograd.grad((y1 * w).sum(), x)
    (g2,) = torch.autograd.grad((y2 * w).sum(), x)
    torch.testing.assert_close(g1, g2)
    torch.testing.assert_close(ours.running_mean, ref.running_mean)
    torch.testing.assert_close(ours.running_var, ref.running_var)
    ours.eval()
    ref.eval()
    torch.testing.assert_close(ours(x), ref(x))


def test_byol_predictor_learns_ten_times_faster() -> None:
    from collapselab.train.config import TrainConfig
    from collapselab.train.trainer import _make_optimizer

    m = small("byol")
    pred = {id(p) for p in m.predictor.parameters()}
    opt = _make_optimizer(m, TrainConfig(), lr=1e-3, wd=0.0)
    for g in opt.param_groups:
        in_pred = {id(p) in pred for p in g["params"]}
        assert len(in_pred) == 1  # a group is all predictor or all the rest
        assert g["base_lr"] == pytest.approx(1e-2 if in_pred.pop() else 1e-3)


def _by_hand(name: str, m: torch.nn.Module, v1: torch.Tensor, v2: torch.Tensor,
             state: dict[str, torch.Tensor]) -> torch.Tensor:  # fmt: skip
    """The loss of ``name`` from a direct call of its function in collapselab.losses on the
    method's own heads, written from the papers (view 1's prediction against view 2's
    target and the reverse; the configured temperatures and weights)."""
    c: Any = m.config
    h1, h2 = m.encoder(v1), m.encoder(v2)
    if name == "dino":
        s1, s2 = m.head(h1), m.head(h2)
        t1, t2 = m.teacher(v1), m.teacher(v2)
        return L.dino_loss([s1, s2], [t1, t2], state["center"], c.student_temp, c.teacher_temp)
    z1, z2 = m.projector(h1), m.projector(h2)
    if name == "simclr":
        return L.nt_xent(z1, z2, temperature=c.temperature)
    if name == "moco":
        k1, k2 = m.key_encoder(v1), m.key_encoder(v2)
        q = state["queue"]
        return 0.5 * (L.moco_loss(z1, k2, q, c.temperature) + L.moco_loss(z2, k1, q, c.temperature))
    if name in ("byol", "byol-no-predictor"):
        p1, p2 = m.predictor(z1), m.predictor(z2)
        t1, t2 = m.target(v1), m.target(v2)
        return L.normalized_mse(p1, t2) + L.normalized_mse(p2, t1)
    if name in ("simsiam", "simsiam-no-stopgrad"):
        p1, p2 = m.predictor(z1), m.predictor(z2)
        return 0.5 * L.negative_cosine(p1, z2) + 0.5 * L.negative_cosine(p2, z1)
    if name == "barlow":
        return L.barlow_twins_loss(z1, z2, lambda_=c.lambda_)
    if name == "vicreg":
        return L.vicreg_loss(z1, z2, c.invariance_weight, c.variance_weight, c.covariance_weight)
    if name == "alignment":
        return ((z1 - z2) ** 2).sum(dim=1).mean()  # the mean over pairs of ||z1_i - z2_i||^2
    assert name == "variance"
    return L.variance_loss(torch.cat([z1, z2]))


@pytest.mark.parametrize("name", EXPECTED)
def test_step_feeds_the_right_views_into_the_right_loss(name: str) -> None:
    m = small(name)
    if name == "moco":
        m(*views(seed=2))  # a non-empty queue: the loss then depends on the negatives
    # the state a step reads before it updates it (MoCo's queue, DINO's centre); a second
    # pair of views gives DINO a non-zero centre
    if name == "dino":
        m(*views(seed=2))
    state = {"queue": m.queue.current().clone() if name == "moco" else torch.empty(0),
             "center": m.loss_fn.center.clone() if name == "dino" else torch.empty(0)}  # fmt: skip
    v1, v2 = views(seed=3)
    got = m(v1, v2).loss
    # train-mode batch norm uses the batch's statistics: the heads give the same outputs
    want = _by_hand(name, m, v1, v2, state)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    if name == "variance":
        return  # the variance of all 2B rows does not see which rows are pairs
    # the pairing is observable: pairing each v1 image with another image's v2 changes it
    perm = torch.arange(v2.shape[0]).roll(1)
    other = _by_hand(name, m, v1, v2[perm], state)
    assert not torch.allclose(got, other, rtol=1e-4, atol=1e-6), name
