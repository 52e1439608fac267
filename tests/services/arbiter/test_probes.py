"""The LAN probe's TCP connect (services/arbiter/probes.py) on real sockets, under both event loops a node
may run (uvloop, asyncio's own): a listener answers, a closed port refuses, a name resolves first."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Iterator

import pytest
import uvloop

from services.arbiter.probes import tcp_connect

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"uvloop": uvloop.new_event_loop,
                                                           "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Iterator[Callable[..., str | None]]:
    with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
        yield lambda *args: runner.run(tcp_connect(*args))


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as srv:
        yield srv.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:  # a port just freed, where nothing listens: a SYN to it is answered with a reset
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_listener_answers(run: Callable[..., str | None], listener: int) -> None:
    assert run("127.0.0.1", listener, 1.0) is None


def test_a_name_is_resolved_first(run: Callable[..., str | None]) -> None:
    family, _, _, _, address = socket.getaddrinfo("localhost", None, type=socket.SOCK_STREAM)[0]
    with socket.create_server((address[0], 0), family=family) as srv:  # where the name leads first
        assert run("localhost", srv.getsockname()[1], 1.0) is None


def test_a_closed_port_says_why(run: Callable[..., str | None]) -> None:
    assert run("127.0.0.1", _closed_port(), 1.0) == "Connection refused"


def test_many_probes_leave_no_socket_open(run: Callable[..., str | None], listener: int) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        run("127.0.0.1", listener, 1.0)
        run("127.0.0.1", _closed_port(), 1.0)
    assert len(os.listdir("/proc/self/fd")) == before
