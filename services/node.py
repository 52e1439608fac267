"""Wires one node: store, log, settings, CTI supervisor, arbiter and monitor, in one event loop.

``hotstandby node`` runs both services in one process (the CTI child dies with it, R9) and is
the deployment we recommend. ``hotstandby arbiter`` and ``hotstandby monitor`` run them apart,
sharing ``HS_DATA_DIR``: the monitor then follows the role the arbiter commits to the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import json
import logging
import os
import shlex
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import uvicorn

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.hlc import HybridClock
from hotstandby.http1 import Connection, HttpError, Response
from hotstandby.metrics import ArbiterMetrics, monitor_registry
from hotstandby.model import Decision, NodeState, Role
from hotstandby.sdnotify import CHILD_ENV, Notifier
from hotstandby.settings import ClusterSettings, NodeSettings, SettingsError, check_startable
from hotstandby.store import Store, StoreError
from hotstandby.tls import client_context
from hotstandby.witness import EtcdWitness
from services.arbiter.app import create_app as create_arbiter_app
from services.arbiter.config import ConfigBook
from services.arbiter.heartbeat import Arbiter
from services.arbiter.hotpath import beat_route
from services.arbiter.peer import PeerClient
from services.fastpath import FastFirst, Route
from services.hooks import Event, Hooks, cti_event
from services.monitor.app import MonitorContext, probe, whoami
from services.monitor.app import create_app as create_monitor_app
from services.monitor.cti import CtiService, NotActive
from services.monitor.hotpath import probe_route
from services.monitor.supervisor import CtiSupervisor

log = logging.getLogger("hotstandby.node")
SECRET_ENV = ("HS_PEER_SECRET", "HS_ADMIN_TOKEN")


class StartupError(Exception):
    """The node cannot start: one line for the operator, and the exit status."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the node decides what SIGTERM means, R10), and without
    its ten wake-ups a second: it waits for ``should_exit`` to be set instead of polling it (it only
    polled to refresh the Date header we do not send, and for a request limit we do not set)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    @property
    def should_exit(self) -> bool:
        return bool(self.__dict__.get("_exit_asked", False))

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self.__dict__["_exit_asked"] = value
        exit_event: asyncio.Event | None = self.__dict__.get("_exit_event")
        if value and exit_event is not None:
            exit_event.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the default headers, once
        self.__dict__["_exit_event"] = exit_event = asyncio.Event()
        if not self.should_exit:
            await exit_event.wait()


def cti_command(node: NodeSettings) -> list[str]:
    if node.cti_command.strip():
        return shlex.split(node.cti_command)
    return [sys.executable, "-m", "services.ctisim.sim", "--ports", str(node.cti_ports),
            "--devices", str(node.cti_devices)]


def child_env() -> dict[str, str]:
    """What a child of the node (CTI, a hook) inherits: our environment without secrets and without
    the service manager's notification variables (only the node speaks to systemd)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(SECRET_ENV) and k not in CHILD_ENV}


def cti_env(node: NodeSettings) -> dict[str, str]:
    """The CTI child's environment: ours without secrets, plus who it runs for."""
    return child_env() | {"HS_NODE_ID": node.node_id, "HS_CTI_MANAGER_URL": node.cti_manager_url}


def _http_protocol() -> Any:
    """httptools with each answer in one segment (services/segments.py), or uvicorn's choice without it."""
    try:
        from services.segments import HttpToolsOneWrite
    except ImportError:  # httptools is not installed
        from uvicorn.protocols.http.auto import AutoHTTPProtocol
        return AutoHTTPProtocol
    return HttpToolsOneWrite


def _server(app: Any, node: NodeSettings, port: int, route: Route) -> _Server:
    """Keep-alive 120 s: the peer's probe connections stay open between ticks (lane.KEEPALIVE_S). What
    ``route`` takes (the probes, the exchange) is answered before uvicorn's protocol is even made
    (services/fastpath.py); no proxy headers are read (nothing here sits behind a proxy that sets them)."""
    ssl: dict[str, Any] = {}
    if node.tls:
        ssl = {"ssl_certfile": node.tls_cert_file, "ssl_keyfile": node.tls_key_file}
        if node.tls_ca_file:
            ssl["ssl_ca_certs"] = node.tls_ca_file
    # httptools parses requests (uvicorn picks it when installed); no Server or Date header: the peer and
    # HAProxy read neither, and every answer on the peer link is shorter without them.
    config = uvicorn.Config(app, host=node.bind_host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=1, timeout_keep_alive=120, lifespan="off",
                            server_header=False, date_header=False, proxy_headers=False,
                            http=partial(FastFirst, route, _http_protocol()), **ssl)  # type: ignore[arg-type]
    return _Server(config)


@dataclass
class Node:
    node: NodeSettings
    store: Store
    ftlog: FaultTolerantLog
    hlc: HybridClock
    config: ConfigBook
    supervisor: CtiSupervisor | None = None
    cti: CtiService | None = None
    arbiter: Arbiter | None = None
    hooks: Hooks | None = None
    servers: list[_Server] = field(default_factory=list)


def _lock_data_dir(node: NodeSettings) -> int:
    """One arbiter per data directory: a second one would overwrite the first one's role."""
    try:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(node.data_dir / "arbiter.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StartupError(f"cannot use HS_DATA_DIR {node.data_dir}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StartupError(f"another arbiter is running with HS_DATA_DIR {node.data_dir}", 1) from None
    return fd  # held (never closed) for the life of the process


def cannot_write(node: NodeSettings, exc: StoreError) -> StartupError:
    """A start that cannot write its database refuses in one line (exit 2), as one that cannot read it does."""
    return StartupError(f"cannot write database {node.db_path}: {exc}; free space on (or repair) the data dir, "
                        "then start again")


def open_node(node: NodeSettings, bootstrap: ClusterSettings, *, arbiter: bool = True) -> Node:
    if arbiter:
        _lock_data_dir(node)
    try:
        store = Store(node.db_path)
    except StoreError as exc:
        raise StartupError(str(exc)) from None
    ftlog = FaultTolerantLog(node.log_dir, node_id=node.node_id)
    hlc = HybridClock(time.time)
    try:
        config = ConfigBook(store, hlc, node.node_id, bootstrap, writer=arbiter)
    except StoreError as exc:  # the bootstrap settings cannot be written (a full or read-only data disk)
        raise cannot_write(node, exc) from None
    try:
        check_startable(node, config.current)
    except SettingsError as exc:
        raise StartupError(f"refusing to start: {exc}") from None
    return Node(node, store, ftlog, hlc, config)


def _supervisor(n: Node) -> CtiSupervisor:
    def event(line: str) -> None:
        n.ftlog.write("CTI", line)
        kind = cti_event(line)
        if kind and n.hooks is not None and n.hooks.enabled:
            if n.arbiter is not None:
                state = n.arbiter.state
            else:  # the monitor alone: the role the arbiter committed (the arbiter's process runs the hook)
                rec = n.store.load_node()
                state = NodeState(n.node.node_id, Role(rec.role) if rec else Role.STANDBY, rec.epoch if rec else 0)
            n.hooks.emit(Event(kind, state.role.value, state.role.value, state.epoch, reason=line,
                               peer_role=state.peer.role.value if state.peer else ""))

    return CtiSupervisor(cti_command(n.node), env=cti_env(n.node),
                         restart_delay=lambda: n.config.current.heartbeat_interval_s, on_event=event,
                         warm=n.node.cti_mode == "warm")


def _self_check(n: Node) -> Callable[[], str | None]:
    def check() -> str | None:
        # One answer for both channels: the monitor's IPSWS and the arbiter's vouch in the exchange.
        if n.arbiter:  # both services in this process: the arbiter's CTI handle is this supervisor
            return n.arbiter.app_problem()
        return n.supervisor.self_check() if n.supervisor else None

    return check


def _monitor_app(n: Node, role: Callable[[], Role | None]) -> tuple[Any, Route]:
    """The monitor's application, and the route its connections answer first (the probes)."""
    assert n.supervisor is not None and n.cti is not None
    sup = n.supervisor
    ctx = MonitorContext(
        node=n.node, address=lambda: n.node.local_address or n.config.current.address_of(n.node.node_id),
        role=role, cti=n.cti, registry=monitor_registry(n.node.node_id, lambda: sup.up, lambda: sup.restarts),
        ftlog=n.ftlog, self_check=_self_check(n),
    )
    return create_monitor_app(ctx), probe_route(probe(ctx), whoami(ctx))


class _LocalCti:
    """The arbiter's handle on the CTI supervisor when both services share this process."""

    def __init__(self, service: CtiService) -> None:
        self._service = service

    async def converge(self) -> None:
        await self._service.converge()

    def snapshot(self) -> dict[str, Any]:
        return self._service.supervisor.snapshot()

    async def restart(self) -> str | None:
        try:
            await self._service.restart()
        except NotActive as exc:
            return str(exc)
        return None

    def vouch(self) -> tuple[bool, str | None]:
        # The monitor serves from this very process: an answered exchange proves it serves too.
        return True, self._service.self_check()


class _RemoteCti:
    """The arbiter's handle when the monitor is a separate process: it follows the committed role,
    and the arbiter waits (bounded) until the monitor reports the CTI state that role implies."""

    def __init__(self, n: Node, role: Callable[[], Role]) -> None:
        self._n, self._role = n, role
        self._last: dict[str, Any] = {"state": "unknown"}

    def _monitor(self) -> tuple[str, int, ssl.SSLContext | None]:
        """The local monitor's address, and the TLS context to reach it with (None: plain HTTP)."""
        cfg, node = self._n.config.current, self._n.node
        if node.tls:  # the monitor's certificate names the node's address, not 127.0.0.1
            host = node.local_address or cfg.address_of(node.node_id)
            return host, cfg.monitor_port, client_context(node.tls_ca_file, node.tls_cert_file, node.tls_key_file)
        host = "127.0.0.1" if node.bind_host in ("", "0.0.0.0", "::") else node.bind_host
        return host, cfg.monitor_port, None

    async def _call(self, method: str, path: str, timeout: float, headers: dict[str, str] | None = None) -> Response:
        host, port, tls = self._monitor()
        conn = Connection(tls)
        try:
            return await conn.request(host, port, method, path, headers=headers, timeout=timeout)
        finally:
            conn.close()

    async def converge(self) -> None:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            with contextlib.suppress(HttpError, ValueError):
                self._last = json.loads((await self._call("GET", "/cti", 1.0)).body)
                active = self._role() is Role.ACTIVE
                if (self._last.get("state") in ("starting", "running")) == active:
                    return
            await asyncio.sleep(0.05)

    def snapshot(self) -> dict[str, Any]:
        return self._last

    async def restart(self) -> str | None:
        """The monitor's own ``POST /cti/restart``, with this node's admin token."""
        headers = {"authorization": f"Bearer {self._n.node.admin_token}"}
        try:
            r = await self._call("POST", "/cti/restart", 10.0, headers)
        except HttpError as exc:
            return f"the monitor did not answer ({exc})"
        with contextlib.suppress(ValueError):
            body = json.loads(r.body)
            if r.status == 200 and isinstance(body, dict):
                self._last = body
                return None
            if isinstance(body, dict) and isinstance(body.get("detail"), str):
                return str(body["detail"])
        return f"the monitor answered HTTP {r.status}"

    def vouch(self) -> tuple[bool, str | None]:
        return False, None  # the monitor is another process: only its own probe speaks for it


def _watchdog(n: Node, notifier: Notifier) -> Callable[[Decision], None]:
    """Called by the heartbeat loop itself after each completed tick: a stuck loop stops the beats."""
    shown: Role | None = None

    def beat(d: Decision) -> None:
        nonlocal shown
        notifier.watchdog()
        notifier.follow_interval(n.config.current.heartbeat_interval_s)
        if d.switched or d.state.role is not shown:  # `systemctl status` says why, once a role change
            shown = d.state.role
            notifier.status(f"{d.state.role} epoch {d.state.epoch}: {d.reason}")

    return beat


async def serve(node: NodeSettings, bootstrap: ClusterSettings, *, with_arbiter: bool = True,
                with_monitor: bool = True) -> int:
    n = open_node(node, bootstrap, arbiter=with_arbiter)
    notifier = Notifier()
    n.hooks = Hooks(node=node, store=n.store, ftlog=n.ftlog, base_env=child_env)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks: list[asyncio.Task[Any]] = []
    cfg = n.config.current
    if with_monitor:
        n.supervisor = _supervisor(n)
        n.supervisor.set_daily_restart(cfg.cti_restart_time)
        if with_arbiter:
            def role_here() -> tuple[Role | None, int]:
                a = n.arbiter
                return (a.state.role, a.state.epoch) if a else (None, 0)
        else:
            def role_here() -> tuple[Role | None, int]:
                rec = n.store.load_node()
                return (Role(rec.role), rec.epoch) if rec else (None, 0)
        n.cti = CtiService(n.supervisor, role_here)
        app, route = _monitor_app(n, lambda: role_here()[0])
        n.servers.append(_server(app, node, cfg.monitor_port, route))
    if with_arbiter:
        peer = PeerClient(node, lambda: n.config.current)
        cti = _LocalCti(n.cti) if n.cti else _RemoteCti(n, lambda: n.arbiter.state.role if n.arbiter else Role.STANDBY)
        witness = (EtcdWitness(node.witness_url, cluster=node.cluster_name, node_id=node.node_id)
                   if node.witness_url.strip() else None)
        metrics = ArbiterMetrics(node.node_id)
        n.hooks.metrics = metrics
        try:
            n.arbiter = Arbiter(node=node, store=n.store, ftlog=n.ftlog, metrics=metrics,
                                config=n.config, hlc=n.hlc, peer=peer, cti=cti, witness=witness, hooks=n.hooks)
        except StoreError as exc:  # the restart's STANDBY cannot be written (a full or read-only data disk)
            raise cannot_write(node, exc) from None
        app = create_arbiter_app(n.arbiter)
        n.servers.append(_server(app, node, cfg.arbiter_port, beat_route(app.state.beats)))
    n.ftlog.write("Arbiter" if with_arbiter else "Monitor",
                  f"Starting {node.node_id} ({node.rank}) as STANDBY, epoch "
                  f"{n.arbiter.state.epoch if n.arbiter else '-'}; hot standby {'on' if cfg.enabled else 'off'}")
    # Bind here rather than in uvicorn, which answers a busy port with sys.exit(3) from inside a task.
    socks = [_listen(server.config.host, server.config.port) for server in n.servers]
    for server, sock in zip(n.servers, socks, strict=True):
        tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
    await _wait_started(n.servers, tasks)
    # What start-up built (the imports, both applications) lives as long as the process: out of the collector's
    # sight, so that a full collection no longer waits for garbage a quarter the size of it (the cycles that
    # requests through the framework leave piled up to 4.6 MB on a demo's ACTIVE) and walks only what came after.
    gc.collect()
    gc.freeze()
    if n.arbiter:
        n.arbiter.on_tick = _watchdog(n, notifier)
        tasks.append(asyncio.create_task(n.arbiter.run()))
        if n.hooks.enabled:  # one runner per data directory: the arbiter's process (it holds the lock)
            tasks.append(asyncio.create_task(n.hooks.run()))
    if n.cti:
        tasks.append(asyncio.create_task(_converge_loop(n, poll_s=1.0 if with_arbiter else 0.1)))
    notifier.ready(f"serving: {node.node_id} ({node.rank}), STANDBY until the first tick decides")
    notifier.follow_interval(n.config.current.heartbeat_interval_s)
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    notifier.stopping(f"stopping {node.node_id}: handing over first (R10)" if n.arbiter else f"stopping {node.node_id}")
    status = 0
    for t in done:
        if t is not waiter and t.exception():
            log.error("node task failed: %r", t.exception())
            status = 1
    await _shutdown(n, tasks)
    notifier.close()
    return status


def _listen(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), backlog=2048)
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}", 1) from None


async def _wait_started(servers: list[_Server], tasks: list[asyncio.Task[Any]]) -> None:
    while not all(s.started for s in servers):
        for t in tasks:
            if t.done():
                exc = t.exception()
                raise StartupError(f"cannot serve: {exc or 'the server stopped (is the port in use?)'}", 1)
        await asyncio.sleep(0.01)


async def _converge_loop(n: Node, poll_s: float) -> None:
    assert n.cti is not None and n.supervisor is not None
    while True:
        if n.arbiter is None:
            with contextlib.suppress(StoreError):
                n.config.reload()
        n.supervisor.set_daily_restart(n.config.current.cti_restart_time)
        with contextlib.suppress(StoreError):
            await n.cti.converge()
        await asyncio.sleep(poll_s)


async def _shutdown(n: Node, tasks: list[asyncio.Task[Any]]) -> None:
    """R10: hand over first (the peer is ACTIVE within 2 s), then stop serving, then CTI."""
    if n.arbiter:
        try:
            await asyncio.wait_for(n.arbiter.shutdown(), 3.0)
        except TimeoutError:
            log.warning("handover did not finish in 3 s")
    for t in tasks:
        # The arbiter's loop, the hooks' runner (both "run") and the CTI convergence.
        if t.get_coro().__name__ in ("run", "_converge_loop"):  # type: ignore[union-attr]
            t.cancel()
    for server in n.servers:
        server.should_exit = True
    if n.supervisor:
        await n.supervisor.aclose()
    with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 2.0)
    if n.arbiter:
        await n.arbiter.peer.aclose()
        if n.arbiter.witness:
            await n.arbiter.witness.aclose()
    n.ftlog.write("Arbiter" if n.arbiter else "Monitor", f"Stopped {n.node.node_id}")
    n.store.close()
