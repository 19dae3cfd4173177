"""Start-up: the everyday modules never import torch (0.9 s, ~200 MB) or the other heavy
libraries; each command imports what it uses inside its function. Checked in a fresh
interpreter, where ``sys.modules`` shows what an import really pulled in."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

HEAVY = ("torch", "matplotlib", "scipy", "sklearn")


def _loaded(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    mods = json.loads(out.strip().splitlines()[-1])
    return sorted({m.split(".")[0] for m in mods} & set(HEAVY) | {"numpy"} & set(mods))


@pytest.mark.parametrize(
    "module",
    ["collapselab", "collapselab.cli", "collapselab.diagnose", "collapselab.check",
     "collapselab.io", "collapselab.metrics", "collapselab.monitor"],
)  # fmt: skip
def test_import_pulls_no_heavy_library(module: str) -> None:
    loaded = _loaded(f"import {module}")
    assert not set(loaded) & set(HEAVY), f"importing {module} loads {loaded}"


def test_cli_and_help_do_not_even_import_numpy() -> None:
    code = ("from collapselab.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass")  # fmt: skip
    assert _loaded(code) == []


def test_check_of_a_npy_file_runs_without_torch_or_scipy(tmp_path: object) -> None:
    path = f"{tmp_path}/e.npy"
    np.save(path, np.random.default_rng(0).standard_normal((3000, 16)).astype(np.float32))
    code = f"from collapselab.cli import main\nassert main(['check', {path!r}, '--json']) == 0"
    # numpy alone, with or without the C row kernel (the numpy path takes no scipy BLAS:
    # CI runs this file again with COLLAPSELAB_NO_KERNEL=1)
    assert _loaded(code) == ["numpy"]


def test_check_does_not_import_numpy_random(tmp_path: object) -> None:
    """The row sample's keys are counter-based: a check never pays numpy.random's import
    (~20 ms, a tenth of a small check beyond numpy)."""
    path = f"{tmp_path}/e.npy"
    np.save(path, np.arange(3000 * 4, dtype=np.float32).reshape(3000, 4) % 7)
    probe = (f"import sys\nfrom collapselab.cli import main\n"
             f"assert main(['check', {path!r}, '--json']) == 0\n"
             f"print('numpy.random' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert out.strip().splitlines()[-1] == "False"
