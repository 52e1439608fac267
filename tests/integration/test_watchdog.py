"""systemd's protocol from a real node: READY=1 once both services serve, WATCHDOG=1 from the heartbeat loop
(a stuck loop stops the beats while the process still serves), WATCHDOG_USEC= following I, STOPPING=1."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotstandby.sdnotify import watchdog_seconds
from lab.localpair import Pair, running_pair
from lab.waiting import holds_for, wait_until
from tests.needs import need

pytestmark = pytest.mark.integration


class Listener:
    """The service manager's side: an abstract unix datagram socket, every message kept with its time."""

    def __init__(self) -> None:
        self.name = f"hs-notify-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                self.messages.append((time.monotonic(), self.sock.recv(65536).decode()))

    def lines(self, prefix: str) -> list[str]:
        return [line for _, m in list(self.messages) for line in m.splitlines() if line.startswith(prefix)]

    def beats(self) -> int:
        return len(self.lines("WATCHDOG=1"))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@contextlib.contextmanager
def freezable_dir(path: Path) -> Iterator[Path]:
    """An ext4 image loop-mounted at ``path``, which `fsfreeze` can stop all writes to."""
    mkfs = need("mkfs.ext4", "e2fsprogs")
    freeze = need("fsfreeze", "util-linux")
    image = path.with_suffix(".img")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as fh:
        fh.truncate(32 * 1024 * 1024)
    subprocess.run([mkfs, "-q", "-F", str(image)], check=True, timeout=60)
    path.mkdir(parents=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run([freeze, "--unfreeze", str(path)], capture_output=True, timeout=30)  # never left frozen
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
        image.unlink(missing_ok=True)


@pytest.fixture
def listener() -> Iterator[Listener]:
    ln = Listener()
    yield ln
    ln.close()


def test_ready_watchdog_and_stopping_from_a_real_node(tmp_path: Path, listener: Listener) -> None:
    """READY=1 comes once both services serve; beats come every tick; a store frozen under the loop stops them
    while HTTP still answers (and /healthz says 503); they resume when it thaws; SIGTERM sends STOPPING=1."""
    if os.geteuid() != 0:
        pytest.skip("freezing a filesystem under the node needs root (mount, fsfreeze)")
    with running_pair(tmp_path / "pair") as pair, contextlib.ExitStack() as stack:
        node = pair.nodes["server1"]
        # The database on a filesystem we can freeze; the fault-tolerant log beside it, so that only the
        # heartbeat loop's store write (in a thread) blocks, not the event loop that serves HTTP.
        stack.enter_context(freezable_dir(node.data_dir))
        stack.callback(node.kill)  # before the filesystem goes
        (tmp_path / "logs").mkdir()
        (node.data_dir / "logs").symlink_to(tmp_path / "logs")
        node.start({"NOTIFY_SOCKET": "@" + listener.name, "WATCHDOG_USEC": "1000000"})
        wait_until(lambda: listener.lines("READY=1"), 30, "READY=1")
        assert _serves(pair), "READY=1 came before both services served"
        want = f"WATCHDOG_USEC={watchdog_seconds(pair.interval) * 1_000_000}"
        wait_until(lambda: want in listener.lines("WATCHDOG_USEC="), 5, want)
        wait_until(lambda: listener.beats() >= 4, 10 * pair.interval + 5, "beats, one a tick")
        wait_until(lambda: any(s.startswith("STATUS=ACTIVE") for s in listener.lines("STATUS=")),
                   pair.bound_r1 + 5, "the role change in STATUS=")

        subprocess.run(["fsfreeze", "--freeze", str(node.data_dir)], check=True, timeout=30)
        try:
            wait_until(lambda: _arbiter_health(pair) == 503, 3 * pair.interval + 5, "/healthz 503 (loop stuck)")
            stuck = listener.beats()
            holds_for(lambda: listener.beats() == stuck and pair.role("server1") == "ACTIVE",
                      4 * pair.interval + 1, "no beat while the loop is stuck, and HTTP still answers")
        finally:
            subprocess.run(["fsfreeze", "--unfreeze", str(node.data_dir)], check=True, timeout=30)
        wait_until(lambda: listener.beats() > stuck, 5 * pair.interval + 5, "beats again once the store thaws")
        wait_until(lambda: _arbiter_health(pair) == 200, 10, "/healthz 200 again")

        r = pair.admin("PUT", "server1", "/config", {"heartbeat_interval_s": 2, "heartbeat_timeout_s": 0.5})
        assert r.status_code == 200, r.text
        want = f"WATCHDOG_USEC={watchdog_seconds(2) * 1_000_000}"
        wait_until(lambda: want in listener.lines("WATCHDOG_USEC="), 10, "the watchdog following the new I")

        node.signal(signal.SIGTERM)
        assert node.proc is not None
        assert node.proc.wait(10) == 0
        assert listener.lines("STOPPING=1")
        assert len(listener.lines("READY=1")) == 1


def _serves(pair: Pair) -> bool:
    try:
        a = pair.http.get(pair.arbiter_url("server1") + "/healthz", timeout=2)
        m = pair.http.get(pair.monitor_url("server1") + "/healthz", timeout=2)
    except Exception:
        return False
    return a.status_code in (200, 503) and m.status_code == 200


def _arbiter_health(pair: Pair) -> int:
    return pair.http.get(pair.arbiter_url("server1") + "/healthz", timeout=2).status_code
