"""The verdict and the calibration of its thresholds against known references."""

from __future__ import annotations

import numpy as np
import pytest

from collapselab.diagnose import LEVEL, Thresholds
from collapselab.diagnose import judge as diagnose
from collapselab.errors import ConfigError, InputError
from collapselab.metrics import compute_metrics

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("n,d", [(64, 128), (500, 64), (2000, 256), (20000, 16), (300, 3)])
def test_isotropic_gaussian_is_healthy_and_sits_at_the_reference(n: int, d: int) -> None:
    dg = diagnose(compute_metrics(RNG.standard_normal((n, d))))
    assert dg.verdict == "healthy"
    frac = next(e for e in dg.evidence if e.name == "effective_rank_fraction").value
    # the MP reference is accurate to ~1-3% at these sizes; thresholds sit 20x below
    assert 0.95 < frac < 1.05


def test_complete_collapse_is_judged_before_any_centred_measure() -> None:
    # all rows = c + tiny isotropic noise: the centred noise looks perfectly isotropic
    c = RNG.standard_normal(64) * 10
    z = c + 1e-3 * RNG.standard_normal((4000, 64))
    dg = diagnose(compute_metrics(z))
    assert dg.metrics.effective_rank > 60  # the trap: a centred measure says "full rank"
    assert dg.verdict == "complete"
    assert dg.evidence[0].name == "relative_variance" and dg.evidence[0].crossed


def test_one_dimensional_collapse_is_dimensional_not_complete() -> None:
    z = RNG.standard_normal((1000, 1)) * RNG.standard_normal((1, 32)) + 1e-6 * RNG.standard_normal(
        (1000, 32)
    )
    dg = diagnose(compute_metrics(z))
    assert dg.metrics.effective_rank < 1.01
    assert dg.verdict == "dimensional"


def test_low_rank_signal_is_dimensional_until_rank_grows() -> None:
    def low_rank(r: int) -> np.ndarray:
        return RNG.standard_normal((3000, r)) @ RNG.standard_normal(
            (r, 128)
        ) + 1e-3 * RNG.standard_normal((3000, 128))

    assert diagnose(compute_metrics(low_rank(3))).verdict == "dimensional"
    assert diagnose(compute_metrics(low_rank(40))).verdict == "healthy"


def test_offset_isotropic_cloud_relative_variance_formula() -> None:
    # relative variance of c + s*N(0, I) is d s^2 / (d s^2 + |c|^2)
    d, s = 50, 0.5
    c = np.full(d, 2.0)
    m = compute_metrics(c + s * RNG.standard_normal((20000, d)))
    expected = d * s**2 / (d * s**2 + float(c @ c))
    assert m.relative_variance == pytest.approx(expected, rel=0.02)
    assert diagnose(m).verdict == "healthy"


def test_zero_matrix_is_complete() -> None:
    assert diagnose(compute_metrics(np.zeros((10, 4)))).verdict == "complete"


def test_thresholds_are_overridable_and_validated() -> None:
    z = RNG.standard_normal((3000, 3)) @ RNG.standard_normal((3, 128))
    m = compute_metrics(z)
    assert diagnose(m).verdict == "dimensional"
    assert (
        diagnose(m, Thresholds(few_dims_fraction=0.01,
                      min_effective_rank=1)).verdict
        == "healthy"
    )
    with pytest.raises(ConfigError, match="complete_relative_variance"):
        Thresholds(complete_relative_variance=-1)
    assert LEVEL["complete"] > LEVEL["dimensional"] > LEVEL["warning"] > LEVEL["healthy"] == 0


def test_nonfinite_rows_are_an_input_error_naming_count_and_row() -> None:
    z = RNG.standard_normal((20, 4))
    z[[3, 11]] = np.nan
    with pytest.raises(InputError, match=r"2 rows contain NaN or Inf \(first: row 3\)"):
        diagnose(compute_metrics(z))


def test_to_dict_is_json_ready() -> None:
    import json

    out = diagnose(compute_metrics(np.tile([1.0, 2.0], (5, 1)))).to_dict()
    text = json.dumps(out)
    assert "NaN" not in text and out["verdict"] == "complete"
    assert {"n", "d", "verdict", "effective_rank", "eigenvalues", "evidence"} <= out.keys()
