"""The web console (SPEC 13) as the arbiter serves it: the page and its files, the one command the page
needs beyond SPEC 3 (a CTI restart), and CORS on the open reads so a console can read its peer's status.

- ``GET /`` is the page; ``GET /console/<file>`` its scripts and style, all shipped in the package
  (``hotstandby/console/``): nothing comes from the internet. The page's Content-Security-Policy lets it
  run only its own files and connect only to the pair's own arbiters.
- ``POST /cti/restart`` (admin token): the monitor's restart, asked of this node's CTI supervisor through
  the arbiter's CTI handle (in-process under ``hotstandby node``, the monitor's own authenticated
  ``/cti/restart`` when the services run apart), so the page needs no second origin and no weaker auth.
- The open reads (``/status``, ``/config``, ``/logs``, ``/logs/days``, ``/history``, ``/healthz``) answer a
  cross-origin GET from the pair's own consoles (``Access-Control-Allow-Origin`` for those origins only);
  nothing else gets CORS headers, so a browser never lets another page send a command.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hotstandby.api_models import CtiSnapshot
from hotstandby.settings import ClusterSettings, NodeSettings, split_host_port
from hotstandby.web import error_responses
from services.arbiter.heartbeat import Arbiter

OPEN_READS = frozenset({"/status", "/config", "/logs", "/logs/days", "/history", "/healthz"})
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of the console, read once: its name is the whitelist of what ``/console/`` serves."""
    out = {}
    for item in files("hotstandby.console").iterdir():
        kind = _TYPES.get("." + item.name.rsplit(".", 1)[-1])
        if kind and item.is_file():
            body = item.read_bytes()
            out[item.name] = Asset(body, kind, '"' + hashlib.sha256(body).hexdigest()[:16] + '"')
    return out


def _origin(scheme: str, host: str, port: int) -> str:
    """An origin as a browser writes it: IPv6 in brackets, the scheme's default port left out."""
    host = f"[{host}]" if ":" in host else host
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" if port == default else f"{scheme}://{host}:{port}"


def console_origins(cluster: ClusterSettings, node: NodeSettings) -> list[str]:
    """The origins the pair's consoles are served from: each server's address, this node's own
    ``HS_LOCAL_ADDRESS`` and the VIP's host, all on the arbiter port."""
    scheme = "https" if node.tls else "http"
    hosts = [cluster.server1_address, cluster.server2_address, node.local_address]
    if cluster.vip_address:
        hosts.append(split_host_port(cluster.vip_address, default_port=0)[0])
    seen: dict[str, None] = {}
    for host in hosts:
        if host:
            seen[_origin(scheme, host.strip("[]").lower(), cluster.arbiter_port)] = None
    return list(seen)


def page_headers(origins: Collection[str]) -> dict[str, str]:
    """The page runs only its own files, reads only the pair's arbiters, and is never framed (a framed
    "-> Active (Primary)" button could be clicked through a decoy)."""
    csp = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           f"connect-src 'self' {' '.join(origins)}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return {"content-security-policy": csp, "x-frame-options": "DENY", "x-content-type-options": "nosniff",
            "referrer-policy": "no-referrer", "cache-control": "no-cache"}


class OpenReadsCors:
    """``Access-Control-Allow-Origin`` on GET/HEAD of the open reads, for the pair's console origins only."""

    def __init__(self, app: ASGIApp, origins: Callable[[], Collection[str]]) -> None:
        self.app, self.origins = app, origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] not in OPEN_READS:
            await self.app(scope, receive, send)
            return
        origin = dict(scope.get("headers", [])).get(b"origin")
        allowed = origin is not None and origin.decode("latin-1").lower() in self.origins()

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", []), (b"vary", b"Origin")]
                if allowed:
                    assert origin is not None
                    headers.append((b"access-control-allow-origin", origin))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cors)


def install_console(app: FastAPI, arbiter: Arbiter, admin: Callable[[Request], None],
                    who: Callable[[Request], str]) -> None:
    """The page, its files, ``POST /cti/restart`` and CORS on the open reads, on the arbiter's app."""
    assets = load_assets()
    page = assets.pop("index.html")

    def origins() -> list[str]:
        return console_origins(arbiter.cluster, arbiter.node)

    app.add_middleware(OpenReadsCors, origins=origins)

    def serve(asset: Asset, request: Request, extra: dict[str, str] | None = None) -> Response:
        headers = {"etag": asset.etag, "cache-control": "no-cache", "x-content-type-options": "nosniff"}
        headers |= extra or {}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    @app.get("/", include_in_schema=False)
    def console(request: Request) -> Response:
        return serve(page, request, page_headers(origins()))

    @app.get("/console/{name}", include_in_schema=False)
    def console_file(name: str, request: Request) -> Response:
        if name not in assets:
            raise HTTPException(404, "no such console file")
        return serve(assets[name], request)

    @app.post("/cti/restart", tags=["commands"], dependencies=[Depends(admin)], operation_id="restartCti",
              summary="Restart this node's CTI server now (it must be ACTIVE); counted in restarts",
              response_model=CtiSnapshot, response_model_exclude_unset=True, responses=error_responses(401, 409))
    async def cti_restart(request: Request) -> dict[str, Any]:
        arbiter.ftlog.write("Arbiter", f"CTI restart requested by {who(request)}")
        refused = await arbiter.cti.restart()
        if refused:
            arbiter.ftlog.write("Arbiter", f"CTI restart refused: {refused}")
            raise HTTPException(409, refused)
        return arbiter.cti.snapshot()
