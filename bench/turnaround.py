"""How long a request caught on a dead ACTIVE waits in HAProxy after it is told the node is down.

    python -m bench.turnaround [--runs 10]

HAProxy retries a failed connect only after a turn-around of min(``timeout connect``, 1 s) and, by
default, redispatches only on the last retry. A request that reached the old ACTIVE just before a
promotion therefore waits out turn-arounds even after the arbiter has told HAProxy: that wait, not the
call, was most of promotion → VIP at the sprint profile. One HAProxy, server1 refusing connections,
server2 a backup answering; a request is sent, 30 ms later the runtime API takes server1 out, and the
table shows when the request was answered, counted from that call, for the connect timeout and retries
``render haproxy`` gave the sprint profile before (100 ms, 3, redispatch on the last retry) and gives
it now (``retry_timing``: a 25 ms turn-around, retries covering the same outage, each retry
dispatched afresh).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.pair import PROFILES
from hotstandby.haproxy import check_timing, retry_timing
from lab.haproxy import HAPROXY, ports
from lab.waiting import stop_process, wait_until

LEAD_S = 0.03  # the request is sent this long before HAProxy is told


class _Server2(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"server2")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _admin(port: int, line: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(line.encode() + b"\n")
        s.recv(200)


def _get(port: int, out: dict[str, Any]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := c.recv(4096):
            data += chunk
    out["done"], out["status"] = time.monotonic(), data.split(b" ")[1].decode() if data else "none"


def measure(connect_ms: int, retries: int, runs: int, alive: int, every: bool) -> list[tuple[float, str]]:
    dead, vip, api = ports("127.0.0.1", 3)
    cfg = f"""global
    stats socket ipv4@127.0.0.1:{api} level admin
defaults
    mode http
    option redispatch{" 1" if every else ""}
    retries {retries}
    timeout connect {connect_ms}ms
    timeout client 5s
    timeout server 5s
frontend vip
    bind 127.0.0.1:{vip}
    default_backend hotstandby
backend hotstandby
    server server1 127.0.0.1:{dead}
    server server2 127.0.0.1:{alive} backup
"""
    out: list[tuple[float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "haproxy.cfg"
        path.write_text(cfg)
        proc = subprocess.Popen([HAPROXY, "-f", str(path), "-db"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _answers(api), 5, "HAProxy's runtime API")
            for _ in range(runs):
                _admin(api, "set server hotstandby/server1 state ready")
                got: dict[str, Any] = {}
                request = threading.Thread(target=_get, args=(vip, got))
                request.start()
                time.sleep(LEAD_S)
                told = time.monotonic()
                _admin(api, "set server hotstandby/server1 state maint")
                request.join(10)
                out.append((got["done"] - told, got["status"]))
        finally:
            stop_process(proc)
    return out


def _answers(port: int) -> bool:
    try:
        _admin(port, "show info")
    except OSError:
        return False
    return True


def configurations() -> tuple[tuple[int, int, bool], ...]:
    """(timeout connect ms, retries, redispatch on every retry): the sprint profile's, before and now."""
    return (100, 3, False), (*retry_timing(check_timing(PROFILES["sprint"].cluster, told=True)), True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.turnaround", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args(argv)
    server2 = ThreadingHTTPServer(("127.0.0.1", 0), _Server2)
    threading.Thread(target=server2.serve_forever, daemon=True).start()
    print("| timeout connect | retries | redispatch | answered after the call, median | max | statuses |")
    print("|---:|---:|---|---:|---:|---|")
    try:
        for connect_ms, retries, every in configurations():
            rows = measure(connect_ms, retries, args.runs, server2.server_address[1], every)
            waits = [w for w, _ in rows]
            statuses = ", ".join(sorted({s for _, s in rows}))
            print(f"| {connect_ms} ms | {retries} | {'every retry' if every else 'last retry'} "
                  f"| {1000 * statistics.median(waits):.0f} ms "
                  f"| {1000 * max(waits):.0f} ms | {statuses} |")
    finally:
        server2.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
