"""Pieces both FastAPI services share: the body-size guard, admin auth, error answers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from hotstandby.peerauth import H_SIG, admin_ok

# Declared in /openapi.json (securitySchemes, and `security` on each operation that needs them); the checks
# themselves are admin_guard below and the arbiter's peer verifier.
ADMIN_SCHEME = HTTPBearer(scheme_name="adminToken", auto_error=False,
                          description="Authorization: Bearer <HS_ADMIN_TOKEN>, for the commands (SPEC 6).")
PEER_SCHEME = APIKeyHeader(name=H_SIG, scheme_name="peerSignature", auto_error=False, description=(
    "Node-to-node calls only: an HMAC-SHA256 with HS_PEER_SECRET over method, path with query, sender, "
    "timestamp, nonce and body, sent as X-HS-Signature with X-HS-Node, X-HS-Timestamp and X-HS-Nonce "
    "(hotstandby.peerauth). Replays and forgeries are refused with 401."))

PEER_COMPACT_SCHEME = APIKeyHeader(name="x-hs", scheme_name="peerCompactSignature", auto_error=False, description=(
    "The compact exchange (POST /peer/hb) only: '<node> <timestamp> <nonce> <HMAC-SHA256 of the request with "
    "HS_PEER_SECRET, 128 bits, base64url>' in one header (hotstandby.peerauth.sign_compact). Replays and "
    "forgeries are refused with 401."))


class ErrorBody(BaseModel):
    """Every refusal but 422: ``{"detail": "why"}``."""

    detail: str


class InvalidItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class InvalidBody(BaseModel):
    """422: each refused field named in ``loc``; ``message`` is the one-line summary when present."""

    detail: list[InvalidItem]
    message: str | None = None


_WHY = {
    400: "the body is not JSON (or not UTF-8)",
    401: "token or peer signature missing or wrong",
    409: "cannot be done safely now",
    413: "request body too large",
    422: "bad input: each refused field is named",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for these refusals, so clients and schemathesis know their shape."""
    return {code: {"description": _WHY[code], "model": InvalidBody if code == 422 else ErrorBody} for code in codes}


def _finite(value: Any) -> Any:
    """JSON cannot carry NaN or Infinity: an invalid input echoed back in a 422 is shown as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def install_error_handlers(app: FastAPI) -> None:
    """422 that survives NaN/Infinity inputs (FastAPI's own answered 500), and a 405 whose ``Allow``
    lists every method of the path (Starlette names only the first route's)."""

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _finite(jsonable_encoder(exc.errors()))
        return JSONResponse({"detail": errors}, status_code=422)

    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        methods: set[str] = set()
        for route in request.app.router.routes:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= set(getattr(route, "methods", None) or ())
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                            headers={"Allow": ", ".join(sorted(methods))})

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(405, not_allowed)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413 before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _json(send, 413, b'{"detail":"request body too large"}')
            return
        seen = 0

        async def limited() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, "request body too large")
            return message

        await self.app(scope, limited, send)


async def _json(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def admin_guard(token: str, on_refused: Callable[[str], object]) -> Callable[..., None]:
    """A dependency: ``Authorization: Bearer <HS_ADMIN_TOKEN>`` or 401 (and a log line)."""

    def check(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(ADMIN_SCHEME)]) -> None:
        if not admin_ok(token, request.headers.get("authorization")):
            host = request.client.host if request.client else "?"
            why = "missing" if "authorization" not in request.headers else "wrong"
            on_refused(f"admin call refused: {request.method} {request.url.path} from {host} ({why} token)")
            raise HTTPException(401, "admin token missing or wrong", headers={"WWW-Authenticate": "Bearer"})

    return check


def add_schemas(app: FastAPI, schemas: dict[str, dict[str, Any]]) -> None:
    """Put ``schemas`` into the app's OpenAPI components (bodies the routes parse themselves, by ``$ref``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            build().setdefault("components", {}).setdefault("schemas", {}).update(schemas)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def text_answer(description: str, example: str | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is plain text (the compatibility probes, the log, the metrics)."""
    media: dict[str, Any] = {"schema": {"type": "string"}}
    if example is not None:
        media["example"] = example
    return {"description": description, "content": {"text/plain": media}}

