"""HMAC signatures for node-to-node calls (SPEC section 6).

The signature covers method, path with query, body, sender, timestamp and nonce. A request is
accepted once: its nonce is remembered for the whole acceptance window. The window is wide
(±15 min) on purpose: the two servers' clocks may disagree by minutes (we measure and export the
skew rather than demand NTP), and the nonce cache, not the clock, is what stops a replay.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

H_NODE, H_TS, H_NONCE, H_SIG = "x-hs-node", "x-hs-timestamp", "x-hs-nonce", "x-hs-signature"
# The compact exchange (protocol 2) carries the same four facts in one header, "<node> <ts> <nonce> <mac>",
# the MAC cut to 128 bits (RFC 2104's floor: half the hash) and both in unpadded base64url: 64 bytes, not 160.
H_COMPACT = "x-hs"
WINDOW_S = 900.0
MAX_NONCES = 100_000


def _mac(secret: str, method: str, path: str, body: bytes, node: str, ts: str, nonce: str) -> str:
    head = "\n".join((method.upper(), path, node, ts, nonce)).encode()
    return hmac.new(secret.encode(), head + b"\n" + body, hashlib.sha256).hexdigest()


def sign(secret: str, method: str, path: str, body: bytes, *, node: str,
         now: Callable[[], float] = time.time) -> dict[str, str]:
    ts, nonce = f"{now():.3f}", secrets.token_hex(12)
    return {H_NODE: node, H_TS: ts, H_NONCE: nonce, H_SIG: _mac(secret, method, path, body, node, ts, nonce)}


def _mac2(secret: str, method: str, path: str, body: bytes, node: str, ts: str, nonce: str) -> str:
    head = "\n".join(("2", method.upper(), path, node, ts, nonce)).encode()
    mac = hmac.new(secret.encode(), head + b"\n" + body, hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_compact(secret: str, method: str, path: str, body: bytes, *, node: str,
                 now: Callable[[], float] = time.time) -> str:
    """The value of the ``x-hs`` header of a compact exchange: ``<node> <ts> <nonce> <mac>``."""
    ts, nonce = f"{now():.3f}", base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
    return f"{node} {ts} {nonce} {_mac2(secret, method, path, body, node, ts, nonce)}"


class AuthError(Exception):
    """Why a peer call was refused; the text is safe to log (it never holds the secret)."""


class Verifier:
    def __init__(self, secret: str, *, expect_node: str, now: Callable[[], float] = time.time,
                 window_s: float = WINDOW_S, max_nonces: int = MAX_NONCES) -> None:
        self._secret = secret
        self._expect = expect_node
        self._now = now
        self._window = window_s
        self._max = max_nonces
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._floor = 0.0  # timestamps at or below this were evicted from the cache: refuse them
        self._lock = threading.Lock()

    def verify(self, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> str:
        node, ts, nonce, sig = (headers.get(h, "") for h in (H_NODE, H_TS, H_NONCE, H_SIG))
        if not (node and ts and nonce and sig):
            raise AuthError("unsigned request")
        return self._check(node, ts, nonce, sig, _mac, method, path, body)

    def verify_compact(self, method: str, path: str, body: bytes, header: str | None) -> str:
        """The compact exchange's one header (``sign_compact``), checked like ``verify``'s four."""
        parts = (header or "").split(" ")
        if len(parts) != 4 or not all(parts):
            raise AuthError("unsigned request")
        node, ts, nonce, sig = parts
        return self._check(node, ts, nonce, sig, _mac2, method, path, body)

    def _check(self, node: str, ts: str, nonce: str, sig: str, mac: Callable[..., str], method: str, path: str,
               body: bytes) -> str:
        if node != self._expect:
            raise AuthError(f"unexpected sender {node[:32]!r}")
        good = mac(self._secret, method, path, body, node, ts, nonce)
        if not hmac.compare_digest(good.encode(), sig.encode()):
            raise AuthError("bad signature (wrong secret, or the request was altered)")
        try:
            stamp = float(ts)
        except ValueError:
            raise AuthError("malformed timestamp") from None
        if not math.isfinite(stamp):  # "nan" passes every comparison below
            raise AuthError("malformed timestamp")
        now = self._now()
        if abs(now - stamp) > self._window:
            raise AuthError(f"stale timestamp ({now - stamp:+.0f} s outside the ±{self._window:.0f} s window)")
        with self._lock:
            self._expire(now)
            if nonce in self._seen or stamp <= self._floor:
                raise AuthError("replayed request (nonce already seen)")
            self._seen[nonce] = stamp
            while len(self._seen) > self._max:
                _, evicted = self._seen.popitem(last=False)
                self._floor = max(self._floor, evicted)
        return node

    def _expire(self, now: float) -> None:
        while self._seen:
            stamp = next(iter(self._seen.values()))
            if stamp >= now - self._window:
                break
            self._seen.popitem(last=False)
            self._floor = max(self._floor, stamp)  # if our clock steps back, its request must stay refused

    @property
    def cached_nonces(self) -> int:
        return len(self._seen)


def admin_ok(expected: str, header: str | None) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time; an unset token admits no one."""
    if not expected or not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), expected.encode())
