"""The response models describe the arbiter's answers without reshaping them: the JSON served is the document the
arbiter builds, field for field (none renamed, dropped or added), over the app's real HTTP interface."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotstandby.api_models import ConfigDocument, Status
from services.arbiter.app import create_app
from tests.services.arbiter.test_heartbeat import FakeClock, make_arbiter


def served(app: Any, path: str) -> Any:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://arbiter") as c:
            return await c.get(path)

    r = asyncio.run(get())
    assert r.status_code == 200, r.text
    return r.json()


def as_json(document: Any) -> Any:
    return json.loads(json.dumps(document))


@pytest.mark.parametrize("ticks", [0, 4])
def test_status_is_served_exactly_as_the_arbiter_builds_it(tmp_path: Path, ticks: int) -> None:
    """GET /status is arbiter.status() as JSON, before the first tick and after a failover to this node."""
    clock = FakeClock()
    arbiter, _ = make_arbiter(tmp_path, clock)
    for _ in range(ticks):
        asyncio.run(arbiter.tick())
    app = create_app(arbiter)
    assert served(app, "/status") == as_json(arbiter.status())
    assert (served(app, "/status")["local"]["role"], ticks) in (("STANDBY", 0), ("ACTIVE", 4))


def test_config_is_served_exactly_as_the_book_holds_it(tmp_path: Path) -> None:
    """GET /config is the settings book's document: every setting with value, updated_at and origin, and the digest."""
    arbiter, _ = make_arbiter(tmp_path, FakeClock())
    assert served(create_app(arbiter), "/config") == as_json(arbiter.config.as_json())


def test_an_undeclared_field_is_refused_not_passed_through(tmp_path: Path) -> None:
    """A public answer's model declares every field: one it does not know fails validation loudly."""
    arbiter, _ = make_arbiter(tmp_path, FakeClock())
    with pytest.raises(ValueError, match="extra"):
        Status.model_validate(arbiter.status() | {"surprise": 1})
    with pytest.raises(ValueError, match="extra"):
        ConfigDocument.model_validate(arbiter.config.as_json() | {"surprise": 1})
