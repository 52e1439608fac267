"""CTI supervisor shim: runs the CTI server process only while told to (SPEC R9).

What it guarantees, and how:
- The child runs in its own session/process group, so a stop (SIGTERM, then SIGKILL after
  `stop_grace_s`) reaches everything the CTI server started, and an exit sweeps the group.
- The child carries PR_SET_PDEATHSIG=SIGKILL (see `procctl.die_with_parent`), so it dies with the
  node process even when the node is SIGKILLed and no cleanup code runs.
- Every child is awaited (the asyncio child watcher reaps it): no zombies.
- Watchdog: an exit while desired=running is respawned at once, then with exponential backoff
  capped at 0.8·I (I = `restart_delay()`, the heartbeat interval, read live), so a respawn
  always comes within one I even counting exit detection and the spawn itself.
  Five exits in a row without reaching READY (or a missing command) make the state `failed`;
  it keeps retrying every I so it recovers when the cause goes away.
- start/stop/restart are serialised by one asyncio.Lock; `stop` sets desired=stopped before it
  waits for the lock and bumps a generation counter, so a pending watchdog respawn can never
  spawn after stop returned.

Readiness: the bundled simulator prints `HS-CTI port k/N`, `HS-CTI device k/M`, `HS-CTI READY`
on stdout. A program that never prints any `HS-CTI` line counts as running once it stayed alive
for `ALIVE_READY_S`.

Warm mode (`warm=True`, the node's `HS_CTI_MODE=warm`): the process runs on the STANDBY too, idle and
unregistered (desired=idle), and is told `ACTIVE <epoch>` / `STANDBY` on its stdin (the protocol is in
services/ctisim/sim.py). `start` activates it (spawning it first when none runs), `idle` deactivates it
and returns once it said `HS-CTI IDLE` (unregistered), or kills it after `stop_grace_s` and spawns a
fresh idle one: a STANDBY never keeps a registered CTI server. A warm child that never says IDLE, or says
READY unasked, is killed (it cannot be kept unregistered). The watchdog and the daily restart cover the
idle process as well; `stop` ends the process as in cold mode. The child also sees the end of its stdin
when the node dies, besides the parent-death signal.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, cast

from services.monitor.procctl import PDEATHSIG_AVAILABLE, describe_exit, die_with_parent, signal_group

log = logging.getLogger("hotstandby.cti")

PROTOCOL_PREFIX = "HS-CTI"
ALIVE_READY_S = 1.0  # a program without the HS-CTI protocol is "running" after this long alive
WARM_IDLE_S = 5.0  # warm mode: a child that has not said HS-CTI IDLE this long after its start is killed
BACKOFF_FIRST_S = 0.1  # second exit in a row; doubles from there, capped at restart_delay()
BACKOFF_RESET_UPTIME_S = 10.0  # a child that stayed up this long starts the backoff afresh
FAILED_AFTER_EXITS = 5  # exits in a row without reaching READY before the state is `failed`
DAILY_CHECK_S = 10.0  # wall-clock poll for the daily restart (the spec asks for <= 20 s)
DRAIN_TIMEOUT_S = 1.0  # after an exit, how long a straggler may hold the output pipes open
CAP_FRACTION = 0.8  # backoff cap as a share of I: the rest of I covers detection and spawn
MIN_RETRY_S = 0.04  # floor of the capped retry interval (the smallest heartbeat interval allowed)
STARTING_GRACE_S = 60.0  # a start that has not reached READY is healthy (IPSWS=OK) for this long
MAX_LINE = 64 * 1024  # longer output without a newline is forwarded in chunks of this size

_COUNT_LINE = re.compile(r"(port|device)s?\s+(\d+)\s*/\s*(\d+)")
_HHMM = re.compile(r"([01]\d|2[0-3]):[0-5]\d")

State = Literal["stopped", "starting", "running", "failed"]


class _ChildProtocol(asyncio.SubprocessProtocol):
    """Reads stdout/stderr as they arrive (the pipes never fill) and reports exit and close.

    We use our own protocol rather than `asyncio.subprocess.Process`: its `wait()` only returns
    once the output pipes are closed too, and a grandchild holding them would hide the exit.
    """

    def __init__(self, on_connect: Callable[[int], None], on_line: Callable[[int, str], None]) -> None:
        loop = asyncio.get_running_loop()
        self._on_connect = on_connect
        self._on_line = on_line
        self._buffers: dict[int, bytearray] = {}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called before any output is delivered, so every line can name its pid. (uvloop's transport has
        # the interface without deriving from asyncio.SubprocessTransport.)
        self._on_connect(cast(asyncio.SubprocessTransport, transport).get_pid())

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buf = self._buffers.setdefault(fd, bytearray())
        buf += data
        while (end := buf.find(b"\n")) >= 0:
            line = bytes(buf[:end])
            del buf[: end + 1]
            self._emit(fd, line)
        while len(buf) > MAX_LINE:
            self._emit(fd, bytes(buf[:MAX_LINE]))
            del buf[:MAX_LINE]

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        buf = self._buffers.pop(fd, None)
        if buf:
            self._emit(fd, bytes(buf))

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        # All pipes closed and the process exited.
        if not self.closed.done():
            self.closed.set_result(None)

    def _emit(self, fd: int, raw: bytes) -> None:
        try:
            self._on_line(fd, raw.decode("utf-8", "replace").rstrip("\r"))
        except Exception:  # a parsing bug must never stop us reading (the pipe would fill)
            log.exception("cannot handle CTI output line")


class _Child:
    """One spawned CTI process and what its output told us."""

    def __init__(self, epoch: int, started_at: float) -> None:
        self.epoch = epoch
        self.started_at = started_at
        self.pid = 0
        self.transport: asyncio.SubprocessTransport | None = None
        self.protocol: _ChildProtocol | None = None
        self.watch_task: asyncio.Task[None] | None = None
        self.ready = False  # counted as running (by READY, or alive long enough without protocol)
        self.ready_line = False  # READY seen, possibly before the spawn call even returned
        self.saw_protocol = False
        self.ports = 0
        self.devices = 0
        self.expected_exit = False  # set by stop/restart before they signal it
        # Warm mode: starting (no IDLE yet), idle, activating (ACTIVE sent), deactivating (STANDBY sent).
        self.phase: Literal["starting", "idle", "activating", "deactivating"] = "starting"
        self.idle_ack: asyncio.Future[None] | None = None  # resolved by the IDLE that answers STANDBY
        self.coming_up_since = started_at  # the spawn, or (warm) the ACTIVE order: READY is due after it
        self.violation: str | None = None  # why a warm child was killed for breaking the protocol


class CtiSupervisor:
    """Runs `command` while desired=running; see the module docstring for the guarantees."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        restart_delay: Callable[[], float],
        on_event: Callable[[str], None] = lambda line: None,
        stop_grace_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = datetime.now,
        daily_check_s: float = DAILY_CHECK_S,
        starting_grace_s: float = STARTING_GRACE_S,
        warm: bool = False,
        warm_idle_s: float = WARM_IDLE_S,
    ) -> None:
        if not command:
            raise ValueError("CTI command is empty")
        self._command = [str(part) for part in command]
        self._env = dict(env) if env is not None else None
        self._restart_delay = restart_delay
        self._on_event = on_event
        self._stop_grace_s = stop_grace_s
        self._starting_grace_s = starting_grace_s
        self._clock = clock
        self._wall = wall
        self._daily_check_s = daily_check_s
        self.warm = warm
        self._warm_idle_s = warm_idle_s

        self._lock = asyncio.Lock()
        self._desired: Literal["running", "idle", "stopped"] = "stopped"
        self._epoch: int | None = None
        self._child: _Child | None = None
        self._gen = 0  # bumped by every start/stop/restart call: stale respawns see it and give up
        self._restarts = 0
        self._backoff_step = 0  # exits in a row since the backoff was last reset
        self._exits_unready = 0  # exits in a row without reaching READY
        self._failed = False
        self._last_error: str | None = None
        # Why the last start never reached READY, kept through a stop: a node whose CTI cannot run
        # must not look healthy as STANDBY, or failback (R3) hands ACTIVE straight back to it.
        self._failed_start: str | None = None
        self._respawn_task: asyncio.Task[None] | None = None
        self._respawn_sleeping = False
        self._daily = ""
        self._daily_done: tuple[str, str] | None = None
        self._daily_wake = asyncio.Event()
        self._daily_task: asyncio.Task[None] | None = None
        self._closed = False
        if not PDEATHSIG_AVAILABLE:
            log.warning("PR_SET_PDEATHSIG unavailable here: the CTI server may outlive a killed node")

    # ----------------------------------------------------------------- read side

    @property
    def state(self) -> State:
        child = self._child
        if child is not None and child.ready:
            return "running"
        if self._failed:
            return "failed"  # stays `failed` through retries until one reaches READY
        if self._desired == "idle":
            return "stopped"  # warm STANDBY: the process idles, the CTI server is not serving
        if child is not None or self._desired == "running":
            return "starting"  # spawned, or an exit whose respawn is pending
        return "stopped"

    @property
    def up(self) -> bool:
        return self.state == "running"

    @property
    def restarts(self) -> int:
        return self._restarts

    def snapshot(self) -> dict[str, Any]:
        child = self._child
        return {
            "state": self.state,
            "pid": child.pid if child is not None else None,
            "restarts": self._restarts,
            "ports_registered": child.ports if child is not None else 0,
            "devices_registered": child.devices if child is not None else 0,
            "last_error": self._last_error,
            "desired": self._desired,
            "epoch": child.epoch if child is not None else self._epoch,
        } | ({"mode": "warm", "idle": child is not None and child.phase == "idle"} if self.warm else {})

    def self_check(self) -> str | None:
        """None when healthy (stopped, or running); else a short reason for IPSWS=ERROR. A CTI that
        failed on its last start stays unhealthy while stopped, until a start reaches READY (or the
        node restarts): with switch_on_application_error the peer must not fail back to it."""
        if self._desired == "idle" and self._failed:
            return f"idle CTI server failed: {self._last_error}"
        if self._desired != "running":
            return f"CTI server failed on its last start: {self._failed_start}" if self._failed_start else None
        state = self.state
        if state == "running":
            return None
        if state == "failed":
            return self._last_error or "CTI server failed"
        child = self._child
        if child is not None:
            # Coming up (0.2 s a port and a device) is progress, not an application error: a peer
            # probing IPSWS would otherwise take ACTIVE back mid-startup, and the pair ping-pongs
            # whenever the CTI startup outlasts N·I. A start that never reaches READY still shows.
            starting_for = self._clock() - child.coming_up_since
            if starting_for <= self._starting_grace_s:
                return None
            return f"CTI server starting for {starting_for:.0f} s without READY"
        return "CTI server not running, restart pending"

    # ----------------------------------------------------------------- commands

    async def start(self, *, epoch: int) -> None:
        """desired=running; spawn unless a child already runs. Returns once spawned, not READY."""
        if self._closed:
            raise RuntimeError("CTI supervisor is closed")
        self._gen += 1
        self._cancel_sleeping_respawn()
        async with self._lock:
            self._desired = "running"
            self._epoch = epoch
            self._ensure_daily_task()
            if self._child is not None:
                # Already running (an older epoch keeps running: a promotion is not a restart); a warm
                # idle one is activated now, or as soon as it says IDLE.
                if self.warm:
                    self._activate(self._child)
                return
            # A promotion is a fresh attempt: forget the previous backoff and failure streak.
            self._backoff_step = 0
            self._exits_unready = 0
            child = await self._spawn_locked()
            if child is not None:
                self._event(f"CTI server started, pid {child.pid}, epoch {epoch}")

    async def idle(self, reason: str = "") -> None:
        """Warm mode: desired=idle. A registered child is told STANDBY and answers IDLE (unregistered)
        within stop_grace_s, or is killed and replaced by a fresh idle one; with no child, one is
        spawned. Returns once no registered CTI server is left on this node."""
        if not self.warm:
            raise RuntimeError("idle() is for warm mode; cold mode stops the CTI server")
        if self._closed:
            raise RuntimeError("CTI supervisor is closed")
        self._gen += 1
        self._cancel_sleeping_respawn()
        async with self._lock:
            self._desired = "idle"
            self._ensure_daily_task()
            child = self._child
            if child is None:
                self._backoff_step = 0
                self._exits_unready = 0
                new = await self._spawn_locked()
                if new is not None:
                    self._event(f"CTI server started idle (warm), pid {new.pid}")
                return
            if child.phase != "activating":
                return  # idle already, or still coming up (it is not told ACTIVE now)
            words = "CTI server deactivated" + (f" ({reason})" if reason else "")
            if not await self._deactivate_locked(child):
                words += f"; it did not go idle within {self._stop_grace_s:g} s and was replaced"
            self._event(words)

    def follow_epoch(self, epoch: int) -> None:
        """The node's epoch moved on while CTI runs (the survivor of a healed dual ACTIVE moves above its peer,
        R4): a later respawn or restart registers at it. The running server keeps the epoch it registered with
        (a promotion is not a restart)."""
        if self._desired == "running" and self._epoch is not None and epoch > self._epoch:
            self._epoch = epoch

    async def stop(self, reason: str = "") -> None:
        """desired=stopped; SIGTERM the group, SIGKILL after stop_grace_s; returns once reaped."""
        was_wanted = self._desired != "stopped" or self._child is not None
        # Before waiting for the lock: an exit noticed meanwhile must not schedule a respawn.
        self._desired = "stopped"
        self._gen += 1
        self._cancel_sleeping_respawn()
        async with self._lock:
            self._desired = "stopped"  # again: a start() queued before us may have set it
            if self._failed:
                self._failed_start = self._last_error or "CTI server failed"
            self._failed = False
            child = self._child
            killed = False
            if child is not None:
                killed = await self._terminate_locked(child)
                was_wanted = True
            if was_wanted:
                words = "CTI server stopped" + (f" ({reason})" if reason else "")
                if killed:
                    words += f"; it ignored SIGTERM for {self._stop_grace_s:g} s and was killed"
                self._event(words)

    async def restart(self, reason: str, *, counted: bool = True) -> None:
        """Stop then start with the same epoch. Does nothing while desired=stopped (R9: CTI only
        runs on the ACTIVE node, so a restart must never start it on a STANDBY one)."""
        self._gen += 1
        self._cancel_sleeping_respawn()
        async with self._lock:
            if not self._may_run():
                log.warning("CTI restart (%s) ignored: CTI is not meant to run on this node", reason)
                return
            child = self._child
            if child is not None:
                await self._terminate_locked(child)
            self._backoff_step = 0
            self._exits_unready = 0
            new = await self._spawn_locked()
            if new is not None:
                if counted:
                    self._restarts += 1
                self._event(f"CTI server restarted ({reason}), pid {new.pid}, "
                            + ("idle (warm)" if self._desired == "idle" else f"epoch {new.epoch}"))

    def set_daily_restart(self, hhmm: str) -> None:
        """Empty disables; "HH:MM" (local wall time) restarts a running CTI server once a day then."""
        hhmm = hhmm.strip()
        if hhmm and not _HHMM.fullmatch(hhmm):
            raise ValueError(f"daily CTI restart time must be HH:MM (00:00-23:59), not {hhmm!r}")
        if hhmm != self._daily:  # the node calls this every second; wake the daily loop only for a change
            self._daily = hhmm
            self._daily_wake.set()

    async def daily_tick(self) -> bool:
        """One check of the daily restart (the loop calls it; tests may too). True if it restarted."""
        target = self._daily
        if not target:
            return False
        now = self._wall()
        if now.strftime("%H:%M") != target:
            return False
        key = (now.date().isoformat(), target)
        if self._daily_done == key:
            return False
        # Marked even when CTI is not running: a promotion inside that minute needs no restart.
        self._daily_done = key
        if not self._may_run():
            return False
        await self.restart(f"daily restart at {target}")
        return True

    async def aclose(self) -> None:
        """Node shutdown: stop the CTI server and every task of ours."""
        self._closed = True
        # asyncio.wait, not `await task` under suppress(CancelledError): that would also swallow
        # a cancellation of aclose() itself.
        if self._daily_task is not None:
            self._daily_task.cancel()
            await asyncio.wait({self._daily_task})
            self._daily_task = None
        await self.stop("node shutdown")
        task = self._respawn_task
        if task is not None and not task.done():
            # Stale (stop bumped the generation) and past its sleep: let it finish, it spawns nothing.
            await asyncio.wait({task})

    # ----------------------------------------------------------------- internals

    def _event(self, line: str) -> None:
        log.info(line)
        try:
            self._on_event(line)
        except Exception:
            log.exception("CTI on_event callback failed")

    def _may_run(self) -> bool:
        """A process belongs on this node: desired running (with an epoch), or warm and idle."""
        return (self._desired == "running" and self._epoch is not None) or self._desired == "idle"

    def _child_env(self, epoch: int) -> dict[str, str]:
        env = dict(self._env) if self._env is not None else dict(os.environ)
        env["HS_EPOCH"] = str(epoch)
        if self.warm:
            env["HS_CTI_MODE"] = "warm"
        return env

    def _tell(self, child: _Child, line: str) -> bool:
        """Write one order to a warm child's stdin; False when it cannot take it (gone, pipe closed)."""
        pipe = child.transport.get_pipe_transport(0) if child.transport is not None else None
        # Duck-typed: uvloop's pipe transports (the node runs on uvloop when installed) are not
        # asyncio.WriteTransport subclasses.
        write = getattr(pipe, "write", None)
        if pipe is None or write is None or pipe.is_closing():
            return False
        write(f"{line}\n".encode())
        return True

    def _activate(self, child: _Child) -> None:
        """Tell an idle warm child ACTIVE (the current epoch); one that is not idle yet is told on IDLE."""
        if child.phase != "idle" or child is not self._child or self._desired != "running" or self._epoch is None:
            return
        child.epoch = self._epoch
        child.phase = "activating"
        child.coming_up_since = self._clock()
        if self._tell(child, f"ACTIVE {self._epoch}"):
            self._event(f"CTI server activated, pid {child.pid}, epoch {self._epoch}")
        else:
            log.warning("cannot tell CTI server %d to become ACTIVE: its stdin is closed", child.pid)

    async def _deactivate_locked(self, child: _Child) -> bool:
        """STANDBY to a warm child; True once it said IDLE. Otherwise (no answer within stop_grace_s, or it
        exited) it is killed and, while desired=idle, a fresh idle child takes its place."""
        assert child.protocol is not None
        child.ready = False
        child.phase = "deactivating"
        ack = child.idle_ack = asyncio.get_running_loop().create_future()
        if self._tell(child, "STANDBY"):
            await asyncio.wait({ack, child.protocol.exited}, timeout=self._stop_grace_s,
                               return_when=asyncio.FIRST_COMPLETED)
        if ack.done():
            return True
        await self._terminate_locked(child)
        if self._desired == "idle" and self._child is None:
            await self._spawn_locked()
        return False

    def _warm_violation(self, child: _Child, what: str) -> None:
        """A warm child that breaks the protocol could register on a STANDBY: kill it (the watchdog
        counts it as an exit that never came up)."""
        if child.expected_exit or child is not self._child:
            return
        child.violation = f"warm mode: the CTI server {what}"
        self._event(f"CTI server killed: {child.violation}")
        signal_group(child.pid, signal.SIGKILL)

    async def _spawn_locked(self) -> _Child | None:
        """Spawn one child (caller holds the lock). None when it cannot even be started."""
        assert self._epoch is not None or self.warm
        epoch = self._epoch if self._epoch is not None else 0
        child = _Child(epoch, self._clock())
        program = self._command[0]
        try:
            transport, protocol = await asyncio.get_running_loop().subprocess_exec(
                lambda: _ChildProtocol(
                    lambda pid: setattr(child, "pid", pid), lambda fd, line: self._on_line(child, fd, line)
                ),
                *self._command,
                stdin=subprocess.PIPE if self.warm else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self._child_env(epoch),
                start_new_session=True,
                preexec_fn=die_with_parent(os.getpid()),
            )
        except (FileNotFoundError, NotADirectoryError):
            self._spawn_failed(f"command not found: {program}")
            return None
        except PermissionError:
            self._spawn_failed(f"permission denied: {program}")
            return None
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._spawn_failed(f"cannot start {program}: {exc}")
            return None
        child.transport = transport
        child.protocol = protocol
        child.pid = transport.get_pid()
        self._child = child
        child.watch_task = asyncio.create_task(self._watch(child), name=f"cti-watch-{child.pid}")
        if child.ready_line:
            # READY arrived while the spawn was still being set up (a fast child): honour it now,
            # after the caller has announced the start.
            asyncio.get_running_loop().call_soon(self._mark_ready, child)
        if child.phase == "idle":
            asyncio.get_running_loop().call_soon(self._activate, child)  # IDLE came just as fast
        return child

    def _spawn_failed(self, reason: str) -> None:
        newly = not self._failed
        self._failed = True
        self._last_error = reason
        delay = self._cap()
        if newly:
            self._event(f"CTI server failed: {reason}; retrying every {delay:g} s")
        else:
            log.debug("CTI spawn failed again: %s", reason)
        self._schedule_respawn(delay)

    def _cap(self) -> float:
        """The longest backoff: CAP_FRACTION of I, so exit detection plus spawn still land within one
        I (R9); floored so a bad value cannot busy-loop."""
        try:
            interval = float(self._restart_delay())
        except Exception:  # a settings bug must not kill the watchdog
            log.exception("restart_delay() failed; using 1 s")
            interval = 1.0
        return max(MIN_RETRY_S, round(CAP_FRACTION * interval, 3))

    def _next_delay(self) -> float:
        step = self._backoff_step
        self._backoff_step += 1
        cap = self._cap()
        if self._failed:
            return cap
        if step == 0:
            return 0.0
        return min(BACKOFF_FIRST_S * 2 ** min(step - 1, 30), cap)

    def _on_line(self, child: _Child, fd: int, line: str) -> None:
        if fd == 1 and line.startswith(PROTOCOL_PREFIX):
            child.saw_protocol = True
            rest = line[len(PROTOCOL_PREFIX) :].strip()
            if self.warm and rest in ("READY", "IDLE"):
                self._on_warm_line(child, rest)
            elif rest == "READY":
                child.ready_line = True
                self._mark_ready(child)
            elif match := _COUNT_LINE.fullmatch(rest):
                if match.group(1) == "port":
                    child.ports = int(match.group(2))
                else:
                    child.devices = int(match.group(2))
            log.debug("cti[%d] %s", child.pid, line)
            return
        log.info("cti[%d] %s%s", child.pid, "" if fd == 1 else "stderr: ", line)

    def _on_warm_line(self, child: _Child, word: str) -> None:
        if word == "IDLE":
            was = child.phase
            child.phase = "idle"
            child.ready = False
            child.ports = child.devices = 0
            if child.idle_ack is not None and not child.idle_ack.done():
                child.idle_ack.set_result(None)
            if was == "starting" and child is self._child:
                if self._failed:
                    self._event(f"CTI server idle again, pid {child.pid} (recovered from: {self._last_error})")
                self._failed = False
                self._exits_unready = 0
            self._activate(child)
        elif child.phase == "activating":
            child.ready_line = True
            self._mark_ready(child)
        elif child.phase != "deactivating":  # a READY that crossed our STANDBY is stale, not a violation
            self._warm_violation(child, "said READY without being told ACTIVE")

    def _mark_ready(self, child: _Child) -> None:
        if child.ready or child is not self._child or child.expected_exit:
            return
        child.ready = True
        recovered = self._failed
        self._failed = False
        self._failed_start = None
        self._exits_unready = 0
        words = f"CTI server ready, pid {child.pid}"
        if child.saw_protocol:
            words += f", {child.ports} ports and {child.devices} devices registered"
        if recovered:
            words += f" (recovered from: {self._last_error})"
        self._event(words)

    async def _watch(self, child: _Child) -> None:
        """Follows one child from spawn to reaping: readiness fallback, exit, group sweep, drain."""
        assert child.protocol is not None and child.transport is not None
        exited = child.protocol.exited
        if self.warm:
            done, _ = await asyncio.wait({exited}, timeout=self._warm_idle_s)
            if not done and child.phase == "starting":
                self._warm_violation(child, f"did not say HS-CTI IDLE within {self._warm_idle_s:g} s of its start")
        else:
            done, _ = await asyncio.wait({exited}, timeout=ALIVE_READY_S)
            if not done and not child.saw_protocol:
                self._mark_ready(child)
        await exited
        returncode = child.transport.get_returncode()
        # Whatever the CTI server left in its group must not outlive it either.
        signal_group(child.pid, signal.SIGKILL)
        if not child.expected_exit:
            self._on_exit(child, returncode if returncode is not None else -1)
        # Let the last output lines arrive; a straggler that escaped the group could hold the
        # pipes open forever, so close them after a bound.
        await asyncio.wait({child.protocol.closed}, timeout=DRAIN_TIMEOUT_S)
        child.transport.close()

    def _on_exit(self, child: _Child, returncode: int) -> None:
        """An exit nobody asked for: the watchdog (R9)."""
        if child is not self._child:
            return
        self._child = None
        what = child.violation or describe_exit(returncode)
        self._last_error = what
        if not self._may_run():
            self._event(f"CTI server {what}")
            return
        if self._clock() - child.started_at >= BACKOFF_RESET_UPTIME_S:
            self._backoff_step = 0
        if not child.ready and child.phase in ("starting", "activating"):
            self._exits_unready += 1
        newly_failed = False
        if self._exits_unready >= FAILED_AFTER_EXITS:
            self._last_error = f"{what} {self._exits_unready} times in a row"
            newly_failed = not self._failed
            self._failed = True  # before the delay: from now on retries come at the cap
        delay = self._next_delay()
        self._event(f"CTI server {what}, restarting in {delay:g} s")
        if newly_failed:
            self._event(f"CTI server failed: {self._last_error}; retrying every {self._cap():g} s")
        self._schedule_respawn(delay)

    def _schedule_respawn(self, delay: float) -> None:
        if self._closed:
            return
        self._respawn_task = asyncio.create_task(self._respawn_later(delay, self._gen), name="cti-respawn")

    def _cancel_sleeping_respawn(self) -> None:
        # Only while it sleeps: cancelling a spawn in progress is handled by the generation check.
        if self._respawn_task is not None and self._respawn_sleeping:
            self._respawn_task.cancel()
            self._respawn_task = None
            self._respawn_sleeping = False

    async def _respawn_later(self, delay: float, gen: int) -> None:
        self._respawn_sleeping = True
        try:
            await asyncio.sleep(delay)
        finally:
            if self._respawn_task is asyncio.current_task():
                self._respawn_sleeping = False
        async with self._lock:
            if gen != self._gen or not self._may_run() or self._child is not None:
                return  # a start/stop/restart came in between: it decided
            child = await self._spawn_locked()
            if child is not None:
                self._restarts += 1
                self._event(f"CTI server restarted (watchdog), pid {child.pid}, epoch {child.epoch}")

    async def _terminate_locked(self, child: _Child) -> bool:
        """SIGTERM the group, SIGKILL after the grace; returns once reaped. True if SIGKILL was needed.

        The lock is held throughout, even if our caller is cancelled: a half-stopped child must not
        overlap with the next start.
        """
        task = asyncio.ensure_future(self._terminate(child))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            await task
            raise

    async def _terminate(self, child: _Child) -> bool:
        assert child.protocol is not None
        child.expected_exit = True
        exited = child.protocol.exited
        killed = False
        if not exited.done():
            signal_group(child.pid, signal.SIGTERM)
            done, _ = await asyncio.wait({exited}, timeout=self._stop_grace_s)
            if not done:
                killed = True
                signal_group(child.pid, signal.SIGKILL)
                await exited
        signal_group(child.pid, signal.SIGKILL)  # members that ignored SIGTERM after the leader left
        if child.watch_task is not None:
            await child.watch_task
        if self._child is child:
            self._child = None
        return killed

    def _ensure_daily_task(self) -> None:
        if self._daily_task is None and not self._closed:
            self._daily_task = asyncio.create_task(self._daily_loop(), name="cti-daily-restart")

    async def _daily_loop(self) -> None:
        while not self._closed:
            self._daily_wake.clear()
            try:
                await self.daily_tick()
            except Exception:
                log.exception("daily CTI restart check failed")
            # Not asyncio.wait_for: on 3.11 it can swallow our cancellation when the event is set
            # at the same moment (aclose right after set_daily_restart hung that way).
            waiter = asyncio.ensure_future(self._daily_wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=self._daily_check_s)
            finally:
                waiter.cancel()
