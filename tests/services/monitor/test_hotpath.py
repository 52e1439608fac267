"""The monitor's fast route (services/monitor/hotpath.py) as a pure function: which requests it answers
itself, and with what; the rest (None) is the application's. tests/integration/test_fastpath.py checks on a
real node that these answers are byte for byte the documented routes'."""

from __future__ import annotations

import json

import pytest

from services.fastpath import Request
from services.monitor.hotpath import probe_route

ROUTE = probe_route(lambda mod: (200, f"mod {mod}"), lambda: {"node_id": "server1", "address": "198.18.0.1"})


def _get(path: str, query: str = "", method: bytes = b"GET", body: bytes = b"") -> Request:
    return Request(method, path, query, {}, body, "198.18.0.9")


def test_whoami_is_answered_here_as_compact_json() -> None:
    answer = ROUTE(_get("/whoami"))
    assert answer is not None
    assert (answer.status, answer.content_type) == (200, b"application/json")
    assert answer.body == b'{"node_id":"server1","address":"198.18.0.1"}'
    assert json.loads(answer.body) == {"node_id": "server1", "address": "198.18.0.1"}


@pytest.mark.parametrize("path", ["/IPSCFG/admin/monitor.aspx", "/monitor", "/MONITOR/"])
def test_the_probe_is_answered_here_with_its_mod(path: str) -> None:
    answer = ROUTE(_get(path, "mod=FT"))
    assert answer is not None and (answer.status, answer.body) == (200, b"mod FT")


@pytest.mark.parametrize("request_", [
    _get("/whoami", method=b"POST"), _get("/whoami", body=b"x"), _get("/whoam%69"), _get("/WHOAMI"),
    _get("/whoami", "a#b"), _get("/status"), _get("/monitor", method=b"HEAD"),
])
def test_anything_else_is_the_applications(request_: Request) -> None:
    assert ROUTE(request_) is None
