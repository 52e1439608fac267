"""Fixtures: one real CTI manager process per session (reset before each test) and a sim factory, for the
simulators' tests and the warm CTI supervisor's."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.services.ctisim.helpers import ManagerProcess, SimProcess


@pytest.fixture(scope="session")
def manager_process() -> Iterator[ManagerProcess]:
    mgr = ManagerProcess()
    yield mgr
    mgr.stop()


@pytest.fixture
def manager_url(manager_process: ManagerProcess) -> str:
    """The session's manager, with counters and holders forgotten so each test starts clean."""
    httpx.post(f"{manager_process.url}/reset", params={"holders": "true"}, timeout=2).raise_for_status()
    return manager_process.url


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimProcess]]:
    """Start sim processes; any still running at the end of the test are killed."""
    started: list[SimProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, orders: bool = False) -> SimProcess:
        sim = SimProcess(*args, env=env, orders=orders)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.close()
