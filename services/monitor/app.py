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
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from hotstandby.api_models import CtiState, Health, Whoami
from hotstandby.ftlog import FaultTolerantLog
from hotstandby.model import Role
from hotstandby.settings import NodeSettings
from hotstandby.web import BodyLimit, admin_guard, error_responses, install_error_handlers, text_answer
from services.monitor.cti import CtiService, NotActive
from services.monitor.hotpath import answer, canonical

# Documented, not enforced: an unknown mod is the SPEC's 400 with a message, not FastAPI's 422.
MOD_PATTERN = r"^\s*([Nn][Oo][Nn][Ee]|[Ii][Pp][Ss][Ww][Ss]|[Ff][Tt])\s*$"
Mod = Annotated[str, Query(description="NONE (the node serves), IPSWS (the application self-check), FT (the role); "
                                       "case-insensitive", json_schema_extra={"pattern": MOD_PATTERN})]
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
    """The probe's answer for a ``mod``: one implementation for the route and for services/fastpath.FastFirst."""
    def reply(mod: str) -> tuple[int, str]:
        return answer(mod, role=ctx.role, self_check=ctx.self_check)

    return reply


def whoami(ctx: MonitorContext) -> Callable[[], dict[str, str]]:
    """``GET /whoami``'s answer: one implementation for the route and for services/fastpath.FastFirst."""
    def reply() -> dict[str, str]:
        return {"node_id": ctx.node.node_id, "address": ctx.address()}

    return reply


def create_app(ctx: MonitorContext) -> FastAPI:
    app = FastAPI(title=f"hotstandby monitor ({ctx.node.node_id})", version="0.1.0",
                  description="Health and role probes for the peer and the load balancer; CTI supervisor.")
    app.add_middleware(CaseInsensitivePaths)
    app.add_middleware(BodyLimit, max_bytes=16 * 1024)
    install_error_handlers(app)
    admin = admin_guard(ctx.node.admin_token, lambda msg: ctx.ftlog.write("Monitor", msg))

    reply = probe(ctx)  # services/fastpath.FastFirst (the server's protocol, node.py) answers plain GETs with it too
    who = whoami(ctx)  # the same

    def probe_answer(mod: str) -> PlainTextResponse:
        status, text = reply(mod)
        return PlainTextResponse(text, status_code=status)

    # The compatibility probes answer plain text, and their status code is the signal (SPEC 3).
    probe_answers: dict[int | str, dict[str, Any]] = {
        200: text_answer("OK (mod=NONE), IPSWS=OK (mod=IPSWS), or ACTIVE (mod=FT, the ACTIVE node)", "OK"),
        503: text_answer("STANDBY (mod=FT on the STANDBY node), or IPSWS=ERROR: <reason> (the application "
                         "self-check fails)", "STANDBY"),
        400: text_answer("an unknown mod, with a message", "unknown mod 'X': use NONE, IPSWS or FT"),
    }

    @app.get("/monitor", tags=["probes"], operation_id="getMonitor", response_class=PlainTextResponse,
             summary="The load balancer's and the peer's probe; path and mod match case-insensitively",
             responses=probe_answers)
    def monitor(mod: Mod = "NONE") -> PlainTextResponse:
        return probe_answer(mod)

    # Served by the same handler (CaseInsensitivePaths routes it, in any case, to /monitor); listed so that
    # clients and fuzzers know the vendor's path too.
    @app.get("/IPSCFG/admin/monitor.aspx", tags=["probes"], operation_id="getMonitorAspx",
             response_class=PlainTextResponse, responses=probe_answers,
             summary="The vendor's path of the same probe (existing load balancer monitors keep working)")
    def monitor_aspx(mod: Mod = "NONE") -> PlainTextResponse:
        return probe_answer(mod)

    answers: dict[str, Any] = {"response_model_exclude_unset": True}

    @app.get("/whoami", tags=["probes"], operation_id="getWhoami", response_model=Whoami, **answers)
    def get_whoami() -> dict[str, str]:
        return who()

    @app.get("/healthz", tags=["health"], operation_id="getHealth", response_model=Health, **answers)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["health"], operation_id="getMetrics", response_class=PlainTextResponse,
             responses={200: text_answer("Prometheus text exposition (SPEC 8)")})
    def metrics() -> Response:
        return Response(generate_latest(ctx.registry), media_type=CONTENT_TYPE_LATEST)

    def cti_state() -> dict[str, Any]:
        snap = ctx.cti.supervisor.snapshot()
        warm = {k: snap[k] for k in ("mode", "idle") if k in snap}  # HS_CTI_MODE=warm only
        return {k: snap.get(k) for k in CTI_FIELDS} | {"held": ctx.cti.held} | warm

    @app.get("/cti", tags=["cti"], operation_id="getCti", response_model=CtiState, **answers)
    def cti() -> dict[str, Any]:
        return cti_state()

    async def command(action: str) -> dict[str, Any]:
        try:
            await getattr(ctx.cti, action)()
        except NotActive as exc:
            raise HTTPException(409, str(exc)) from None
        ctx.ftlog.write("Monitor", f"CTI {action} requested by the administrator")
        return cti_state()

    commands: dict[str, Any] = answers | {"tags": ["cti"], "dependencies": [Depends(admin)],
                                          "response_model": CtiState, "responses": error_responses(401, 409)}

    @app.post("/cti/start", operation_id="startCti", **commands)
    async def cti_start() -> dict[str, Any]:
        return await command("start")

    @app.post("/cti/stop", operation_id="stopCti", **commands)
    async def cti_stop() -> dict[str, Any]:
        return await command("stop")

    @app.post("/cti/restart", operation_id="restartCti", **commands)
    async def cti_restart() -> dict[str, Any]:
        return await command("restart")

    return app
