"""The compact exchange's endpoint, ``POST /peer/hb``, answered below the framework.

A STANDBY asks its ACTIVE once a tick (ten times a second at I = 0.1 s). ``BeatEndpoint`` is the one
implementation (signature, body, answer); ``beat_route`` is services/fastpath.py's route for the arbiter,
which answers it on the connection's own protocol before uvicorn's is even made, and the app's documented
route calls it too, so the OpenAPI describes what the fast path does.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from hotstandby.peerauth import H_COMPACT, AuthError, Verifier
from services.arbiter import wire
from services.fastpath import Answer, Request, Route

JSON = b"application/json"
AUTH = H_COMPACT.encode()


class BeatEndpoint:
    def __init__(self, answer: Callable[[bytes], bytes], verifier: Verifier,
                 on_refused: Callable[[str], object]) -> None:
        self._answer, self._verifier, self._on_refused = answer, verifier, on_refused

    def reply(self, body: bytes, auth: str | None, host: str) -> tuple[int, bytes]:
        """(status, body): 200 and our answer; 401 unsigned or badly signed (logged); 422 naming the field."""
        try:
            self._verifier.verify_compact("POST", wire.PATH, body, auth)
        except AuthError as exc:
            self._on_refused(f"peer call refused: POST {wire.PATH} from {host}: {exc}")
            return 401, _json({"detail": f"peer authentication failed: {exc}"})
        try:
            return 200, self._answer(body)
        except wire.WireError as exc:
            field, _, why = str(exc).partition(": ")
            return 422, _json({"detail": [{"loc": ["body", field], "msg": why or str(exc), "type": "value_error"}],
                               "message": str(exc)})


def beat_route(endpoint: BeatEndpoint) -> Route:
    """``POST /peer/hb`` (the path exactly as the application routes it) answered by ``endpoint``."""
    def route(r: Request) -> Answer | None:
        if r.method != b"POST" or r.path != wire.PATH:
            return None
        auth = r.headers.get(AUTH)
        status, body = endpoint.reply(r.body, auth.decode("latin-1") if auth is not None else None, r.client)
        return Answer(status, JSON, body)

    return route


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
