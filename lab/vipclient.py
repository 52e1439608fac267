"""A client through the VIP, for the bench and the tests: one ``GET /whoami`` every ``period`` seconds,
each on a new connection.

Every request is recorded as ``(sent, done, node_id or None)`` on the wall clock, so the bench can
tell when the VIP first answered from a given node, how many requests failed and the longest gap
between two good answers. A new connection per request makes HAProxy route each one afresh.

``concurrent=False`` (closed loop): one request at a time, the next ``period`` after the last was sent
or as soon as it ended, like one user; a request stuck on a dead address holds the next ones back.
``concurrent=True`` (open loop): a request every ``period`` while fewer than ``OPEN_LOOP_MAX`` are
outstanding, each allowed ``OPEN_LOOP_CONNECT_S`` to connect, so "when did the VIP first answer from the
new node" is hidden neither behind a SYN to a host that died (retransmitted only after 1 s) nor behind a
burst of held requests let through at once: the fair measure for keepalived's VIP and ours alike. Give
it a ``timeout`` longer than HAProxy's hold: a request the client gives up on stays held in HAProxy, and
dozens of them let through at once would swamp the new node the bench is timing.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

OPEN_LOOP_MAX = 8  # requests outstanding at once in the open loop
OPEN_LOOP_CONNECT_S = 0.1  # a connect that takes longer is a dead address: the next request tries again


@dataclass
class VipClient:
    url: str
    period: float = 0.02
    timeout: float = 1.0
    concurrent: bool = False
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

    def _ask(self, http: httpx.Client, slots: threading.Semaphore | None = None) -> None:
        sent = time.time()
        node: str | None = None
        try:
            r = http.get(self.url, headers={"connection": "close"})
            if r.status_code == 200:
                node = r.json().get("node_id")
        except (httpx.HTTPError, ValueError, AttributeError):
            node = None
        finally:
            if slots is not None:
                slots.release()
        self.samples.append((sent, time.time(), node))

    def _loop(self) -> None:
        n = OPEN_LOOP_MAX if self.concurrent else 1
        timeout = httpx.Timeout(self.timeout, connect=OPEN_LOOP_CONNECT_S if self.concurrent else self.timeout)
        slots = threading.Semaphore(n)
        with httpx.Client(trust_env=False, timeout=timeout,
                          limits=httpx.Limits(max_connections=n, max_keepalive_connections=0)) as http, \
                ThreadPoolExecutor(max_workers=n, thread_name_prefix="vip-ask") as pool:
            due = time.monotonic()
            while not self._stop.is_set():
                if not self.concurrent:
                    self._ask(http)
                elif slots.acquire(blocking=False):  # else all are outstanding: skip this beat
                    pool.submit(self._ask, http, slots)
                due += self.period
                delay = due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    due = time.monotonic()  # a slow answer: keep the pace from now, do not burst

    def first_from(self, node_id: str, after: float) -> float | None:
        """When the first good answer from ``node_id`` sent after ``after`` arrived (wall clock)."""
        return min((done for sent, done, node in list(self.samples) if sent >= after and node == node_id),
                   default=None)

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

    def max_gap(self, start: float, end: float) -> float | None:
        """The longest time between two consecutive good answers sent within [start, end]; None (no data,
        not a gap of 0) when fewer than two answers came back, as during a total outage."""
        good = sorted(done for sent, done, node in list(self.samples) if start <= sent <= end and node is not None)
        return max((b - a for a, b in itertools.pairwise(good)), default=None)

    def requests(self, start: float, end: float) -> int:
        return sum(1 for sent, _, _ in list(self.samples) if start <= sent <= end)
