"""Suite-wide settings: hypothesis profiles (no deadlines: speed belongs to the bench, not to a unit test), and
the order: tests marked ``early`` (a few minutes each) start first, one per worker, so they run beside the short
ones instead of one worker finishing them alone at the end (make test: 12.3 minutes with them last)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", parent=settings.get_profile("default"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def _early(item: pytest.Item) -> float:
    """Minus the seconds an ``early(seconds)`` test takes (the longest first); 0 for the rest."""
    mark = item.get_closest_marker("early")
    return -float(mark.args[0]) if mark is not None else 0.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each worker's first test is one of the longest: xdist's load scheduling hands every worker a first chunk
    of len(items) // workers // 4 consecutive tests (LoadScheduling.schedule), so the early tests go to the
    start of those chunks, the longest first, and the rest keep their order (and their module fixtures)."""
    early = sorted((i for i in items if i.get_closest_marker("early") is not None), key=_early)
    if not early:
        return
    rest = [i for i in items if i.get_closest_marker("early") is None]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    chunk = max(len(items) // workers // 4, 2)
    for k, item in enumerate(early):
        rest.insert(min(k * chunk, len(rest)), item)
    items[:] = rest
