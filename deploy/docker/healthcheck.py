#!/usr/bin/env python3
"""The image's HEALTHCHECK: exit 0 when the local arbiter's /healthz answers 200 within 2 s.

/healthz is 503 when the heartbeat loop has not completed a tick within 3·I or the node cannot
write its database (SPEC section 3). With HS_TLS_CERT_FILE set the arbiter serves HTTPS: the
check presents the node's own certificate (the arbiter may require one) and verifies the answer
against HS_TLS_CA_FILE, without a host name check (it asks 127.0.0.1, not a name in the certificate).
Only http.client, and ssl only with TLS: the check runs every few seconds and must start fast on a
busy machine.
"""

from __future__ import annotations

import http.client
import os
import sys


def connection(port: int) -> http.client.HTTPConnection:
    cert = os.environ.get("HS_TLS_CERT_FILE")
    if not cert:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    import ssl

    context = ssl.create_default_context(cafile=os.environ.get("HS_TLS_CA_FILE") or None)
    context.check_hostname = False
    context.load_cert_chain(cert, os.environ.get("HS_TLS_KEY_FILE") or None)
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=context)


def main() -> int:
    port = int(os.environ.get("HS_ARBITER_PORT", "2011"))
    try:
        conn = connection(port)
        conn.request("GET", "/healthz")
        status = conn.getresponse().status
    except Exception as exc:  # any failure is "unhealthy": say why in the health log
        print(f"127.0.0.1:{port}/healthz: {exc!r}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"127.0.0.1:{port}/healthz: {status}", file=sys.stderr)
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
