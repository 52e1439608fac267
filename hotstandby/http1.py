"""A minimal HTTP/1.1 client: one request at a time over one kept-alive connection, standard library only.

What a node sends many times a second (the peer exchange and probes, the CTI simulator's keepalives)
goes through here rather than through an HTTP client library: a plain asyncio stream costs a fraction of
the CPU per request and none of the library's resident memory. It speaks exactly what our own servers
(uvicorn) and HAProxy answer: a status line, headers, then a body by ``Content-Length``, chunked, or up
to the close. Any error or timeout closes the connection (its state is unknown); the next request opens
a new one.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
MAX_BODY = 4 * 1024 * 1024


class HttpError(Exception):
    """No usable answer: refused, reset, timed out, or not HTTP. The text names what happened."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names lower-case
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def _why(exc: BaseException) -> str:
    """What went wrong, in a word an operator reads in a log line (and the TLS reason when a handshake failed)."""
    if isinstance(exc, _ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or 'certificate refused'}"
    if isinstance(exc, _ssl.SSLError):
        return f"TLS: {exc.reason or 'handshake failed'}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.IncompleteReadError | ConnectionResetError | BrokenPipeError):
        return "connection closed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


class Connection:
    """One kept-alive connection to whichever ``host:port`` the next request names (a new address, as
    after a settings change, closes the old connection first)."""

    def __init__(self, tls: _ssl.SSLContext | None = None, keepalive_s: float = 110.0) -> None:
        self._tls = tls
        self._keepalive_s = keepalive_s  # below the server's idle timeout, so a kept connection is still open
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._to: tuple[str, int] | None = None
        self._used = 0.0

    @property
    def open(self) -> bool:
        return self._stream is not None

    async def request(self, host: str, port: int, method: str, target: str, *, body: bytes = b"",
                      headers: Mapping[str, str] | None = None, timeout: float) -> Response:
        """Send one request and read its answer within ``timeout`` seconds, or raise HttpError."""
        try:
            async with asyncio.timeout(timeout):  # no task of its own, unlike wait_for: cheaper, many times a second
                return await self._request(host, port, method, target, body, headers or {})
        except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, UnicodeError) as exc:
            self.close()
            raise HttpError(_why(exc)) from None
        except BaseException:  # cancelled mid-request: the connection's state is unknown
            self.close()
            raise

    async def _request(self, host: str, port: int, method: str, target: str, body: bytes,
                       headers: Mapping[str, str]) -> Response:
        now = time.monotonic()
        if self._stream is not None and (self._to != (host, port) or now - self._used > self._keepalive_s
                                         or self._stream[0].at_eof() or self._stream[1].is_closing()):
            self.close()  # another address, kept too long, or closed by the server meanwhile: a new one
        self._used = now
        if self._stream is None:
            self._stream = await asyncio.open_connection(
                host, port, ssl=self._tls, server_hostname=host if self._tls else None, limit=MAX_HEAD)
            self._to = (host, port)
        reader, writer = self._stream
        writer.write(request(host, port, method, target, body, headers))
        await writer.drain()
        status, fields, close = parse_head(await reader.readuntil(b"\r\n\r\n"))
        data, to_the_close = await _body(reader, status, method, fields)
        if close or to_the_close:
            self.close()
        self._used = time.monotonic()
        return Response(status, fields, data)

    def close(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None


def request(host: str, port: int, method: str, target: str, body: bytes = b"",
            headers: Mapping[str, str] | None = None) -> bytes:
    """One request as it goes on the wire: request line, Host, ``headers``, the body's length, the body."""
    name = f"[{host}]" if ":" in host else host
    head = [f"{method} {target} HTTP/1.1", f"Host: {name}:{port}"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def parse_head(raw: bytes) -> tuple[int, dict[str, str], bool]:
    """(status, headers with lower-case names, whether the server closes) of an answer's head, its blank line
    included; ValueError when it is not HTTP."""
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError(f"not an HTTP answer: {lines[0][:40]!r}")
    status = int(rest[:3])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
    close = version == "HTTP/1.0" or fields.get("connection", "").lower() == "close"
    return status, fields, close


async def _body(reader: asyncio.StreamReader, status: int, method: str,
                fields: dict[str, str]) -> tuple[bytes, bool]:
    """The answer's body, and whether it ran to the connection's close."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", False
    if fields.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            if len(out) + size > MAX_BODY:
                raise ValueError("answer too large")
            out += await reader.readexactly(size + 2)
            del out[-2:]
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return bytes(out), False
    if "content-length" in fields:
        length = int(fields["content-length"])
        if not 0 <= length <= MAX_BODY:
            raise ValueError("answer too large")
        return await reader.readexactly(length), False
    out = bytearray()
    while chunk := await reader.read(65536):  # up to the close
        out += chunk
        if len(out) > MAX_BODY:
            raise ValueError("answer too large")
    return bytes(out), True
