"""A client through the VIP: one ``GET /whoami`` every ``period`` seconds, each on a new connection.

Every request is recorded as ``(sent, done, node_id or None)`` on the wall clock, so the bench can
tell when the VIP first answered from a given node, how many requests failed and the longest gap
between two good answers. A new connection per request makes HAProxy route each one afresh.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx


@dataclass
class VipClient:
    url: str
    period: float = 0.02
    timeout: float = 1.0
    samples: list[tuple[float, float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> VipClient:
        self._thread = threading.Thread(target=self._loop, name="vip-client", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)

    def _loop(self) -> None:
        with httpx.Client(trust_env=False, timeout=self.timeout,
                          limits=httpx.Limits(max_keepalive_connections=0)) as http:
            due = time.monotonic()
            while not self._stop.is_set():
                sent = time.time()
                node: str | None = None
                try:
                    r = http.get(self.url, headers={"connection": "close"})
                    if r.status_code == 200:
                        node = r.json().get("node_id")
                except (httpx.HTTPError, ValueError, AttributeError):
                    node = None
                self.samples.append((sent, time.time(), node))
                due += self.period
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    due = time.monotonic()  # a slow answer: keep the pace from now, do not burst

    def first_from(self, node_id: str, after: float) -> float | None:
        """When the first good answer from ``node_id`` sent after ``after`` arrived (wall clock)."""
        for sent, done, node in list(self.samples):
            if sent >= after and node == node_id:
                return done
        return None

    def wait_first_from(self, node_id: str, after: float, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            t = self.first_from(node_id, after)
            if t is not None:
                return t
            time.sleep(0.02)
        return None

    def routes_to(self, node_id: str, last: int = 3) -> bool:
        recent = list(self.samples)[-last:]
        return len(recent) == last and all(n == node_id for _, _, n in recent)

    def failures(self, start: float, end: float) -> int:
        return sum(1 for sent, _, node in list(self.samples) if start <= sent <= end and node is None)

    def max_gap(self, start: float, end: float) -> float:
        """The longest time between two consecutive good answers sent within [start, end]."""
        good = [done for sent, done, node in list(self.samples) if start <= sent <= end and node is not None]
        return max((b - a for a, b in itertools.pairwise(good)), default=0.0)
