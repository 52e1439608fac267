"""hotstandby.http1 on real sockets: one kept connection, a new one when the server closed the old one,
the body forms our servers send, and a timeout that closes the connection."""

from __future__ import annotations

import asyncio

import pytest

from hotstandby.http1 import Connection, HttpError
from lab.waiting import until

Answer = bytes | None  # None: close the connection without answering


async def serve(answers: list[Answer], close_after_each: bool = False) -> tuple[asyncio.AbstractServer, int, list[int]]:
    """Answer each request with the next of ``answers``; ``conns`` counts the connections opened."""
    conns: list[int] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                answer = answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
                if close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], conns


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def test_a_kept_connection_is_reused_and_one_the_server_closed_is_replaced() -> None:
    async def run() -> tuple[list[bytes], int]:
        server, port, conns = await serve([OK, OK, OK], close_after_each=False)
        c = Connection()
        try:
            bodies = [(await c.request("127.0.0.1", port, "GET", "/", timeout=2)).body for _ in range(2)]
            assert len(conns) == 1  # kept
        finally:
            server.close()
        server2, port2, conns2 = await serve([OK, OK], close_after_each=True)
        try:
            bodies.append((await c.request("127.0.0.1", port2, "GET", "/", timeout=2)).body)
            # The server closed after its answer: once that close has reached us, the next request must not fail.
            await until(lambda: c.open and c._stream is not None and c._stream[0].at_eof(), 2, "the server's close")
            bodies.append((await c.request("127.0.0.1", port2, "GET", "/", timeout=2)).body)
        finally:
            c.close()
            server2.close()
        return bodies, len(conns2)

    bodies, opened = asyncio.run(run())
    assert bodies == [b"ok"] * 4 and opened == 2


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
])
def test_the_body_forms(raw: bytes) -> None:
    async def run() -> bytes:
        server, port, _ = await serve([raw])
        c = Connection()
        try:
            return (await c.request("127.0.0.1", port, "GET", "/", timeout=2)).body
        finally:
            c.close()
            server.close()

    assert asyncio.run(run()) == b"ok"


def test_no_answer_within_the_timeout_is_an_error_and_closes() -> None:
    async def run() -> bool:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        c = Connection()
        try:
            with pytest.raises(HttpError):
                await c.request("127.0.0.1", server.sockets[0].getsockname()[1], "GET", "/", timeout=0.2)
            return c.open
        finally:
            c.close()
            server.close()

    assert asyncio.run(run()) is False
