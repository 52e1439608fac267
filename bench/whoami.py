"""A stand-in application on a keepalived host: ``GET /whoami`` answers ``{"node_id": ...}``.

    python -m bench.whoami NODE_ID HOST PORT

The bench runs one on each keepalived host, bound to every address, so a client through keepalived's VIP
sees which host holds it, exactly as a client through our VIP sees which node HAProxy routes to.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve(node_id: str, host: str, port: int) -> None:
    body = json.dumps({"node_id": node_id}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/whoami"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) if found else 0))
            self.end_headers()
            if found:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer((host, port), Handler).serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
