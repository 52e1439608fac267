"""Peer request signatures and the admin token (SPEC section 6), with an injected clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.peerauth import (
    H_NODE,
    H_NONCE,
    H_SIG,
    H_TS,
    WINDOW_S,
    AuthError,
    Verifier,
    admin_ok,
    sign,
    sign_compact,
)

SECRET = "s3cret-peer-key"
T0 = 1_795_618_107.734
BODY = b'{"role": "ACTIVE", "epoch": 7}'


class Clock:
    """A settable clock in seconds."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def signed(method: str = "POST", path: str = "/peer/heartbeat", body: bytes = BODY, *, secret: str = SECRET,
           node: str = "server1", at: float = T0) -> dict[str, str]:
    return sign(secret, method, path, body, node=node, now=lambda: at)


def verifier(clock: Clock | None = None, **kw: float | int) -> Verifier:
    return Verifier(SECRET, expect_node="server1", now=clock or Clock(), **kw)  # type: ignore[arg-type]


def test_fresh_request_is_accepted_once() -> None:
    """A correctly signed request passes and names its sender; the same request again is a replay."""
    v = verifier()
    headers = signed()
    assert v.verify("POST", "/peer/heartbeat", BODY, headers) == "server1"
    with pytest.raises(AuthError, match="replay"):
        v.verify("POST", "/peer/heartbeat", BODY, headers)


def test_sign_uses_fresh_nonces() -> None:
    """Two signatures of the same request carry different nonces, so both are accepted."""
    v = verifier()
    first, second = signed(), signed()
    assert first[H_NONCE] != second[H_NONCE]
    assert [v.verify("POST", "/peer/heartbeat", BODY, h) for h in (first, second)] == ["server1", "server1"]


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "why"),
    [
        ("POST", "/peer/heartbeat", BODY, {**signed(), H_SIG: "0" * 64}, "bad signature"),
        ("POST", "/peer/heartbeat", BODY, signed(secret="wrong-secret"), "bad signature"),
        ("POST", "/peer/heartbeat", BODY + b" ", signed(), "bad signature"),
        ("POST", "/peer/heartbeat", b'{"role": "STANDBY", "epoch": 7}', signed(), "bad signature"),
        ("POST", "/peer/role", BODY, signed(), "bad signature"),
        ("POST", "/peer/heartbeat?x=1", BODY, signed(), "bad signature"),
        ("PUT", "/peer/heartbeat", BODY, signed(), "bad signature"),
        ("POST", "/peer/heartbeat", BODY, {**signed(), H_NONCE: "another-nonce"}, "bad signature"),
        ("POST", "/peer/heartbeat", BODY, {**signed(), H_TS: f"{T0 + 1:.3f}"}, "bad signature"),
        ("POST", "/peer/heartbeat", BODY, signed(node="server2"), "unexpected sender"),
        ("POST", "/peer/heartbeat", BODY, signed(node="mallory"), "unexpected sender"),
        ("POST", "/peer/heartbeat", BODY, signed(at=T0 - WINDOW_S - 1), "stale"),
        ("POST", "/peer/heartbeat", BODY, signed(at=T0 + WINDOW_S + 1), "stale"),
        ("POST", "/peer/heartbeat", BODY, {}, "unsigned"),
    ],
    ids=["forged-sig", "wrong-secret", "body-appended", "body-altered", "path-altered", "query-added",
         "method-altered", "nonce-swapped", "timestamp-altered", "other-node", "stranger", "too-old",
         "too-new", "no-headers"],
)
def test_bad_requests_are_refused(method: str, path: str, body: bytes, headers: dict[str, str], why: str) -> None:
    """Forgeries, alterations in flight, strangers and stale timestamps raise AuthError with the reason."""
    with pytest.raises(AuthError, match=why):
        verifier().verify(method, path, body, headers)


@pytest.mark.parametrize("missing", [H_NODE, H_TS, H_NONCE, H_SIG])
def test_each_header_is_required(missing: str) -> None:
    """A request lacking any one of the four headers (or with it empty) is unsigned."""
    for headers in ({k: v for k, v in signed().items() if k != missing}, {**signed(), missing: ""}):
        with pytest.raises(AuthError, match="unsigned"):
            verifier().verify("POST", "/peer/heartbeat", BODY, headers)


@pytest.mark.parametrize("offset", [-WINDOW_S, -1.0, 0.0, 1.0, WINDOW_S])
def test_timestamps_inside_the_window_are_accepted(offset: float) -> None:
    """Clock skew up to the window, either way, is tolerated."""
    assert verifier().verify("POST", "/peer/heartbeat", BODY, signed(at=T0 + offset)) == "server1"


def test_error_text_never_holds_the_secret() -> None:
    """Refusal reasons are safe to log."""
    for headers in (signed(secret="wrong"), signed(node="server2"), signed(at=0.0), {}):
        with pytest.raises(AuthError) as info:
            verifier().verify("POST", "/peer/heartbeat", BODY, headers)
        assert SECRET not in str(info.value)


def test_nonce_cache_is_bounded_and_evicted_requests_stay_refused() -> None:
    """With ``max_nonces`` reached the oldest nonce is forgotten, yet replaying that request still fails."""
    clock = Clock()
    v = verifier(clock, max_nonces=3)
    requests = [signed(at=T0 + i) for i in range(5)]
    for i, headers in enumerate(requests):
        clock.t = T0 + i
        v.verify("POST", "/peer/heartbeat", BODY, headers)
        assert min(i + 1, 3) == v.cached_nonces
    for headers in requests:
        with pytest.raises(AuthError, match="replay"):
            v.verify("POST", "/peer/heartbeat", BODY, headers)
    assert v.cached_nonces == 3


def test_nonces_expire_with_the_window() -> None:
    """Nonces older than the window leave the cache; their requests are then refused as stale."""
    clock = Clock()
    v = verifier(clock, window_s=10.0)
    old = signed()
    v.verify("POST", "/peer/heartbeat", BODY, old)
    clock.t = T0 + 11
    v.verify("POST", "/peer/heartbeat", BODY, signed(at=clock.t))
    assert v.cached_nonces == 1
    with pytest.raises(AuthError, match="stale"):
        v.verify("POST", "/peer/heartbeat", BODY, old)


def test_replay_refused_after_the_clock_steps_back() -> None:
    """A request whose nonce expired from the cache is still refused when our wall clock later steps back."""
    clock = Clock()
    v = verifier(clock, window_s=10.0)
    old = signed()
    v.verify("POST", "/peer/heartbeat", BODY, old)
    clock.t = T0 + 11  # the old nonce expires on the next call
    v.verify("POST", "/peer/heartbeat", BODY, signed(at=clock.t))
    clock.t = T0 + 1  # NTP steps our clock back: the old request is inside the window again
    with pytest.raises(AuthError, match="replay"):
        v.verify("POST", "/peer/heartbeat", BODY, old)


@pytest.mark.parametrize("ts", ["nan", "inf", "-inf", "NaN", "not-a-number"])
def test_non_finite_or_malformed_timestamps_are_refused(ts: str) -> None:
    """A timestamp that is not a finite number is refused even with a valid signature."""
    from hotstandby.peerauth import _mac

    headers = {H_NODE: "server1", H_TS: ts, H_NONCE: "n1",
               H_SIG: _mac(SECRET, "POST", "/peer/heartbeat", BODY, "server1", ts, "n1")}
    with pytest.raises(AuthError):
        verifier().verify("POST", "/peer/heartbeat", BODY, headers)


@settings(max_examples=50)
@given(st.lists(st.floats(-WINDOW_S, WINDOW_S), min_size=1, max_size=30), st.integers(1, 8))
def test_every_request_is_accepted_at_most_once(offsets: list[float], cap: int) -> None:
    """Whatever the cache size and arrival order, replaying any request already seen is refused."""
    v = verifier(max_nonces=cap)
    requests = [signed(at=T0 + o) for o in offsets]
    for headers in requests:
        try:
            v.verify("POST", "/peer/heartbeat", BODY, headers)
        except AuthError as exc:  # refused as older than an evicted one: acceptable, never a security hole
            assert "replay" in str(exc)
    for headers in requests:
        with pytest.raises(AuthError):
            v.verify("POST", "/peer/heartbeat", BODY, headers)
    assert v.cached_nonces <= cap


@pytest.mark.parametrize(
    ("expected", "header", "ok"),
    [
        ("tok", "Bearer tok", True),
        ("tok", "Bearer tok ", True),
        ("tok", None, False),
        ("tok", "", False),
        ("tok", "Basic tok", False),
        ("tok", "tok", False),
        ("tok", "Bearer", False),
        ("tok", "Bearer ", False),
        ("tok", "Bearer tok2", False),
        ("tok", "Bearer to", False),
        ("tok", "Bearer TOK", False),
        ("", "Bearer ", False),
        ("", "Bearer", False),
        ("", None, False),
        ("tök", "Bearer tök", True),
    ],
)
def test_admin_ok(expected: str, header: str | None, ok: bool) -> None:
    """Only ``Bearer <the token>`` is admitted, and an unset token admits nobody."""
    assert ok == admin_ok(expected, header)


# -- the compact exchange's one header (protocol 2) ------------------------------------------------
def compact(body: bytes = BODY, *, secret: str = SECRET, node: str = "server1", at: float = T0,
            path: str = "/peer/hb") -> str:
    return sign_compact(secret, "POST", path, body, node=node, now=lambda: at)


def test_compact_signature_is_one_short_header_that_verifies() -> None:
    """sign_compact makes "<node> <ts> <nonce> <mac>" of at most 64 characters, and verify_compact accepts it once."""
    header = compact()
    assert len(header) <= 64 and header.split(" ")[0] == "server1"
    v = Verifier(SECRET, expect_node="server1", now=Clock())
    assert v.verify_compact("POST", "/peer/hb", BODY, header) == "server1"
    with pytest.raises(AuthError, match="replayed"):
        v.verify_compact("POST", "/peer/hb", BODY, header)


@pytest.mark.parametrize(("case", "why"), [
    ("other body", "bad signature"), ("other path", "bad signature"), ("wrong secret", "bad signature"),
    ("wrong node", "unexpected sender"), ("missing", "unsigned"), ("three parts", "unsigned"),
    ("stale", "stale timestamp"), ("long form mac", "bad signature"),
])
def test_compact_signature_refusals_say_why(case: str, why: str) -> None:
    """A compact header that does not match its request, sender, secret or time is refused with the reason."""
    v = Verifier(SECRET, expect_node="server1", now=Clock())
    header: str | None = compact()
    body, path = BODY, "/peer/hb"
    if case == "other body":
        body = BODY + b" "
    elif case == "other path":
        path = "/peer/role"
    elif case == "wrong secret":
        header = compact(secret="other")
    elif case == "wrong node":
        header = compact(node="server2")
    elif case == "missing":
        header = None
    elif case == "three parts":
        header = " ".join(compact().split(" ")[:3])
    elif case == "stale":
        header = compact(at=T0 - WINDOW_S - 1)
    elif case == "long form mac":  # the long form's signature in the compact header: another MAC, refused
        h = signed(path="/peer/hb")
        header = f"server1 {h[H_TS]} {h[H_NONCE]} {h[H_SIG]}"
    with pytest.raises(AuthError, match=why):
        v.verify_compact("POST", path, body, header)
