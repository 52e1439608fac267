"""The monitor's HTTP API: the load balancer's and the peer's probes, and CTI control.

The compatibility paths keep existing load balancer monitors working: like IIS, the path and the
``mod`` value match case-insensitively. Role answers use status codes (200 ACTIVE, 503 STANDBY),
because HAProxy's ``expect string ACTIVE`` would also match ``INACTIVE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.model import Role
from hotstandby.settings import NodeSettings
from hotstandby.web import BodyLimit, admin_guard, error_responses, install_error_handlers
from services.monitor.cti import CtiService, NotActive
from services.monitor.hotpath import answer, canonical

# Documented, not enforced: an unknown mod is the SPEC's 400 with a message, not FastAPI's 422.
MOD_PATTERN = r"^\s*([Nn][Oo][Nn][Ee]|[Ii][Pp][Ss][Ww][Ss]|[Ff][Tt])\s*$"
CTI_FIELDS = ("state", "pid", "restarts", "ports_registered", "devices_registered", "last_error")


class CaseInsensitivePaths:
    """Route /IPSCFG/Admin/Monitor.aspx, /MONITOR, ... to /monitor, as IIS would."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            target = canonical(scope["path"])
            if target:
                scope = dict(scope, path=target, raw_path=target.encode())
        await self.app(scope, receive, send)


@dataclass
class MonitorContext:
    node: NodeSettings
    address: Callable[[], str]
    role: Callable[[], Role | None]
    cti: CtiService
    registry: CollectorRegistry
    ftlog: FaultTolerantLog
    self_check: Callable[[], str | None]  # None when the application is healthy


def probe(ctx: MonitorContext) -> Callable[[str], tuple[int, str]]:
    """The probe's answer for a ``mod``: one implementation for the route and for hotpath.HotProbes."""
    def reply(mod: str) -> tuple[int, str]:
        return answer(mod, role=ctx.role, self_check=ctx.self_check)

    return reply


def create_app(ctx: MonitorContext) -> FastAPI:
    app = FastAPI(title=f"hotstandby monitor ({ctx.node.node_id})", version="0.1.0",
                  description="Health and role probes for the peer and the load balancer; CTI supervisor.")
    app.add_middleware(CaseInsensitivePaths)
    app.add_middleware(BodyLimit, max_bytes=16 * 1024)
    install_error_handlers(app)
    admin = admin_guard(ctx.node.admin_token, lambda msg: ctx.ftlog.write("Monitor", msg))

    @app.get("/monitor", tags=["probes"], response_class=PlainTextResponse,
             summary="Also at /IPSCFG/admin/monitor.aspx; path and mod match case-insensitively",
             responses={503: {"description": "STANDBY (mod=FT) or IPSWS=ERROR"}, 400: {"description": "unknown mod"}})
    async def monitor(mod: Annotated[str, Query(json_schema_extra={"pattern": MOD_PATTERN})] = "NONE"
                      ) -> PlainTextResponse:
        # hotpath.HotProbes, in front of this app (node.py), answers plain GETs itself with the same words.
        status, text = probe(ctx)(mod)
        return PlainTextResponse(text, status_code=status)

    @app.get("/whoami", tags=["probes"])
    async def whoami() -> dict[str, str]:
        return {"node_id": ctx.node.node_id, "address": ctx.address()}

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/cti", tags=["cti"])
    async def cti() -> dict[str, Any]:
        snap = ctx.cti.supervisor.snapshot()
        return {k: snap.get(k) for k in CTI_FIELDS} | {"held": ctx.cti.held}

    async def command(action: str) -> JSONResponse:
        try:
            await getattr(ctx.cti, action)()
        except NotActive as exc:
            raise HTTPException(409, str(exc)) from None
        ctx.ftlog.write("Monitor", f"CTI {action} requested by the administrator")
        return JSONResponse(await cti())

    @app.post("/cti/start", tags=["cti"], dependencies=[Depends(admin)], responses=error_responses(401, 409))
    async def cti_start() -> JSONResponse:
        return await command("start")

    @app.post("/cti/stop", tags=["cti"], dependencies=[Depends(admin)], responses=error_responses(401, 409))
    async def cti_stop() -> JSONResponse:
        return await command("stop")

    @app.post("/cti/restart", tags=["cti"], dependencies=[Depends(admin)], responses=error_responses(401, 409))
    async def cti_restart() -> JSONResponse:
        return await command("restart")

    return app
