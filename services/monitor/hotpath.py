"""The monitor probes, answered below the framework.

HAProxy checks ``mod=FT`` four times a second per node at I = 1 s (ten at I = 0.1 s), and the peer
probes ``mod=NONE``: through FastAPI's routing, dependencies and middleware each answer cost ~0.6 ms of
CPU, at this layer ~0.13 ms. ``HotProbes`` answers a plain ``GET`` of ``/IPSCFG/admin/monitor.aspx`` or
``/monitor`` (path and ``mod`` value case-insensitive, like IIS) itself, with the same status, body and
headers as the documented route, and hands every other request (a body, HEAD, another path) to the
application, which keeps documenting the probe in its OpenAPI.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from hotstandby.model import Role

COMPAT_PATHS = {"/ipscfg/admin/monitor.aspx": "/monitor", "/monitor": "/monitor"}
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


def answer(mod: str, *, role: Callable[[], Role | None], self_check: Callable[[], str | None]) -> tuple[int, str]:
    """(status, body) of ``monitor.aspx?mod=...``: NONE, IPSWS or FT, any case; 400 for anything else."""
    kind = mod.strip().upper()
    if kind == "NONE":
        return 200, "OK"
    if kind == "IPSWS":
        problem = self_check()
        return (503, f"IPSWS=ERROR: {problem}") if problem else (200, "IPSWS=OK")
    if kind == "FT":
        active = role() is Role.ACTIVE
        return (200, "ACTIVE") if active else (503, "STANDBY")
    return 400, f"unknown mod {mod[:40]!r}: use NONE, IPSWS or FT"


def canonical(path: str) -> str | None:
    """``/monitor`` for any spelling of the probe's paths (case, a trailing slash), else None."""
    return COMPAT_PATHS.get(path.lower().rstrip("/") or "/")


class HotProbes:
    """ASGI: answer the probe's plain GETs here, pass everything else to ``app``."""

    def __init__(self, app: ASGIApp, probe: Callable[[str], tuple[int, str]]) -> None:
        self.app, self.probe = app, probe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and canonical(scope["path"]) and _no_body(scope):
            mod = "NONE"
            for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
                if key == "mod":
                    mod = value  # the last one wins, as in the framework's query parsing
            status, text = self.probe(mod)
            body = text.encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [*TEXT, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def _no_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if (name == b"content-length" and value.strip() not in (b"", b"0")) or name == b"transfer-encoding":
            return False
    return True
