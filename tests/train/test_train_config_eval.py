"""TrainConfig (TOML + CLI precedence) and the evaluation protocols."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from collapselab.errors import ConfigError, InputError
from collapselab.train.config import TrainConfig, build_config, load_toml
from collapselab.train.evaluate import (
    evaluate_features,
    few_label_accuracy,
    knn_accuracy,
    linear_probe_accuracy,
)


def test_toml_then_cli_precedence(tmp_path: Path) -> None:
    f = tmp_path / "run.toml"
    f.write_text(
        'method = "byol"\nepochs = 7\nlr = 1e-3\n'
        "[method_options]\nmomentum = 0.98\nproj_dim = 64\n"
        "[augment_options]\nmax_rotation = 5.0\n"
    )
    cfg = build_config(f, {"epochs": 3}, {"proj_dim": 32})
    assert cfg.method == "byol" and cfg.epochs == 3 and cfg.lr == 1e-3
    assert cfg.method_options == {"momentum": 0.98, "proj_dim": 32}
    assert cfg.augment_options == {"max_rotation": 5.0}
    assert build_config().method == "simclr"


def test_toml_errors_name_the_file_and_key(tmp_path: Path) -> None:
    f = tmp_path / "bad.toml"
    f.write_text("epocs = 3\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown setting 'epocs'"):
        load_toml(f)
    f.write_text('epochs = "many"\n')
    with pytest.raises(ConfigError, match="bad.toml: epochs must be int"):
        load_toml(f)
    f.write_text("epochs = \n")
    with pytest.raises(InputError, match="bad.toml: invalid TOML"):
        load_toml(f)
    with pytest.raises(InputError, match="cannot read"):
        load_toml(tmp_path / "none.toml")


def test_resolved_fills_defaults_and_checks_ranges() -> None:
    assert TrainConfig(data="digits").resolved().epochs == 300
    assert TrainConfig(data="fashion-mnist").resolved().epochs == 10
    with pytest.raises(ConfigError, match="--batch-size must be >= 1"):
        TrainConfig(batch_size=0).resolved()
    with pytest.raises(ConfigError, match="--optimizer 'lamb'"):
        TrainConfig(optimizer="lamb").resolved()
    with pytest.raises(ConfigError, match="--resume needs --out"):
        TrainConfig(resume=True).resolved()


# --- evaluation: independent reference implementations ---------------------------------


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 6)) * 2
    ytr, yte = rng.integers(0, 4, 120), rng.integers(0, 4, 40)
    xtr = centres[ytr] + rng.normal(size=(120, 6))
    return xtr, ytr, centres[yte] + rng.normal(size=(40, 6)), yte


def test_knn_matches_a_loop_reference() -> None:
    xtr, ytr, xte, yte = _data()
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    correct = 0
    for x, y in zip(unit(xte), yte, strict=True):
        sims = unit(xtr) @ x
        top = np.argsort(-sims)[:20]
        counts = np.bincount(ytr[top], minlength=4)
        correct += int(np.argmax(counts) == y)
    assert knn_accuracy(xtr, ytr, xte, yte, k=20) == correct / len(yte)


def test_knn_is_perfect_on_separated_directions_and_chance_when_collapsed() -> None:
    ytr, yte = np.repeat(np.arange(3), 30), np.repeat(np.arange(3), 10)
    basis = np.eye(3)
    assert knn_accuracy(basis[ytr], ytr, basis[yte], yte, k=20) == 1.0
    collapsed = np.ones((90, 3))
    # every neighbour is tied: the vote counts 20 labels drawn by argpartition; accuracy
    # cannot exceed the share of the most voted class
    assert knn_accuracy(collapsed, ytr, np.ones((30, 3)), yte, k=20) <= 1 / 3 + 1e-9


def test_few_label_uses_the_same_draws_and_matches_reference() -> None:
    xtr, ytr, xte, yte = _data(1)
    mean, std = few_label_accuracy(xtr, ytr, xte, yte, per_class=5, draws=10, draw_seed=0)
    rng = np.random.default_rng(0)  # reference: same draw sequence, 1-NN by cosine
    unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    accs = []
    for _ in range(10):
        idx = np.concatenate([rng.choice(np.flatnonzero(ytr == c), 5, replace=False)
                              for c in range(4)])  # fmt: skip
        pred = ytr[idx][np.argmax(unit(xte) @ unit(xtr[idx]).T, axis=1)]
        accs.append(np.mean(pred == yte))
    assert mean == pytest.approx(np.mean(accs)) and std == pytest.approx(np.std(accs))
    # scale invariance of cosine: multiplying features by 7 changes nothing
    assert few_label_accuracy(7 * xtr, ytr, 7 * xte, yte) == (mean, std)


def test_linear_probe_and_raw_pixel_baseline_on_digits() -> None:
    ytr, yte = np.repeat(np.arange(3), 40), np.repeat(np.arange(3), 10)
    rng = np.random.default_rng(2)
    centres = 10.0 * np.eye(3, 8)  # linearly separable by a wide margin
    xtr = centres[ytr] + rng.normal(size=(120, 8))
    xte = centres[yte] + rng.normal(size=(30, 8))
    assert linear_probe_accuracy(xtr, ytr, xte, yte) == 1.0
    # constant features carry no information: the probe predicts one class (1/3 here)
    assert linear_probe_accuracy(np.ones((120, 8)), ytr, np.ones((30, 8)), yte) == 1 / 3
    from collapselab.data import load_digits

    d = load_digits()
    ev = evaluate_features(d.x_train, d.y_train, d.x_test, d.y_test)
    # raw pixels: the bar every healthy method must beat (the issue quotes 85.7%)
    assert 0.84 < ev.knn_accuracy_5_per_class < 0.89
    assert ev.knn_accuracy > 0.95 and ev.linear_accuracy > 0.94
