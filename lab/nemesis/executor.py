"""The executor: carries out a schedule on the lab, on time, and notes what it did and when.

The timeline thread sleeps until each fault is due and hands its start (and later its heal) to a
small pool, so a slow act (a switch waits for its answer, a SIGTERM for the process to go) never
delays the next fault. A heal waits for its own start. Each act records when it began and when it
was done; what could not be done is recorded as skipped, with the reason.

"active" and "standby" are resolved when the fault happens, from the recorder's latest polls.
After every heal, a node that is down without a kill or SIGTERM holding it down is started again
(an unexpected exit stays in the history: the checker judges it).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx

from lab.labpair import LabPair
from lab.nemesis.faults import NODES, PEER, Fault, Kind, Schedule
from lab.nemesis.history import Applied, Write
from lab.nemesis.recorder import Recorder
from lab.netns import Lab, step_clock

TERM_WAIT_S = 12.0  # a SIGTERMed node still running this long after the signal is killed before its restart
MAINTENANCE_OFF_S = 30.0
RESOLVE_FRESH_S = 3.0  # "active" is the node that said so at most this long ago (polls lag on a loaded machine)


class Skip(Exception):
    """The fault cannot happen now (its node is not running, nothing is ACTIVE, ...): recorded, not fatal."""


class Executor:
    def __init__(self, lab: Lab, pair: LabPair, recorder: Recorder, clock_files: dict[str, Path]) -> None:
        self.lab, self.pair, self.rec = lab, pair, recorder
        self.clock_files = clock_files
        self.applied: list[Applied] = []
        self.writes: list[Write] = []
        self.pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="nemesis-act")
        self.held: dict[str, int] = dict.fromkeys(NODES, 0)  # kills/SIGTERMs keeping a node down
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self._value = 0

    def now(self) -> float:
        return self.rec.now()

    # -- the timeline ----------------------------------------------------------------------------
    def run(self, schedule: Schedule, stop: threading.Event | None = None) -> None:
        """Start and heal every fault at its time (relative to the recorder's t0); returns when the last heal is
        handed out (``wait()`` then waits for the acts themselves)."""
        events: list[tuple[float, int, Fault]] = []
        for f in schedule.faults:
            events.append((f.at, 1, f))
            if f.duration:
                events.append((f.end, 0, f))
        events.sort(key=lambda e: (e[0], e[1], e[2].id))
        starts: dict[int, tuple[Applied, Future[None]]] = {}
        for at, is_start, f in events:
            delay = at - self.now()
            if delay > 0 and (stop or threading.Event()).wait(delay):
                return
            if is_start:
                a = Applied(f)
                with self.lock:
                    self.applied.append(a)
                starts[f.id] = (a, self.pool.submit(self._guard, self._start, a))
            else:
                a, started = starts[f.id]
                self.pool.submit(self._guard, self._heal, a, started)

    def wait(self) -> None:
        self.pool.shutdown(wait=True)

    def _guard(self, act: object, a: Applied, after: Future[None] | None = None) -> None:
        try:
            if after is not None:
                after.result()
            act(a)  # type: ignore[operator]
        except Skip as why:
            a.result = f"skipped: {why}"
        except Exception as exc:  # an act that failed is part of the history, and the run goes on
            a.result = f"error: {type(exc).__name__}: {exc}"
            self.errors.append(f"{a.fault.describe()}: {a.result}")

    # -- resolving "active" / "standby" ----------------------------------------------------------
    def resolve(self, who: str | None) -> str:
        if who in NODES:
            return who
        roles = {n: s.role for n in NODES if (s := self.rec.latest(n, fresh=RESOLVE_FRESH_S)) is not None}
        want = "ACTIVE" if who == "active" else "STANDBY"
        found = [n for n, r in roles.items() if r == want]
        if found:
            return found[0]
        if who == "standby":
            active = [n for n, r in roles.items() if r == "ACTIVE"]
            if active:
                return PEER[active[0]]
        raise Skip(f"no node is {want} now")

    # -- starting a fault --------------------------------------------------------------------------
    def _start(self, a: Applied) -> None:
        f, began = a.fault, self.now()
        k = f.kind
        if k in (Kind.KILL, Kind.FREEZE, Kind.TERM, Kind.CLOCK, Kind.DISK, Kind.MAINTENANCE, Kind.CONFIG,
                 Kind.SWITCH, Kind.FORCE):
            a.node = self.resolve(f.node)
        node = self.pair.nodes[a.node] if a.node else None
        if k in (Kind.KILL, Kind.FREEZE, Kind.TERM):
            assert node is not None and a.node is not None
            if not node.alive():
                raise Skip(f"{a.node} is not running")
            if k is not Kind.FREEZE:
                with self.lock:
                    self.held[a.node] += 1
        if k is Kind.KILL:
            assert node is not None and node.proc is not None and a.node is not None
            node.signal(signal.SIGKILL)
            node.proc.wait(5)
            self.rec.saw_exit(a.node, node.proc)
        elif k is Kind.FREEZE:
            assert a.node is not None
            self.lab.signal_host(a.node, signal.SIGSTOP)
        elif k is Kind.TERM:
            assert node is not None
            node.signal(signal.SIGTERM)
        elif k in (Kind.PARTITION, Kind.ONEWAY):
            self.lab.apply([r for s, d in f.edges for r in self.lab.cut_rules(s, d, both=k is Kind.PARTITION)])
        elif k is Kind.LOSS:
            self.lab.loss(*f.edges[0], f.loss)
        elif k is Kind.CLOCK:
            assert a.node is not None
            step_clock(self.clock_files[a.node], f.offset)
        elif k is Kind.DISK:
            assert node is not None
            a.extra["filler"] = str(self.lab.fill(node.data_dir))
        elif k is Kind.CTI_CRASH:
            a.node = self.resolve(f.node)
            self._crash_cti(a)
        elif k in (Kind.SWITCH, Kind.FORCE):
            a.start = (began, began)
            self._switch(a)
            return
        elif k is Kind.MAINTENANCE:
            self._maintenance(a, True)
        elif k is Kind.CONFIG:
            a.start = (began, began)
            self._config(a)
            return
        a.start = (began, self.now())
        a.result = a.result or "ok"

    def _crash_cti(self, a: Applied) -> None:
        assert a.node is not None
        with httpx.Client(trust_env=False, timeout=3.0) as http:
            try:
                pid = http.get(self.pair.monitor_url(a.node) + "/cti").json().get("pid")
            except (httpx.HTTPError, ValueError) as exc:
                raise Skip(f"{a.node}'s monitor did not answer: {exc!r}") from None
        if not pid:
            raise Skip(f"no CTI server runs on {a.node}")
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            raise Skip(f"CTI pid {pid} on {a.node} already gone") from None
        a.extra["pid"] = pid

    def _request(self, a: Applied, method: str, node: str, path: str, body: object, timeout: float) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.pair.token}"}
        with httpx.Client(trust_env=False, timeout=timeout) as http:
            return http.request(method, self.pair.arbiter_url(node) + path, json=body, headers=headers)

    def _switch(self, a: Applied) -> None:
        assert a.node is not None
        a.target = self.resolve(a.fault.target)
        body: dict[str, object] = {"target": a.target}
        if a.fault.kind is Kind.FORCE:
            body["force"] = True
        try:
            r = self._request(a, "POST", a.node, "/switch", body, 15.0)
            a.status, a.result = r.status_code, f"{r.status_code} {r.text[:160]}"
        except httpx.HTTPError as exc:
            a.result = f"no answer: {type(exc).__name__}"
        a.answered = self.now()

    def _maintenance(self, a: Applied, enabled: bool) -> None:
        """On: ask one node, then the other. A request that got no answer may still have taken effect, so the
        fault counts as started either way, and its heal (off) is retried on both nodes until one says yes."""
        assert a.node is not None
        deadline = time.monotonic() + (MAINTENANCE_OFF_S if not enabled else 0.0)
        while True:
            for node in (a.node, PEER[a.node]):
                try:
                    r = self._request(a, "POST", node, "/maintenance", {"enabled": enabled}, 2.0)
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    a.extra["on" if enabled else "off"] = node
                    return
            if enabled:
                a.result = "no answer (maintenance may be on)"
                return
            if time.monotonic() > deadline:
                raise Skip("maintenance off: neither node answered")
            time.sleep(0.2)

    def _config(self, a: Applied) -> None:
        assert a.node is not None
        with self.lock:
            self._value += 1
            seq = self._value
        value = f"198.18.{self.lab.net}.100:{10000 + seq}"
        w = Write(seq, a.node, value, sent=self.now())
        with self.lock:
            self.writes.append(w)
        try:
            r = self._request(a, "PUT", a.node, "/config", {"vip_address": value}, 5.0)
            w.status = r.status_code
            if r.status_code == 200:
                body = r.json()
                st = body["settings"]["vip_address"]
                w.stamp, w.replicated = (st["updated_at"], st["origin"]), bool(body.get("replicated"))
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            w.status = None
            a.result = f"no answer: {type(exc).__name__}"
        w.done = a.answered = self.now()
        a.status = w.status
        a.result = a.result or f"{w.status}"

    # -- healing it -------------------------------------------------------------------------------
    def _heal(self, a: Applied) -> None:
        if a.start is None or a.result.startswith(("skipped", "error")):
            return
        f, began = a.fault, self.now()
        k = f.kind
        node = self.pair.nodes[a.node] if a.node else None
        if k is Kind.KILL:
            assert node is not None and a.node is not None
            self._release(a.node)
        elif k is Kind.FREEZE:
            assert a.node is not None
            self.lab.signal_host(a.node, signal.SIGCONT)
        elif k is Kind.TERM:
            assert node is not None and a.node is not None
            if node.proc is not None:
                try:
                    node.proc.wait(max(0.0, TERM_WAIT_S - (self.now() - a.start[0])))
                except Exception:  # still running: it did not stop on SIGTERM (the checker will say so)
                    a.extra["killed"] = True
                    node.kill()
                self.rec.saw_exit(a.node, node.proc)  # before the restart below, whatever the watcher saw yet
            began = self.now()
            self._release(a.node)
        elif k in (Kind.PARTITION, Kind.ONEWAY):
            self.lab.apply([r for s, d in f.edges for r in self.lab.cut_rules(s, d, both=k is Kind.PARTITION)],
                           undo=True)
        elif k is Kind.LOSS:
            self.lab.loss(*f.edges[0], f.loss, undo=True)
        elif k is Kind.CLOCK:
            assert a.node is not None
            step_clock(self.clock_files[a.node], 0.0)
        elif k is Kind.DISK:
            Path(a.extra["filler"]).unlink(missing_ok=True)
        elif k is Kind.MAINTENANCE:
            self._maintenance(a, False)
        self.reconcile()
        a.heal = (began, self.now())

    def _release(self, node: str) -> None:
        with self.lock:
            self.held[node] -= 1

    def reconcile(self) -> None:
        """Start every node that is down while no kill or SIGTERM holds it down."""
        with self.lock:
            for node in NODES:
                n = self.pair.nodes[node]
                if self.held[node] == 0 and not n.alive():
                    n.start()
                    self.rec.note(node, "start")
