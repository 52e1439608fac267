"""TLS for the clients of the two services (SPEC section 6): peer calls, the VIP probe, the CLI.

One place builds the client-side ``ssl.SSLContext``: certificates are verified (against
``HS_TLS_CA_FILE`` when set, else the system store) and host names checked, so a peer presenting a
certificate from another CA, or for another address, is refused. When the node has a certificate
it presents it as a client certificate too: the servers do not require one (see docs/security.md),
but an operator who fronts them with a proxy that does can rely on it.
"""

from __future__ import annotations

import ssl


def client_context(ca_file: str = "", cert_file: str = "", key_file: str = "") -> ssl.SSLContext:
    """A verifying client context: CA file (or the system store) and, when given, our certificate."""
    ctx = ssl.create_default_context(cafile=ca_file or None)
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx
