"""The monitor's probes, ``monitor.aspx?mod=NONE|IPSWS|FT`` and ``/whoami``: their answers, one implementation
for the documented routes (services/monitor/app.py) and for the connection's own protocol
(services/fastpath.py), which answers HAProxy's checks, the peer's probes and the clients asking the VIP
which node serves them before uvicorn's HTTP protocol is even made.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl

from hotstandby.model import Role
from services.fastpath import Answer, Request, Route

COMPAT_PATHS = {"/ipscfg/admin/monitor.aspx": "/monitor", "/monitor": "/monitor"}
TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


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


def probe_route(probe: Callable[[str], tuple[int, str]], whoami: Callable[[], dict[str, str]]) -> Route:
    """services/fastpath.py's route for the monitor: a plain ``GET`` of the probe's path (any spelling the
    application takes, no '%'), answered with ``probe(mod)``, and of ``/whoami``, answered with ``whoami()``
    as the application's JSON (compact, in the model's order); anything else is the application's."""
    def route(r: Request) -> Answer | None:
        if r.method != b"GET" or r.body or "%" in r.path or "#" in r.query:
            return None
        if r.path == "/whoami":
            return Answer(200, JSON, json.dumps(whoami(), ensure_ascii=False, separators=(",", ":")).encode())
        if canonical(r.path) is None:
            return None
        mod = "NONE"
        for key, value in parse_qsl(r.query, keep_blank_values=True):
            if key == "mod":
                mod = value  # the last one wins, as in the framework's query parsing
        status, text = probe(mod)
        return Answer(status, TEXT, text.encode())

    return route
