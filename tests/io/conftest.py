"""Fixtures for the io tests."""

from __future__ import annotations

import pytest
from io_writers import WRITERS, Writer


@pytest.fixture(params=sorted(WRITERS))
def writer(request: pytest.FixtureRequest) -> Writer:
    """Each format's writer in turn: ``writer(path_stem, z) -> spec``."""
    return WRITERS[request.param]
