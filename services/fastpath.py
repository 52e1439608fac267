"""The requests a node answers many times a second, answered by the connection's own protocol.

HAProxy checks ``mod=FT`` four times a second per node at I = 1 s (ten at I = 0.1 s), each on a new
connection; the peer probes the monitor and asks ``POST /peer/hb`` on kept connections, once a tick.
Through FastAPI an answer cost ~1.8 ms of CPU here (a check, connection included); in front of the
application (ASGI) ~0.5 ms, a third of it uvicorn's protocol, its request cycle and the task it starts
for each request. ``FastFirst`` is the server's protocol for each new connection: it reads each request
itself (a head, and a body by ``Content-Length``) and asks its ``route`` for the answer; the first request
the route does not take (or anything it cannot read as plainly as that: chunked, ``Expect``, an upgrade,
a long head, a large body) hands the connection, with everything read so far, to uvicorn's own protocol,
and the application answers from there on (its routes document the fast ones in the OpenAPI and give the
same answers: services/monitor/hotpath.py, services/arbiter/hotpath.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, NamedTuple, cast

log = logging.getLogger("hotstandby.fastpath")

MAX_HEAD = 8 * 1024  # a longer head is the application's
MAX_BODY = 64 * 1024  # as the application's BodyLimit: a larger body is refused (413) there
KEEPALIVE_S = 120.0  # as the server's timeout_keep_alive (services/node.py)


class Request(NamedTuple):
    method: bytes
    path: str  # as sent, before any '?'
    query: str
    headers: dict[bytes, bytes]  # names lower-case (the last of a repeated name)
    body: bytes
    client: str  # the peer's address


class Answer(NamedTuple):
    status: int
    content_type: bytes
    body: bytes


Route = Callable[[Request], Answer | None]  # None: not this route's (the application answers it)


def read_head(head: bytes) -> tuple[bytes, str, bool, dict[bytes, bytes]] | None:
    """(method, target, keep the connection, headers) of a request head, or None when it is not one we read
    plainly (the server then answers it, a 400 included)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        name = name.lower()
        # Not read plainly (the server then decides): no colon, a folded line, space before the colon,
        # a body we do not frame, or a length given twice (a request framed two ways is refused there).
        if (not colon or not name or name != name.strip() or name in (b"transfer-encoding", b"expect", b"upgrade")
                or (name == b"content-length" and name in headers)):
            return None
        headers[name] = value.strip()
    keep = parts[2] == b"HTTP/1.1"
    tokens = {t.strip() for t in headers.get(b"connection", b"").lower().split(b",")}
    keep = False if b"close" in tokens else (keep or b"keep-alive" in tokens)
    return parts[0], parts[1].decode("latin-1"), keep, headers


def response(answer: Answer, keep: bool) -> bytes:
    """The answer as uvicorn gives the application's: status line, type, length, the close; one write."""
    close = b"" if keep else b"connection: close\r\n"
    head = f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}\r\n".encode("latin-1")
    return (head + b"content-type: " + answer.content_type + b"\r\ncontent-length: " + str(len(answer.body)).encode()
            + b"\r\n" + close + b"\r\n" + answer.body)


class FastFirst(asyncio.Protocol):
    """A connection: what ``route`` takes is answered here, the rest handed to ``inner`` (uvicorn's HTTP
    protocol, made with the server's own ``kwargs`` only when needed)."""

    def __init__(self, route: Route, inner: Callable[..., asyncio.Protocol], **kwargs: Any) -> None:
        self._route, self._inner, self._kwargs = route, inner, kwargs
        self._connections: set[Any] = kwargs["server_state"].connections  # uvicorn closes these on shutdown
        self._transport: asyncio.Transport | None = None
        self._client = "?"
        self._buffer = b""
        self._handed: asyncio.Protocol | None = None
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if isinstance(peer, tuple) else "?"
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
            if not self._answer_one():
                return
        if self._transport is not None:
            self._idle = asyncio.get_running_loop().call_later(KEEPALIVE_S, self.shutdown)

    def _answer_one(self) -> bool:
        """Answer the buffer's first request; False when it is incomplete, handed over, or the connection closed."""
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                self._hand_off()
            return False
        head = read_head(self._buffer[:end])
        length = head[3].get(b"content-length", b"0") if head else b""
        if head is None or not length.isdigit() or int(length) > MAX_BODY:
            self._hand_off()
            return False
        start, stop = end + 4, end + 4 + int(length)
        if len(self._buffer) < stop:
            return False  # the body is still coming
        method, target, keep, headers = head
        path, _, query = target.partition("?")
        try:
            answer = self._route(Request(method, path, query, headers, self._buffer[start:stop], self._client))
        except Exception:
            log.exception("answering %s %s", method.decode("latin-1"), path)
            answer, keep = Answer(500, b"text/plain; charset=utf-8", b"Internal Server Error"), False
        if answer is None:
            self._hand_off()
            return False
        assert self._transport is not None
        self._buffer = self._buffer[stop:]
        self._transport.write(response(answer, keep))
        if not keep:
            self.shutdown()
            return False
        return True

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
        """uvicorn's word at shutdown (and ours after KEEPALIVE_S idle, or an answer that closes): close."""
        if self._transport is not None:
            self._transport.close()
            self._transport = None
