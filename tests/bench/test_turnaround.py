"""bench.turnaround: a request caught on a dead node is answered by the backup once HAProxy is told."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

from bench.turnaround import _Server2, configurations, measure
from tests.needs import need


def test_every_caught_request_is_answered_by_the_backup() -> None:
    """Both configurations the bench compares end every caught request with server2's 200 (the figure
    is the wait, printed by ``python -m bench.turnaround``, not asserted here)."""
    need("haproxy", "haproxy")
    server2 = ThreadingHTTPServer(("127.0.0.1", 0), _Server2)
    threading.Thread(target=server2.serve_forever, daemon=True).start()
    try:
        for connect_ms, retries, every in configurations():
            rows = measure(connect_ms, retries, 2, server2.server_address[1], every)
            assert [status for _, status in rows] == ["200", "200"]
            assert all(wait > 0 for wait, _ in rows)
    finally:
        server2.shutdown()
