"""Small programs the lab runs inside its namespaces: a LAN probe target and a delaying TCP proxy.

    python -m lab.tools listen HOST:PORT
    python -m lab.tools delay LISTEN_HOST:PORT=TARGET_HOST:PORT [...] --delay SECONDS

The proxy holds every chunk from the client for ``--delay`` seconds before passing it on (order
kept), and passes answers back at once: each request is answered ``delay`` later than it would be.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal


def _split(hp: str) -> tuple[str, int]:
    host, _, port = hp.rpartition(":")
    return host, int(port)


async def _listen(bind: str) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    host, port = _split(bind)
    server = await asyncio.start_server(accept, host, port)
    async with server:
        await _until_signalled()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    async def forward() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()

    task = asyncio.create_task(forward())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((loop.time() + delay, data))
        queue.put_nowait((loop.time(), b""))
        await task
    except (ConnectionError, OSError):
        task.cancel()
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def _delay(routes: list[str], delay: float) -> None:
    servers = []
    for route in routes:
        listen, _, target = route.partition("=")
        thost, tport = _split(target)

        async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter, thost: str = thost,
                         tport: int = tport) -> None:
            try:
                sr, sw = await asyncio.open_connection(thost, tport)
            except OSError:
                cw.close()
                return
            await asyncio.gather(_pipe(cr, sw, delay), _pipe(sr, cw, 0.0), return_exceptions=True)

        lhost, lport = _split(listen)
        servers.append(await asyncio.start_server(handle, lhost, lport))
    try:
        await _until_signalled()
    finally:
        for s in servers:
            s.close()


async def _until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lab.tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("listen", help="accept TCP connections and close them (a LAN probe target)")
    lp.add_argument("bind")
    dp = sub.add_parser("delay", help="a TCP proxy that delays each client->server chunk")
    dp.add_argument("routes", nargs="+", metavar="LISTEN=TARGET")
    dp.add_argument("--delay", type=float, required=True)
    args = p.parse_args(argv)
    if args.cmd == "listen":
        asyncio.run(_listen(args.bind))
    else:
        asyncio.run(_delay(args.routes, args.delay))


if __name__ == "__main__":
    main()
