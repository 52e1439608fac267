"""HS_NOTIFY_COMMAND: a program the node runs for every event it has (SPEC 13), fed from the database.

``emit()`` writes the event into the database's outbox (``hook_event``: committed, so it survives a
crash) and wakes the runner. ``run()`` delivers the outbox one event at a time, in order (HS_SEQUENCE),
each until the program exits 0 for it: killed past HS_NOTIFY_TIMEOUT_S (its whole process group),
retried with backoff (1 s, doubling, at most 60 s), every failure one line of the fault-tolerant log and
``hotstandby_hook_failures_total``. An event that keeps failing holds the ones after it (order first);
the receiver drops a repeat by its HS_SEQUENCE (at least once: a crash between the program's exit 0 and
the row's deletion runs it again).

Nothing here is awaited by a tick, a role change or CTI: ``emit()`` is one insert (a role change's event
rides in the role's own transaction, ``Store.save_role``), the runner is a task of its own, and its
database calls run in a thread. The program runs in the node's sandbox with the node's environment
(secrets and systemd's variables removed) plus the event's HS_* variables; it dies with the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.metrics import ArbiterMetrics
from hotstandby.settings import NodeSettings
from hotstandby.store import OutboxEvent, Store, StoreError
from services.monitor.procctl import describe_exit, die_with_parent, signal_group

log = logging.getLogger("hotstandby.hooks")

EVENTS = {
    "role_change": "this node's role changed (HS_RULE, HS_CAUSE and HS_REASON say why)",
    "cti_started": "the CTI server was started (or restarted) on this node",
    "cti_stopped": "the CTI server was stopped on this node",
    "cti_failed": "the CTI server exited unexpectedly or cannot be started",
    "witness_lost": "the witness (etcd) stopped answering",
    "witness_found": "the witness answers (again)",
    "maintenance_on": "automatic switching paused on the pair",
    "maintenance_off": "automatic switching resumed",
    "peer_lost": "the peer failed N consecutive probes (its status turns Error)",
    "peer_found": "the peer answers again after it was lost",
}
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 60.0
KILL_GRACE_S = 1.0  # SIGTERM to the hook's group, then SIGKILL after this
POLL_S = 2.0  # the runner looks at the outbox at least this often (a separate monitor process enqueues too)
STDERR_TAIL = 500  # characters of the hook's stderr kept for the log line of a failure


@dataclass(frozen=True)
class Event:
    """One event of the node, as its hook sees it."""

    name: str  # one of EVENTS
    role: str  # this node's role now (after a role change)
    previous_role: str  # before the event (the same as role for events that are not role changes)
    epoch: int
    rule: str = ""
    cause: str = ""
    reason: str = ""  # the decision's sentence, or the log line that reported the event
    peer_role: str = ""  # the peer's last known role; empty when unknown


def cti_event(line: str) -> str | None:
    """The hook event a line of the CTI supervisor reports (services/monitor/supervisor.py), or None."""
    if line.startswith(("CTI server started", "CTI server restarted")):
        return "cti_started"
    if line.startswith("CTI server stopped"):
        return "cti_stopped"
    if line.startswith("CTI server failed") or (line.startswith("CTI server ") and ", restarting in " in line):
        return "cti_failed"  # it cannot be started, or it exited while it should run (the watchdog restarts it)
    return None


def event_env(ev: Event, *, node_id: str, cluster: str, at: str) -> dict[str, str]:
    """The HS_* variables of one event (HS_SEQUENCE is added at delivery: it is the outbox row's)."""
    if ev.name not in EVENTS:
        raise ValueError(f"unknown hook event {ev.name!r}")
    return {"HS_EVENT": ev.name, "HS_NODE_ID": node_id, "HS_ROLE": ev.role, "HS_PREVIOUS_ROLE": ev.previous_role,
            "HS_EPOCH": str(ev.epoch), "HS_RULE": ev.rule, "HS_CAUSE": ev.cause, "HS_REASON": ev.reason,
            "HS_PEER_ROLE": ev.peer_role, "HS_AT": at, "HS_CLUSTER_NAME": cluster}


def backoff_s(attempts: int) -> float:
    """The wait before the next attempt after ``attempts`` failed ones: 1, 2, 4 ... 60 s."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1))


def now_iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    ok: bool
    detail: str  # why it failed (exit status and stderr's tail, killed past the timeout, cannot start)


class Hooks:
    """The node's hook: events into the outbox (``emit``), and the runner that delivers them (``run``)."""

    def __init__(self, *, node: NodeSettings, store: Store, ftlog: FaultTolerantLog,
                 metrics: ArbiterMetrics | None = None, base_env: Callable[[], Mapping[str, str]] = lambda: {},
                 wall: Callable[[], float] = time.time) -> None:
        self.node, self.store, self.ftlog, self.metrics = node, store, ftlog, metrics
        self.command = shlex.split(node.notify_command) if node.notify_command.strip() else []
        self._base_env = base_env
        self._wall = wall
        self._wake = asyncio.Event()
        self.delivered = 0

    @property
    def enabled(self) -> bool:
        return bool(self.command)

    # -- events in ------------------------------------------------------------------------------
    def record(self, ev: Event) -> tuple[str, str, dict[str, str]]:
        """The outbox row of an event, for a caller that writes it in a transaction of its own (a role
        change: ``Store.save_role``); then call ``wake()``."""
        at = now_iso(self._wall())
        return ev.name, at, event_env(ev, node_id=self.node.node_id, cluster=self.node.cluster_name, at=at)

    def emit(self, ev: Event) -> int | None:
        """Queue one event (committed before this returns); its HS_SEQUENCE, or None when there is no hook
        or the database refused the write (that is logged, never raised: an event must not stop a tick)."""
        if not self.enabled:
            return None
        name, at, env = self.record(ev)
        try:
            seq = self.store.enqueue(name, at, env)
        except StoreError as exc:
            self.ftlog.write("Arbiter", f"Hook event {name} not queued: {exc}")
            self._count_failure()
            return None
        self.wake()
        return seq

    def wake(self) -> None:
        self._wake.set()

    # -- events out -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver the outbox in order, forever; a wake-up or POLL_S looks again."""
        while True:
            wait = await self.deliver_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    async def deliver_due(self) -> float:
        """Deliver every event that is due, in order; the seconds until the next look."""
        while True:
            try:  # in a thread: a stuck database must not stall the event loop (ticks, HTTP)
                item, pending = await asyncio.to_thread(self._peek)
            except StoreError as exc:
                log.warning("hook outbox unreadable: %s", exc)
                return POLL_S
            if self.metrics is not None:
                self.metrics.hook_pending.labels(self.node.node_id).set(pending)
            if item is None:
                return POLL_S
            due = item.next_try_at - self._wall()
            if due > 0:
                return min(due, POLL_S)
            await self.deliver(item)

    def _peek(self) -> tuple[OutboxEvent | None, int]:
        return self.store.next_event(), self.store.pending_events()

    async def deliver(self, item: OutboxEvent) -> bool:
        """Run the hook once for ``item``; True when it exited 0 (the row is then deleted)."""
        started = time.monotonic()
        out = await self.run_once(item)
        attempts = item.attempts + 1
        try:
            if out.ok:
                await asyncio.to_thread(self.store.delivered, item.sequence)
                self.delivered += 1
                if item.attempts:
                    self.ftlog.write("Arbiter", f"Hook {item.event} #{item.sequence} delivered after {attempts} "
                                                f"attempts")
                log.info("hook %s #%d delivered in %.2f s", item.event, item.sequence, time.monotonic() - started)
            else:
                delay = backoff_s(attempts)
                await asyncio.to_thread(self.store.retry_later, item.sequence, attempts=attempts,
                                        next_try_at=self._wall() + delay, error=out.detail)
                self.ftlog.write("Arbiter", f"Hook {item.event} #{item.sequence} failed (attempt {attempts}): "
                                            f"{out.detail}; next try in {delay:g} s")
                self._count_failure()
        except StoreError as exc:
            log.warning("hook outbox not updated: %s", exc)
        return out.ok

    async def run_once(self, item: OutboxEvent) -> Outcome:
        """The program with the event's environment: exit 0 within the timeout, or why not."""
        env = dict(self._base_env()) | item.env | {"HS_SEQUENCE": str(item.sequence)}
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=None,
                stderr=asyncio.subprocess.PIPE, start_new_session=True, preexec_fn=die_with_parent(os.getpid()))
        except OSError as exc:
            return Outcome(False, f"cannot run {self.command[0]}: {exc.strerror or exc}")
        tail = bytearray()

        async def read_stderr() -> None:
            assert proc.stderr is not None
            while chunk := await proc.stderr.read(4096):
                tail.extend(chunk)
                del tail[:-STDERR_TAIL]

        reader = asyncio.create_task(read_stderr())
        timeout = self.node.notify_timeout_s
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            await self._kill(proc)
            return Outcome(False, f"killed after {timeout:g} s (HS_NOTIFY_TIMEOUT_S)")
        finally:
            # Whatever the hook left in its group must not outlive it (nor hold its stderr open).
            signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader, 1.0)
            reader.cancel()
        if proc.returncode == 0:
            return Outcome(True, "exit status 0")
        said = " ".join(tail.decode(errors="replace").split())
        return Outcome(False, describe_exit(proc.returncode or 0) + (f": {said}" if said else ""))

    async def _kill(self, proc: asyncio.subprocess.Process) -> None:
        signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), KILL_GRACE_S)
        except TimeoutError:
            signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()

    # -- metrics ----------------------------------------------------------------------------------
    def _count_failure(self) -> None:
        if self.metrics is not None:
            self.metrics.hook_failures.labels(self.node.node_id).inc()
