#!/usr/bin/env python3
"""The image's HEALTHCHECK: exit 0 when the local arbiter's /healthz answers 200 within 2 s.

/healthz is 503 when the heartbeat loop has not completed a tick within 3·I or the node cannot
write its database (SPEC section 3). With HS_TLS_CERT_FILE set the arbiter serves HTTPS: the
check presents the node's own certificate (the arbiter may require one) and verifies the answer
against HS_TLS_CA_FILE, without a host name check (it asks 127.0.0.1, not a name in the certificate).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.request


def main() -> int:
    port = os.environ.get("HS_ARBITER_PORT", "2011")
    cert = os.environ.get("HS_TLS_CERT_FILE")
    context = None
    if cert:
        context = ssl.create_default_context(cafile=os.environ.get("HS_TLS_CA_FILE") or None)
        context.check_hostname = False
        context.load_cert_chain(cert, os.environ.get("HS_TLS_KEY_FILE") or None)
    url = f"{'https' if cert else 'http'}://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            return 0 if answer.status == 200 else 1
    except Exception as exc:  # any failure is "unhealthy": say why in the health log
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
