"""``collapselab check --engine spark|ray`` as pipx and CI jobs run it: the console script
by its path (``<venv>/bin/collapselab``), the venv not activated, and a ``python3`` first
on PATH that cannot import collapselab. Spark's local workers must still run the
interpreter that runs collapselab (issue 31), and an engine that cannot run (workers
without collapselab, no Java, a Ray address nobody listens on) is one line on stderr
naming the fix, exit 2, no traceback and none of the engine's own log unless --verbose.

The ``python3`` without collapselab is a shim (this interpreter, with a finder that
refuses ``collapselab`` exactly as a missing package does), so the test does not depend
on what the machine's system Python holds and its version always matches the driver's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from collapselab.check import check_files  # noqa: E402

SCRIPT = Path(sys.executable).parent / "collapselab"

HIDE = '''import sys


class _NoCollapselab:
    """collapselab is not installed for this interpreter."""

    def find_spec(self, name, path=None, target=None):
        if name == "collapselab" or name.startswith("collapselab."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NoCollapselab())
'''

needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason=f"no console script {SCRIPT}")
needs_java = pytest.mark.skipif(
    shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="no Java"
)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """1200 x 6 in two Parquet shards (fixed-size lists of float32)."""
    root = tmp_path_factory.mktemp("console_shards")
    rng = np.random.default_rng(31)
    z = (rng.standard_normal((1200, 6)) * np.geomspace(2.0, 0.1, 6)).astype(np.float32)
    paths = []
    for i in range(2):
        part = z[i * 600 : (i + 1) * 600]
        emb = pa.FixedSizeListArray.from_arrays(pa.array(part.ravel()), 6)
        pq.write_table(pa.table({"emb": emb}), root / f"part-{i}.parquet")
        paths.append(str(root / f"part-{i}.parquet"))
    return paths


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ``python3`` and ``python`` cannot import collapselab."""
    root = tmp_path_factory.mktemp("shim")
    (root / "hide").mkdir()
    (root / "hide" / "sitecustomize.py").write_text(HIDE)
    for name in ("python3", "python"):
        exe = root / name
        exe.write_text(f'#!/bin/sh\nPYTHONPATH="{root / "hide"}${{PYTHONPATH:+:$PYTHONPATH}}" '
                       f'exec "{sys.executable}" "$@"\n')  # fmt: skip
        exe.chmod(0o755)
    return root


def _env(shim: Path, **extra: str) -> dict[str, str]:
    """This environment as a non-activated venv sees it: no VIRTUAL_ENV, the venv's bin
    off PATH, the shim's ``python3`` first on it, nothing set for the engines."""
    env = {k: v for k, v in os.environ.items() if k not in (
        "VIRTUAL_ENV", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "RAY_ADDRESS")}  # fmt: skip
    venv_bin = str(Path(sys.executable).parent)
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([str(shim), *rest])
    env.update(extra)
    return env


def _run(args: list[str], env: dict[str, str],
         timeout: float = 240) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run([str(SCRIPT), "check", *args], capture_output=True, text=True,
                          env=env, timeout=timeout)  # fmt: skip


def _one_line_error(out: subprocess.CompletedProcess[str], *fix: str) -> str:
    err = out.stderr
    assert out.returncode == 2, err[-3000:]
    assert err.count("\n") == 1 and err.startswith("collapselab check: error: "), err[-3000:]
    assert "Traceback" not in err and out.stdout == ""
    for words in fix:
        assert words in err, err
    return err


def test_the_shim_python3_lacks_collapselab(shim: Path) -> None:
    env = _env(shim)
    lacks = subprocess.run(["python3", "-c", "import collapselab"], env=env,
                           capture_output=True, text=True)  # fmt: skip
    assert lacks.returncode != 0 and "No module named 'collapselab'" in lacks.stderr
    has = subprocess.run(["python3", "-c", "import numpy"], env=env, capture_output=True)
    assert has.returncode == 0  # the same interpreter otherwise


@needs_script
@pytest.mark.parametrize("engine", [
    pytest.param("spark", marks=needs_java), "ray"])  # fmt: skip
def test_console_script_by_path(engine: str, shards: list[str], shim: Path) -> None:
    """Issue 31: the Spark workers used to start the shim (the first python3 on PATH)
    and die on ``No module named 'collapselab'``; now they run the script's interpreter."""
    pytest.importorskip("pyspark" if engine == "spark" else "ray")
    glob = str(Path(shards[0]).parent / "part-*.parquet")
    extra = ["--master", "local[1]"] if engine == "spark" else []
    out = _run([glob, "--engine", engine, *extra, "--json"], _env(shim))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stderr == ""  # no Java warnings, no Ray start-up lines
    got = json.loads(out.stdout)
    want = check_files(shards).to_dict()
    assert got["verdict"] == want["verdict"] and got["n"] == want["n"] == 1200
    np.testing.assert_allclose(got["eigenvalues"], want["eigenvalues"], rtol=1e-10)


@needs_script
@needs_java
def test_spark_workers_without_collapselab(shards: list[str], shim: Path) -> None:
    pytest.importorskip("pyspark")
    env = _env(shim, PYSPARK_PYTHON=str(shim / "python3"))  # the user's choice is kept
    out = _run([shards[0], "--engine", "spark", "--master", "local[1]"], env)
    _one_line_error(out, "Spark workers cannot import collapselab", str(shim / "python3"),
                    "set PYSPARK_PYTHON to an interpreter that has collapselab")  # fmt: skip


def _no_java_path(tmp_path: Path) -> str:
    """A PATH with every command of this one but ``java``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isdir(folder):
            continue
        for entry in os.scandir(folder):
            target = bin_dir / entry.name
            if entry.name != "java" and not target.exists():
                target.symlink_to(entry.path)
    return str(bin_dir)


@needs_script
@pytest.mark.parametrize("java_home", ["/nonexistent/jdk", None])
def test_spark_without_java(java_home: str | None, shards: list[str], shim: Path,
                            tmp_path: Path) -> None:  # fmt: skip
    pytest.importorskip("pyspark")
    env = _env(shim, PATH=_no_java_path(tmp_path))
    env.pop("JAVA_HOME", None)
    if java_home is not None:
        env["JAVA_HOME"] = java_home
    out = _run([shards[0], "--engine", "spark"], env, timeout=120)
    said = java_home + "/bin/java" if java_home else "JAVA_HOME is not set"
    _one_line_error(out, "Spark could not start Java", said,
                    "install Java 17 or set JAVA_HOME")  # fmt: skip


@needs_script
def test_verbose_lets_the_engine_speak(shards: list[str], shim: Path) -> None:
    """--verbose: the launcher's own lines reach the terminal, then the one-line error."""
    pytest.importorskip("pyspark")
    env = _env(shim, JAVA_HOME="/nonexistent/jdk")
    out = _run([shards[0], "--engine", "spark", "--verbose"], env, timeout=120)
    lines = out.stderr.splitlines()
    assert out.returncode == 2 and len(lines) > 1, out.stderr
    assert any("/nonexistent/jdk/bin/java" in ln for ln in lines[:-1])
    assert lines[-1].startswith("collapselab check: error: Spark could not start Java")


@needs_script
def test_ray_address_nobody_listens_on(shards: list[str], shim: Path) -> None:
    """Ray itself would retry for many minutes: the address is probed first."""
    pytest.importorskip("ray")
    out = _run([shards[0], "--engine", "ray", "--address", "127.0.0.1:1"], _env(shim),
               timeout=90)  # fmt: skip
    _one_line_error(out, "cannot reach the Ray cluster at 127.0.0.1:1",
                    "ray start --head", "--address")  # fmt: skip
