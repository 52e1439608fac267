"""The recorder: polls both nodes, the CTI manager and the VIP from the observer, on one clock.

Threads, each with its own HTTP client that ignores proxy settings:
- one per node: ``GET /status`` every 50 ms (1 s timeout: a frozen node must not hold the poll up long);
- the CTI manager: its journal (``GET /events``) every 100 ms, ``GET /state`` every second;
- the VIP client (``lab.vipclient``): ``GET /whoami`` through HAProxy every 50 ms, a new connection each;
- the process watcher: notes when a node process exits, with its status.
Times are the observer's wall clock minus ``t0``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from lab.labpair import LabPair
from lab.nemesis.faults import NODES
from lab.nemesis.history import Life, Registration, Sample, VipAnswer
from lab.vipclient import VipClient

POLL_S = 0.05
STATUS_TIMEOUT_S = 1.0


class Recorder:
    def __init__(self, pair: LabPair, vip_url: str, t0: float) -> None:
        self.pair, self.t0 = pair, t0
        self.samples: dict[str, list[Sample]] = {n: [] for n in NODES}
        self.registrations: list[Registration] = []
        self.life: list[Life] = []
        self.manager: dict[str, Any] = {}
        self.vip = VipClient(vip_url, period=POLL_S)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._seq = 0
        self._exited: list[Any] = []
        self.lock = threading.Lock()

    def now(self) -> float:
        return time.time() - self.t0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> Recorder:
        for node in NODES:
            self._spawn(f"status-{node}", lambda node=node: self._poll_status(node))  # type: ignore[misc]
        self._spawn("manager", self._poll_manager)
        self._spawn("processes", self._watch_processes)
        self.vip.__enter__()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.vip.__exit__()
        for t in self._threads:
            t.join(5)
        with httpx.Client(trust_env=False, timeout=2.0) as http:
            self._poll_manager_once(http)
            with contextlib.suppress(httpx.HTTPError, ValueError):
                self.manager = http.get(self.pair.manager_url + "/state").json()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, name=f"nemesis-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def _every(self, period: float, step: Callable[[], None]) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            step()
            due += period
            delay = due - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                due = time.monotonic()  # a slow poll: keep the pace from now, do not burst

    # -- the nodes ------------------------------------------------------------------------------
    def _poll_status(self, node: str) -> None:
        url = self.pair.arbiter_url(node) + "/status"
        with httpx.Client(trust_env=False, timeout=STATUS_TIMEOUT_S) as http:
            def step() -> None:
                sent = self.now()
                try:
                    d = http.get(url).json()
                    loc = d["local"]
                    s = Sample(sent, self.now(), loc["role"], loc["epoch"], loc.get("cause"), loc["maintenance"],
                               d["settings"]["vip_address"], (d.get("witness") or {}).get("holder"),
                               (loc.get("cti") or {}).get("state"), loc.get("consecutive_failures"))
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    s = Sample(sent, self.now())
                self.samples[node].append(s)

            self._every(POLL_S, step)

    def latest(self, node: str, fresh: float = 1.0) -> Sample | None:
        """The newest answered poll of ``node`` if it is at most ``fresh`` seconds old."""
        now = self.now()
        for s in reversed(self.samples[node][-40:]):
            if s.role is not None:
                return s if now - s.recv <= fresh else None
        return None

    def _watch_processes(self) -> None:
        """Every node process ever started is watched until it exits: a restart that replaces ``node.proc``
        between two polls must not hide the exit of the one before."""
        alive: list[tuple[str, Any]] = []

        def step() -> None:
            for node in NODES:
                proc = self.pair.nodes[node].proc
                if proc is not None and all(p is not proc for _, p in alive) and proc not in self._exited:
                    alive.append((node, proc))
            for node, proc in list(alive):
                code = proc.poll()
                if code is not None:
                    alive.remove((node, proc))
                    self.saw_exit(node, proc)

        self._every(POLL_S, step)

    def saw_exit(self, node: str, proc: Any) -> None:
        """Note that ``proc`` (a node's process) has exited, once: the watcher calls it, and so does the executor
        when it reaped the process itself before starting the node again (the note must come first)."""
        with self.lock:
            if any(p is proc for p in self._exited):
                return
            self._exited.append(proc)
        self.note(node, "exit", str(proc.returncode))

    def note(self, node: str, event: str, detail: str = "") -> None:
        with self.lock:
            self.life.append(Life(self.now(), node, event, detail))

    # -- the CTI manager ------------------------------------------------------------------------
    def _poll_manager(self) -> None:
        with httpx.Client(trust_env=False, timeout=1.0) as http:
            last_state = [0.0]

            def step() -> None:
                self._poll_manager_once(http)
                if time.monotonic() - last_state[0] >= 1.0:
                    last_state[0] = time.monotonic()
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        self.manager = http.get(self.pair.manager_url + "/state").json()

            self._every(0.1, step)

    def _poll_manager_once(self, http: httpx.Client) -> None:
        try:
            events = http.get(self.pair.manager_url + "/events", params={"after": self._seq}).json()["events"]
        except (httpx.HTTPError, ValueError, KeyError):
            return
        for e in events:
            if e["seq"] <= self._seq:
                continue
            self._seq = e["seq"]
            self.registrations.append(Registration(e["wall"] - self.t0, e["kind"], e["node_id"], int(e["epoch"]),
                                                   bool(e["stale"])))

    # -- the VIP --------------------------------------------------------------------------------
    def vip_answers(self) -> list[VipAnswer]:
        return [VipAnswer(sent - self.t0, done - self.t0, node) for sent, done, node in list(self.vip.samples)]
