"""Schemathesis hooks (``SCHEMATHESIS_HOOKS=tests.security.schemathesis_hooks``).

With ``HS_FUZZ_PEER_SECRET`` and ``HS_FUZZ_PEER_NODE`` set, every generated request to a ``/peer/``
path carries a valid HMAC signature over the bytes actually sent, so the fuzzer reaches the peer
endpoints' parsers and handlers instead of stopping at 401.

The one narrowing of the input space: a PUT /config that sets T or I above ``MAX_TIMING_S`` sets
them to it. T and I up to 3600 s are valid, but then every later switch waits up to T per peer
call (the fuzzer also moves the peer's address and ports), far beyond any request timeout: the run
would measure its own patience. Both are still fuzzed from 0.05 s to 2 s, and non-numbers as before.
"""

from __future__ import annotations

import os
from typing import Any

import requests
import schemathesis

from hotstandby.peerauth import H_SIG, sign, sign_compact


class PeerSignature(requests.auth.AuthBase):
    def __init__(self, secret: str, node: str) -> None:
        self.secret, self.node = secret, node

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body or b""
        body = body.encode() if isinstance(body, str) else body
        if r.path_url.split("?")[0] == "/peer/hb":  # the compact exchange: its one-header form
            r.headers["x-hs"] = sign_compact(self.secret, r.method or "POST", r.path_url, body, node=self.node)
        else:
            r.headers.update(sign(self.secret, r.method or "GET", r.path_url, body, node=self.node))
        return r


MAX_TIMING_S = 2.0


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.method.upper() == "PUT" and case.path == "/config" and isinstance(case.body, dict):
        for name in ("heartbeat_timeout_s", "heartbeat_interval_s"):
            value = case.body.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > MAX_TIMING_S:
                case.body[name] = MAX_TIMING_S
    secret, node = os.environ.get("HS_FUZZ_PEER_SECRET"), os.environ.get("HS_FUZZ_PEER_NODE")
    # The peerSignature scheme is an X-HS-Signature header (peerCompactSignature: x-hs): schemathesis puts a
    # placeholder there, which is replaced by a real signature; a case without it (the "missing header"
    # scenarios) goes out unsigned.
    signed = any(name.lower() in (H_SIG, "x-hs") for name in (case.headers or {}))
    if secret and node and case.path.startswith("/peer/") and signed:
        kwargs["auth"] = PeerSignature(secret, node)
