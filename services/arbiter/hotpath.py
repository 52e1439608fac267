"""The compact exchange's endpoint, ``POST /peer/hb``, answered below the framework.

A STANDBY asks its ACTIVE once a tick (ten times a second at I = 0.1 s): through FastAPI's routing,
dependencies and body parsing an answer costs several times what it costs here. ``BeatEndpoint`` is the
one implementation (signature, body, answer); ``HotBeats`` (ASGI, in front of the arbiter's app) calls it
for every ``POST /peer/hb``, and the app's documented route calls it too, so the OpenAPI describes what
the hot path does.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from hotstandby.peerauth import H_COMPACT, AuthError, Verifier
from services.arbiter import wire

MAX_BODY = 64 * 1024  # as the app's BodyLimit
JSON = (b"content-type", b"application/json")


class BeatEndpoint:
    def __init__(self, answer: Callable[[bytes], Awaitable[bytes]], verifier: Verifier,
                 on_refused: Callable[[str], object]) -> None:
        self._answer, self._verifier, self._on_refused = answer, verifier, on_refused

    async def reply(self, body: bytes, auth: str | None, host: str) -> tuple[int, bytes]:
        """(status, body): 200 and our answer; 401 unsigned or badly signed (logged); 422 naming the field."""
        try:
            self._verifier.verify_compact("POST", wire.PATH, body, auth)
        except AuthError as exc:
            self._on_refused(f"peer call refused: POST {wire.PATH} from {host}: {exc}")
            return 401, _json({"detail": f"peer authentication failed: {exc}"})
        try:
            return 200, await self._answer(body)
        except wire.WireError as exc:
            field, _, why = str(exc).partition(": ")
            return 422, _json({"detail": [{"loc": ["body", field], "msg": why or str(exc), "type": "value_error"}],
                               "message": str(exc)})


class HotBeats:
    """ASGI: ``POST /peer/hb`` answered here by ``endpoint``; everything else goes to ``app``."""

    def __init__(self, app: ASGIApp, endpoint: BeatEndpoint) -> None:
        self.app, self.endpoint = app, endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != wire.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        auth = None
        for name, value in scope["headers"]:
            if name == H_COMPACT.encode():
                auth = value.decode("latin-1")
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY:
                await _send(send, 413, _json({"detail": "request body too large"}))
                return
        client = scope.get("client")
        status, answer = await self.endpoint.reply(body, auth, client[0] if client else "?")
        await _send(send, status, answer)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def _send(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [JSON, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
