"""sd_notify without libsystemd: datagrams to $NOTIFY_SOCKET, a path or an abstract name, never blocking."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotstandby.sdnotify import Notifier, watchdog_seconds


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(2)
    yield sock, str(tmp_path / "notify")
    sock.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    name = f"hs-test-{secrets.token_hex(6)}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    yield sock, "@" + name
    sock.close()


def test_messages_reach_a_path_socket(path_socket: tuple[socket.socket, str]) -> None:
    """READY=1 (with a status), WATCHDOG=1 and STOPPING=1 arrive as one datagram each, in order."""
    sock, where = path_socket
    n = Notifier({"NOTIFY_SOCKET": where})
    assert n.enabled
    assert n.ready("serving")
    assert n.watchdog()
    assert n.stopping()
    got = [sock.recv(4096).decode() for _ in range(3)]
    assert got == ["READY=1\nSTATUS=serving", "WATCHDOG=1", "STOPPING=1"]
    assert n.sent == 3


def test_messages_reach_an_abstract_socket(abstract_socket: tuple[socket.socket, str]) -> None:
    """'@name' is the abstract namespace, as systemd passes it."""
    sock, where = abstract_socket
    Notifier({"NOTIFY_SOCKET": where}).status("ACTIVE epoch 3:\n  a reason")
    assert sock.recv(4096) == b"STATUS=ACTIVE epoch 3: a reason"


def test_without_a_manager_everything_is_a_no_op() -> None:
    """No $NOTIFY_SOCKET (not under systemd): nothing is sent and nothing fails."""
    n = Notifier({})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and not n.stopping()
    assert not Notifier({"NOTIFY_SOCKET": "vsock:2:1234"}).enabled


def test_a_vanished_socket_loses_the_message_not_the_caller(tmp_path: Path) -> None:
    """Sending to a socket nobody listens on returns False instead of raising or blocking."""
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    assert n.watchdog() is False
    assert n.watchdog() is False


def test_a_full_socket_never_blocks(path_socket: tuple[socket.socket, str]) -> None:
    """A manager that does not read: sends fail once the buffer is full, and none of them waits."""
    _, where = path_socket
    n = Notifier({"NOTIFY_SOCKET": where})
    results = [n.watchdog() for _ in range(5000)]
    assert results[0] is True
    assert results[-1] is False


def test_watchdog_timeout_follows_i_only_when_the_unit_enabled_it(path_socket: tuple[socket.socket, str]) -> None:
    """WATCHDOG_USEC= is sent when I moves the derived timeout, never when the unit left the watchdog off."""
    sock, where = path_socket
    on = Notifier({"NOTIFY_SOCKET": where, "WATCHDOG_USEC": str(watchdog_seconds(1) * 1_000_000)})
    assert on.follow_interval(1) is False  # already what the unit says
    assert on.follow_interval(30) is True
    assert sock.recv(4096) == f"WATCHDOG_USEC={watchdog_seconds(30) * 1_000_000}".encode()
    assert on.follow_interval(30) is False
    off = Notifier({"NOTIFY_SOCKET": where})
    assert off.follow_interval(30) is False
    other = Notifier({"NOTIFY_SOCKET": where, "WATCHDOG_USEC": "8000000", "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_usec is None  # the watchdog is another process's


@pytest.mark.parametrize(("interval", "expected"), [(0.05, 6), (0.1, 6), (1, 8), (2.5, 13), (30, 95), (3600, 10805)])
def test_watchdog_seconds_is_three_intervals_and_a_margin(interval: float, expected: int) -> None:
    """WatchdogSec = 3·I + 5 s rounded up: it fires after /healthz turns 503 (3·I), never before."""
    assert watchdog_seconds(interval) == expected
    assert watchdog_seconds(interval) >= 3 * interval + 5
