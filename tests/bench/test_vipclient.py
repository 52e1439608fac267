"""The bench's client through a VIP (lab.vipclient): open loop is not held back by a request that hangs, and
too few answers are no data, not a gap of zero."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lab.vipclient import OPEN_LOOP_MAX, VipClient
from lab.waiting import free_port, wait_until


class Node:
    """A /whoami server whose answers can be made to hang for a while."""

    def __init__(self) -> None:
        self.hang_until = 0.0
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                while time.monotonic() < node.hang_until:
                    time.sleep(0.01)
                body = json.dumps({"node_id": "server2"}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/whoami"


@pytest.fixture
def node() -> Iterator[Node]:
    n = Node()
    yield n
    n.server.shutdown()
    n.server.server_close()


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_hanging_request_holds_back_only_the_closed_loop(node: Node, concurrent: bool) -> None:
    """Answers hang for 0.6 s: the closed loop waits with them; the open loop keeps at most OPEN_LOOP_MAX
    outstanding and has its answers as soon as the node answers again."""
    with VipClient(node.url, period=0.02, timeout=5.0, concurrent=concurrent) as client:
        wait_until(lambda: client.routes_to("server2"), 5, "first answers")
        node.hang_until = time.monotonic() + 0.6
        asked = time.time()
        wait_until(lambda: client.first_from("server2", asked) is not None, 5, "an answer after the hang")
        time.sleep(0.3)
    sent_during_hang = [s for s, _, _ in client.samples if asked <= s <= asked + 0.55]
    if concurrent:  # several go out, never more than OPEN_LOOP_MAX at once (some slots hold earlier ones)
        assert 3 <= len(sent_during_hang) <= OPEN_LOOP_MAX
    else:
        assert len(sent_during_hang) <= 1


def test_fewer_than_two_answers_are_no_data(node: Node) -> None:
    """A window with one answer (or none) has no longest gap: None, never 0.0."""
    with VipClient(node.url, period=0.5) as client:
        wait_until(lambda: len(client.samples) >= 1, 5, "one answer")
    first = client.samples[0][0]
    assert client.max_gap(first, first) is None
    assert client.max_gap(first + 100, first + 200) is None
    assert client.requests(first, first) == 1
