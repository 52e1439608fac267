"""Waiting as polling: a condition against a deadline, never a bare sleep; and free ports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx

# What a poll may raise while the thing it waits for is not there yet.
TRANSIENT: tuple[type[Exception], ...] = (httpx.HTTPError, KeyError, ValueError, OSError)


def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``pred`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = pred()
            if value:
                return value
        except TRANSIENT as exc:
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what} (last error: {last_exc!r})")


async def until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.01) -> Any:
    """``wait_until`` inside an event loop: poll ``pred`` (letting the loop run) until it is truthy, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


def holds_for(pred: Callable[[], bool], seconds: float, what: str, interval: float = 0.05) -> None:
    """Assert ``pred`` stays true on every poll for ``seconds`` (the observation window is the assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert pred(), f"{what} stopped holding"
        time.sleep(interval)


def free_port(*hosts: str) -> int:
    """A TCP port free on every one of ``hosts`` at once (default 127.0.0.1)."""
    hosts = hosts or ("127.0.0.1",)
    for _ in range(200):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = int(s.getsockname()[1])
        try:
            for h in hosts[1:]:
                with socket.socket() as other:
                    other.bind((h, port))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no common free port on {', '.join(hosts)}")


def stop_process(p: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGCONT (a frozen process cannot die of SIGTERM), SIGTERM, then SIGKILL after ``grace``."""
    if p.poll() is not None:
        return
    for sig in (signal.SIGCONT, signal.SIGTERM):
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)
    try:
        p.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        p.wait(5)
