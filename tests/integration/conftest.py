from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.localpair import Pair, running_pair


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """A fast-profile pair (I = T = 0.5 s, N = 3) with a CTI manager; nodes not started yet."""
    with running_pair(tmp_path) as p:
        yield p


@pytest.fixture
def started(pair: Pair) -> Pair:
    """Both nodes started together and settled: server1 ACTIVE (R6)."""
    pair.start()
    pair.wait_active("server1", pair.bound_r1 + 5)
    return pair
