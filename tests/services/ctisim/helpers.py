"""Test helpers for the CTI simulators: fake clocks, real servers, real processes, polling.

Nothing here mocks the code under test; it only starts the real thing and waits for it with
deadlines instead of fixed sleeps.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


class FakeClock:
    """A clock the test moves by hand; callable like time.monotonic."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(fn: Callable[[], T], *, timeout: float = 5.0, interval: float = 0.01, what: str = "") -> T:
    """Poll `fn` until it returns something truthy; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: T = fn()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}: last {last!r}")
        time.sleep(interval)
        last = fn()
    return last


class ServerThread:
    """A real uvicorn server on 127.0.0.1 in a background thread (for an app with fake clocks)."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, name="ctisim-manager", daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        wait_until(lambda: self.server.started, timeout=5, what="uvicorn to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=5)


class ManagerProcess:
    """`manager_main("127.0.0.1:PORT")` in its own Python process: the manager as it is deployed."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        code = (
            "import sys; from services.ctisim.manager import manager_main; "
            f"sys.exit(manager_main('127.0.0.1:{self.port}'))"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=_env())
        try:
            wait_until(self._healthy, timeout=10, what="the manager to answer /healthz")
        except BaseException:
            self.stop()  # a manager that never answered must not outlive the test run
            raise

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"manager exited early with {self.proc.returncode}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class SimProcess:
    """`python -m services.ctisim.sim` with its stdout lines timestamped as they arrive."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, orders: bool = False) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.ctisim.sim", *args],
            cwd=ROOT,
            env=_env(env),
            stdin=subprocess.PIPE if orders else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, str]] = []
        self._queue: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put((time.monotonic(), line.rstrip("\n")))
        self._queue.put(None)

    def wait_line(self, text: str, timeout: float = 10.0) -> float:
        """Collect lines until `text` arrives; return its arrival time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout}s; got {self.texts()}") from None
            if item is None:
                raise AssertionError(f"sim exited ({self.proc.wait()}) before {text!r}; got {self.texts()}")
            self.lines.append(item)
            if item[1] == text:
                return item[0]

    def texts(self) -> list[str]:
        return [line for _, line in self.lines]

    def order(self, line: str) -> float:
        """Write one line to the sim's stdin (warm mode); the time it was sent."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return time.monotonic()

    def end_orders(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def signal(self, sig: int) -> float:
        self.proc.send_signal(sig)
        return time.monotonic()

    def wait(self, timeout: float = 5.0) -> int:
        return self.proc.wait(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stdin):
            if pipe is not None and not pipe.closed:
                pipe.close()


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # The children must not inherit a node's settings from the developer's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HS_")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env


def state(url: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/state", timeout=2)
    resp.raise_for_status()
    result: dict[str, Any] = resp.json()
    return result


def holder_ids(url: str) -> list[str]:
    return [h["node_id"] for h in state(url)["holders"]]
