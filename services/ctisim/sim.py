"""The CTI server simulator that the node's CTI supervisor runs (SPEC section 10).

It behaves like the real CTI server where the pair can see it: it takes 0.2 s per CTI port and
per device to come up, says so on stdout (the supervisor parses these lines), then holds a
registration at the CTI manager simulator with keepalives. A manager outage never stops it (a
real CTI server outlives its manager); it re-registers when the manager answers again.

Output contract, one flushed line each, in this order:
    HS-CTI port <k>/<ports>
    HS-CTI device <k>/<devices>
    HS-CTI READY

Warm mode (``--warm``, or ``HS_CTI_MODE=warm`` in its environment: the node's ``HS_CTI_MODE=warm``) is
the vendor's "CTI server on both servers, switched between active and idle". The process starts idle,
unregistered, and takes its orders one line at a time on standard input:

    supervisor -> CTI server (stdin)        CTI server -> supervisor (stdout)
                                            HS-CTI IDLE            up, idle, registered nowhere
    ACTIVE <epoch>                          HS-CTI port/device k/n lines, then HS-CTI READY once registered
    STANDBY                                 HS-CTI IDLE            once unregistered (before it says so)

End of input (the supervisor is gone) or SIGTERM/SIGINT: unregister if registered, exit 0. An
operator's own CTI server implements the same few lines to run in warm mode; the supervisor refuses
(kills) a warm child that never says IDLE or says READY unasked, because it could not keep R9's
"never registered on a STANDBY" with it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from typing import TextIO
from urllib.parse import urlsplit

from hotstandby.http1 import MAX_HEAD, HttpError, parse_head, request

REGISTRATION_S = 0.2
KEEPALIVE_INTERVAL_S = 0.08  # the spec asks for at least every 0.1 s (20 % margin); the manager lapses at 0.5 s
KEEPALIVE_TIMEOUT_S = 0.2  # a hung manager must not stall the keepalive schedule for long
REGISTER_TIMEOUT_S = 0.3
UNREGISTER_TIMEOUT_S = 0.5
JSON_TYPE = {"Content-Type": "application/json"}


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True when told to stop meanwhile (so a stop is never delayed)."""
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await stop.wait()
    except TimeoutError:
        return stop.is_set()
    return True


class _Manager:
    """POST JSON to the manager over one kept-alive connection: a blocking socket, one request at a time
    (``post`` holds a lock), each bounded by its timeout.

    The simulator runs beside every ACTIVE node for as long as it is ACTIVE, 12.5 keepalives a second: sent
    from a thread of their own over a blocking socket they cost 0.56 % of a core here, where asyncio streams
    on uvloop cost 0.66–0.86 % (the process's CPU from /proc over 30 s, twice each). The head is read by
    hotstandby.http1's parser; an answer must say its length (the manager's do)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"manager URL must be http(s)://host[:port]: {url!r}")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host, self._port = parts.hostname, parts.port or (443 if self._tls else 80)
        self._base = parts.path.rstrip("/")
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    def post(self, path: str, body: Mapping[str, object], timeout: float) -> int:
        data = json.dumps(body, separators=(",", ":")).encode()
        raw = request(self._host, self._port, "POST", self._base + path, data, JSON_TYPE)
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._sock is not None:
                try:
                    return self._exchange(raw, deadline)
                except (ConnectionError, EOFError):
                    # A kept connection the manager closed meanwhile (it keeps an idle one a few seconds, and
                    # a warm STANDBY's is idle): once more on a new one, within the same deadline.
                    self.close()
                except (OSError, ValueError) as exc:  # a timeout among them: not tried again
                    self.close()
                    raise HttpError(type(exc).__name__) from None
            try:
                return self._exchange(raw, deadline)
            except (OSError, EOFError, ValueError) as exc:
                self.close()
                raise HttpError(type(exc).__name__) from None

    def _exchange(self, raw: bytes, deadline: float) -> int:
        sock = self._sock or self._connect(deadline)
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        sock.sendall(raw)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            if len(data) > MAX_HEAD:
                raise ValueError("answer head too long")
            data += self._recv(sock, deadline)
        status, fields, close = parse_head(data[:end + 4])
        length = int(fields.get("content-length", "-1"))
        if length < 0:
            raise ValueError("answer without a length")
        while len(data) < end + 4 + length:
            data += self._recv(sock, deadline)
        if close:
            self.close()
        return status

    @staticmethod
    def _recv(sock: socket.socket, deadline: float) -> bytes:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed by the manager")
        return chunk

    def _connect(self, deadline: float) -> socket.socket:
        sock = socket.create_connection((self._host, self._port), timeout=max(0.001, deadline - time.monotonic()))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self._host)
        self._sock = sock
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _ManagerLink:
    """The HTTP side: register, keepalive, unregister, each failure-tolerant and time-bounded. Blocking: the
    keepalives run in a thread of their own (``_Cti.hold``), the rest through ``asyncio.to_thread``."""

    def __init__(self, url: str, *, node_id: str, epoch: int, ports: int, devices: int) -> None:
        self._http = _Manager(url)
        self._node_id = node_id
        self.epoch = epoch
        self._ports = ports
        self._devices = devices
        self.registered = False

    def _ident(self) -> dict[str, str | int]:
        return {"node_id": self._node_id, "epoch": self.epoch}

    def register(self) -> bool:
        body = {**self._ident(), "ports": self._ports, "devices": self._devices}
        try:
            self.registered = self._http.post("/register", body, REGISTER_TIMEOUT_S) == 200
        except HttpError:
            self.registered = False
        return self.registered

    def keepalive(self) -> None:
        """Keep the registration alive; a 404 or no answer means "register again" (next tick)."""
        if not self.registered:
            self.register()
            return
        try:
            status = self._http.post("/keepalive", self._ident(), KEEPALIVE_TIMEOUT_S)
        except HttpError:
            self.registered = False
            return
        if status == 404:
            # The manager forgot us (restarted, or our link lapsed): re-register at once.
            self.register()

    def unregister(self) -> None:
        # Best effort: without it the registration lapses on its own 0.5 s later.
        with contextlib.suppress(HttpError):
            self._http.post("/unregister", self._ident(), UNREGISTER_TIMEOUT_S)
        self.registered = False

    def close(self) -> None:
        self._http.close()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            # Not the main thread (run embedded in a test or another program): the caller
            # stops us through `stop` instead.
            return


async def run(
    *,
    node_id: str,
    epoch: int,
    ports: int = 2,
    devices: int = 2,
    manager_url: str = "",
    out: TextIO = sys.stdout,
    stop: asyncio.Event | None = None,
    exit_with_parent: bool = False,
    orders: asyncio.StreamReader | None = None,
) -> int:
    """Come up like a CTI server, hold a manager registration until SIGTERM/SIGINT, return 0.

    `stop` is the seam for running it in-process: set it instead of sending a signal.
    `exit_with_parent` stops the simulator when its parent process goes away (reparenting),
    a second line of defence behind the supervisor for "CTI never outlives its node".
    `orders`: warm mode (module docstring), the supervisor's lines; None is cold mode.
    """
    stop = stop if stop is not None else asyncio.Event()
    _install_signal_handlers(stop)
    link = (
        _ManagerLink(manager_url, node_id=node_id, epoch=epoch, ports=ports, devices=devices)
        if manager_url
        else None
    )
    cti = _Cti(link, ports=ports, devices=devices, out=out, stop=stop, exit_with_parent=exit_with_parent)
    try:
        if orders is None:
            if await cti.come_up():
                await cti.hold(stop)
        else:
            await _warm(cti, orders, stop)
        await cti.go_idle()
        return 0
    finally:
        if link is not None:
            link.close()


class _Cti:
    """One CTI server's registration: come up (ports, devices, manager), hold it, let it go."""

    def __init__(self, link: _ManagerLink | None, *, ports: int, devices: int, out: TextIO, stop: asyncio.Event,
                 exit_with_parent: bool) -> None:
        self.link, self.ports, self.devices, self.out, self.stop = link, ports, devices, out, stop
        self.parent = os.getppid() if exit_with_parent else None
        self.active = False

    async def come_up(self, abort: asyncio.Event | None = None) -> bool:
        """Ports, devices (0.2 s each), the manager, READY; False when stopped or aborted on the way."""
        abort = abort or self.stop
        for kind, count in (("port", self.ports), ("device", self.devices)):
            for k in range(1, count + 1):
                if await _pause(abort, REGISTRATION_S):
                    return False
                _say(self.out, f"HS-CTI {kind} {k}/{count}")
        self.active = True
        if self.link is not None:
            await asyncio.to_thread(self.link.register)
        _say(self.out, "HS-CTI READY")
        return True

    async def hold(self, until: asyncio.Event) -> None:
        """Keepalives every KEEPALIVE_INTERVAL_S until ``until`` is set (or the parent is gone), from a thread
        of their own (``_keep``): the event loop sleeps meanwhile."""
        done = threading.Event()
        keeping = asyncio.ensure_future(asyncio.to_thread(self._keep, done))
        stopped = asyncio.ensure_future(until.wait())
        try:
            await asyncio.wait((keeping, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            done.set()  # the thread ends at once, or after the keepalive it is sending (its timeout at most)
            await asyncio.shield(keeping)

    def _keep(self, done: threading.Event) -> None:
        """The keepalive thread: on a fixed cadence until ``done`` is set or the parent is gone."""
        clock = time.monotonic
        due = clock()
        while True:
            due += KEEPALIVE_INTERVAL_S
            if done.wait(max(0.0, due - clock())):
                return
            if self.parent is not None and os.getppid() != self.parent:
                return
            if self.link is not None:
                self.link.keepalive()
            if due < clock():
                # A slow manager made us late: resume the cadence from now rather than burst.
                due = clock()

    async def go_idle(self) -> None:
        if self.active and self.link is not None:
            await asyncio.to_thread(self.link.unregister)
        self.active = False


async def _warm(cti: _Cti, orders: asyncio.StreamReader, stop: asyncio.Event) -> None:
    """Idle until told ACTIVE, registered until told STANDBY; done at end of input or on a stop."""
    _say(cti.out, "HS-CTI IDLE")
    serving: asyncio.Task[None] | None = None
    standby = asyncio.Event()

    async def serve(epoch: int) -> None:
        if cti.link is not None:
            cti.link.epoch = epoch
        if await cti.come_up(standby):
            await cti.hold(standby)

    async def next_line() -> bytes:
        return await orders.readline()

    stopped = asyncio.ensure_future(stop.wait())
    try:
        while True:
            reading = asyncio.ensure_future(next_line())
            await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                return
            words = reading.result().decode("utf-8", "replace").split()
            if not words:  # end of input: the supervisor is gone
                return
            if words[0] == "ACTIVE" and len(words) == 2 and words[1].isdigit() and serving is None:
                standby.clear()
                serving = asyncio.create_task(serve(int(words[1])))
            elif words[0] == "STANDBY":
                if serving is not None:
                    standby.set()
                    await serving
                    serving = None
                await cti.go_idle()
                _say(cti.out, "HS-CTI IDLE")
    finally:
        stopped.cancel()
        if serving is not None:
            standby.set()
            await serving


async def _stdin_reader() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """Arguments with defaults from the node's environment (HS_NODE_ID, HS_EPOCH, HS_CTI_MANAGER_URL)."""
    p = argparse.ArgumentParser(prog="hotstandby cti-sim", description="CTI server simulator")
    p.add_argument("--ports", type=int, default=2, help="CTI ports to register, 0.2 s each (default 2)")
    p.add_argument("--devices", type=int, default=2, help="devices to register, 0.2 s each (default 2)")
    p.add_argument(
        "--manager-url",
        default=env.get("HS_CTI_MANAGER_URL", ""),
        help="CTI manager simulator URL; empty registers nowhere (env HS_CTI_MANAGER_URL)",
    )
    p.add_argument("--node-id", default=env.get("HS_NODE_ID", "server1"), help="env HS_NODE_ID")
    # A string default goes through `type`, so a bad HS_EPOCH is refused like a bad --epoch.
    p.add_argument("--epoch", type=int, default=env.get("HS_EPOCH") or "0", help="env HS_EPOCH")
    p.add_argument(
        "--warm",
        action="store_true",
        default=env.get("HS_CTI_MODE", "").strip().lower() == "warm",
        help="start idle and take ACTIVE/STANDBY orders on stdin (env HS_CTI_MODE=warm)",
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process goes away (belt and braces for the supervisor)",
    )
    return p


def _runner() -> asyncio.Runner:
    """uvloop's event loop when installed: 20 keepalives a second cost less CPU there."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv: list[str] | None = None) -> int:
    """`python -m services.ctisim.sim` / `hotstandby cti-sim`: exit 0 after SIGTERM or SIGINT."""
    args = build_parser(os.environ).parse_args(argv)
    if args.ports < 0 or args.devices < 0:
        print("cti-sim: --ports and --devices must be >= 0", file=sys.stderr)
        return 2
    async def main_async() -> int:
        return await run(
            node_id=args.node_id,
            epoch=args.epoch,
            ports=args.ports,
            devices=args.devices,
            manager_url=args.manager_url,
            exit_with_parent=args.exit_with_parent,
            orders=await _stdin_reader() if args.warm else None,
        )

    with _runner() as runner:
        return runner.run(main_async())


if __name__ == "__main__":
    sys.exit(main())
