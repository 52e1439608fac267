"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.security.schemathesis_hooks``): sign /peer/ calls.

With ``HS_FUZZ_PEER_SECRET`` and ``HS_FUZZ_PEER_NODE`` set, every generated request to a ``/peer/``
path carries a valid HMAC signature over the bytes actually sent, so the fuzzer reaches the peer
endpoints' parsers and handlers instead of stopping at 401.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

from hotstandby.peerauth import sign


class PeerSignature(requests.auth.AuthBase):
    def __init__(self, secret: str, node: str) -> None:
        self.secret, self.node = secret, node

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        body = body.encode() if isinstance(body, str) else body
        r.headers.update(sign(self.secret, r.method or "GET", r.path_url, body, node=self.node))
        return r


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    secret, node = os.environ.get("HS_FUZZ_PEER_SECRET"), os.environ.get("HS_FUZZ_PEER_NODE")
    if secret and node and case.path.startswith("/peer/"):
        kwargs["auth"] = PeerSignature(secret, node)
