"""The monitor probes, answered below the framework, below even the HTTP server.

HAProxy checks ``mod=FT`` four times a second per node at I = 1 s (ten at I = 0.1 s), each on a new
connection, and the peer probes ``mod=NONE`` on a kept one. Through FastAPI's routing, dependencies and
middleware an answer cost ~1.8 ms of CPU here, connection included; answered in front of the app (an
ASGI layer) ~0.5 ms, of which uvicorn's protocol, its request cycle and the task it starts for each
request were a third. ``ProbeFirst`` is the server's protocol for each new connection: it reads the
request head itself and answers a plain ``GET`` of ``/IPSCFG/admin/monitor.aspx`` or ``/monitor`` (path
and ``mod`` value case-insensitive, like IIS) with the status, body and headers of the documented route;
at the first request that is anything else (a body, HEAD, another path, an odd head) it hands the
connection, with what it has read, to uvicorn's own protocol, and the application answers from there on,
documenting the probe in its OpenAPI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl

from hotstandby.model import Role

COMPAT_PATHS = {"/ipscfg/admin/monitor.aspx": "/monitor", "/monitor": "/monitor"}
MAX_HEAD = 8 * 1024  # a longer head is not a probe: the server reads it
KEEPALIVE_S = 120.0  # as the server's timeout_keep_alive (services/node.py)


def answer(mod: str, *, role: Callable[[], Role | None], self_check: Callable[[], str | None]) -> tuple[int, str]:
    """(status, body) of ``monitor.aspx?mod=...``: NONE, IPSWS or FT, any case; 400 for anything else."""
    kind = mod.strip().upper()
    if kind == "NONE":
        return 200, "OK"
    if kind == "IPSWS":
        problem = self_check()
        return (503, f"IPSWS=ERROR: {problem}") if problem else (200, "IPSWS=OK")
    if kind == "FT":
        active = role() is Role.ACTIVE
        return (200, "ACTIVE") if active else (503, "STANDBY")
    return 400, f"unknown mod {mod[:40]!r}: use NONE, IPSWS or FT"


def canonical(path: str) -> str | None:
    """``/monitor`` for any spelling of the probe's paths (case, a trailing slash), else None."""
    return COMPAT_PATHS.get(path.lower().rstrip("/") or "/")


def probe_request(head: bytes) -> tuple[str, bool] | None:
    """``(mod, keep the connection)`` when ``head`` (up to the blank line) is a plain GET of the probe,
    else None: anything this cannot answer exactly as the application would is the application's."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    path, _, query = parts[1].decode("latin-1").partition("?")
    if "%" in path or "#" in parts[1].decode("latin-1") or canonical(path) is None:
        return None
    keep = parts[2] == b"HTTP/1.1"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if not colon or not name or name in (b"transfer-encoding", b"expect", b"upgrade"):
            return None
        if name == b"content-length" and value not in (b"", b"0"):
            return None
        if name == b"connection":
            tokens = {t.strip() for t in value.split(b",")}
            keep = False if b"close" in tokens else (keep or b"keep-alive" in tokens)
    mod = "NONE"
    for key, given in parse_qsl(query, keep_blank_values=True):
        if key == "mod":
            mod = given  # the last one wins, as in the framework's query parsing
    return mod, keep


def response(status: int, text: str, keep: bool) -> bytes:
    """The probe's answer as the application's route gives it: plain text, its length, and the close."""
    body = text.encode()
    close = "" if keep else "connection: close\r\n"
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\n{close}\r\n")
    return head.encode("latin-1") + body


class ProbeFirst(asyncio.Protocol):
    """A connection to the monitor: the probe's plain GETs answered here, anything else handed to ``inner``
    (uvicorn's HTTP protocol, made with the server's own ``kwargs`` only when needed)."""

    def __init__(self, probe: Callable[[str], tuple[int, str]], inner: Callable[..., asyncio.Protocol],
                 **kwargs: Any) -> None:
        self._probe, self._inner, self._kwargs = probe, inner, kwargs
        self._connections: set[Any] = kwargs["server_state"].connections  # uvicorn closes these on shutdown
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._handed: asyncio.Protocol | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._handed is not None:
            self._handed.data_received(data)
            return
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self._buffer += data
        while self._buffer and self._transport is not None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    self._hand_off()
                return
            asked = probe_request(self._buffer[:end])
            if asked is None:
                self._hand_off()
                return
            self._buffer = self._buffer[end + 4:]
            mod, keep = asked
            self._transport.write(response(*self._probe(mod), keep))
            if not keep:
                self._transport.close()
                self._transport = None
                return
        if self._transport is not None:
            self._idle = asyncio.get_running_loop().call_later(KEEPALIVE_S, self.shutdown)

    def _hand_off(self) -> None:
        transport, self._transport = self._transport, None
        assert transport is not None
        self._connections.discard(self)
        handed = self._handed = self._inner(**self._kwargs)
        transport.set_protocol(handed)
        handed.connection_made(transport)
        buffer, self._buffer = self._buffer, b""
        handed.data_received(buffer)

    def eof_received(self) -> bool | None:
        return self._handed.eof_received() if self._handed is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self._handed is not None:
            self._handed.connection_lost(exc)
            return
        self._connections.discard(self)
        self._transport = None

    def pause_writing(self) -> None:
        if self._handed is not None:
            self._handed.pause_writing()

    def resume_writing(self) -> None:
        if self._handed is not None:
            self._handed.resume_writing()

    def shutdown(self) -> None:
        """uvicorn's word at shutdown (and ours after KEEPALIVE_S idle): close a connection that is ours."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
