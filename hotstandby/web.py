"""Pieces both FastAPI services share: the body-size guard, admin auth, the web console page."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hotstandby.peerauth import admin_ok


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
            await _plain(send, 413, b"request body too large")
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


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def admin_guard(token: str, on_refused: Callable[[str], object]) -> Callable[[Request], None]:
    """A dependency: ``Authorization: Bearer <HS_ADMIN_TOKEN>`` or 401 (and a log line)."""

    def check(request: Request) -> None:
        if not admin_ok(token, request.headers.get("authorization")):
            host = request.client.host if request.client else "?"
            why = "missing" if "authorization" not in request.headers else "wrong"
            on_refused(f"admin call refused: {request.method} {request.url.path} from {host} ({why} token)")
            raise HTTPException(401, "admin token missing or wrong", headers={"WWW-Authenticate": "Bearer"})

    return check


def console_html() -> str:
    return files("hotstandby").joinpath("console.html").read_text()
