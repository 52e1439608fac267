"""The arbiter's HTTP API (SPEC section 3): open reads and admin commands here; the console's routes in
services/arbiter/console.py, the signed peer calls in services/arbiter/peer_api.py."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hotstandby.api_models import (
    ConfigChange,
    ConfigDocument,
    Explanation,
    Health,
    HistoryItem,
    LogDays,
    LogEntry,
    MaintenanceAnswer,
    MaintenanceRequest,
    Status,
    SwitchAnswer,
    SwitchRequest,
    settings_patch_schema,
)
from hotstandby.explain import explain as explain_pair
from hotstandby.settings import SettingsError
from hotstandby.store import StoreError
from hotstandby.web import (
    BodyLimit,
    add_schemas,
    admin_guard,
    error_responses,
    install_error_handlers,
    schema_ref,
    text_answer,
)
from services.arbiter import wire
from services.arbiter.console import install_console
from services.arbiter.heartbeat import Arbiter, SwitchRefused
from services.arbiter.peer_api import install_peer_api
from services.arbiter.status import iso

_LOG_ANSWER: dict[str, Any] = {
    "description": "the day's fault-tolerant log (SPEC 7): the text, or its parsed lines with ?format=json",
    "content": {"text/plain": {"schema": {"type": "string"},
                               "example": "2026/11/25_14:48:27:734 Arbiter : SWITCH THIS SERVER TO PRIMARY, ..."},
                "application/json": {"schema": {"type": "array", "items": schema_ref("LogEntry")}}},
}
# Answers are the dicts the arbiter builds, checked against and described by their model; exclude_unset keeps
# each one exactly as built (a field the code leaves out is not added as null).
_AS_BUILT: dict[str, Any] = {"response_model_exclude_unset": True}


def _who(request: Request) -> str:
    agent = request.headers.get("user-agent", "")
    tool = "CLI" if agent.startswith("hotstandby-cli") else "console" if "Mozilla" in agent else "API"
    host = request.client.host if request.client else "?"
    return f"{tool} from {host}"


def create_app(arbiter: Arbiter) -> FastAPI:
    node = arbiter.node
    app = FastAPI(title=f"hotstandby arbiter ({node.node_id})", version="0.1.0",
                  description="Heartbeats with the peer, decides the ACTIVE node, holds the cluster settings.")
    app.add_middleware(BodyLimit, max_bytes=64 * 1024)
    install_error_handlers(app)
    add_schemas(app, {"SettingsPatch": settings_patch_schema(), "LogEntry": LogEntry.model_json_schema(),
                      "Beat": wire.SCHEMA})
    admin = admin_guard(node.admin_token, lambda msg: _refused(arbiter, "admin", msg))
    install_console(app, arbiter, admin, _who)  # GET /, its files, POST /cti/restart, CORS on open reads

    @app.get("/healthz", tags=["health"], operation_id="getHealth", response_model=Health, **_AS_BUILT,
             responses={503: {"model": Health, "description": "the heartbeat loop is late or hung, or the role "
                                                              "cannot be persisted"}})
    def healthz(response: Response) -> dict[str, Any]:
        ok, why = arbiter.healthy()
        response.status_code = 200 if ok else 503
        return {"status": "ok" if ok else "unhealthy", "detail": why}

    @app.get("/metrics", tags=["health"], operation_id="getMetrics", response_class=PlainTextResponse,
             responses={200: text_answer("Prometheus text exposition (SPEC 8)")})
    def metrics() -> Response:
        return Response(generate_latest(arbiter.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status", tags=["status"], operation_id="getStatus", response_model=Status, **_AS_BUILT)
    def status() -> dict[str, Any]:
        return arbiter.status()

    @app.post("/switch", tags=["commands"], operation_id="switch", dependencies=[Depends(admin)],
              response_model=SwitchAnswer, **_AS_BUILT, responses=error_responses(400, 401, 409, 413))
    async def switch(req: SwitchRequest, request: Request) -> dict[str, Any]:
        try:
            await arbiter.switch(req.target, force=req.force, who=_who(request))
        except SwitchRefused as exc:
            arbiter.ftlog.write("Arbiter", f"Manual switch to {req.target} refused: {exc}")
            raise HTTPException(409, str(exc)) from None
        return {"target": req.target, "active": req.target, "epoch": arbiter.cluster_epoch(),
                "status": arbiter.status()}

    @app.post("/maintenance", tags=["commands"], operation_id="setMaintenance", dependencies=[Depends(admin)],
              response_model=MaintenanceAnswer, **_AS_BUILT, responses=error_responses(400, 401, 413))
    async def maintenance(req: MaintenanceRequest, request: Request) -> dict[str, Any]:
        replicated = await arbiter.set_maintenance(req.enabled, f"by {_who(request)}")
        return {"maintenance": req.enabled, "replicated": replicated}

    @app.get("/config", tags=["config"], operation_id="getConfig", response_model=ConfigDocument, **_AS_BUILT)
    def get_config() -> dict[str, Any]:
        return arbiter.config.as_json()

    @app.put("/config", tags=["config"], operation_id="putConfig", dependencies=[Depends(admin)],
             response_model=ConfigChange, **_AS_BUILT,
             responses=error_responses(401, 413, 422) | {503: {"description": "not changed: the database failed"}},
             openapi_extra={"requestBody": {"required": True,
                                            "content": {"application/json": {"schema": schema_ref("SettingsPatch")}}}})
    async def put_config(request: Request) -> Any:
        try:
            patch = json.loads(await request.body() or b"null")
        except (ValueError, RecursionError) as exc:  # RecursionError: JSON nested too deep
            return _unprocessable([("body", f"invalid JSON: {exc}")])
        if not isinstance(patch, dict) or not patch:
            return _unprocessable([("body", "must be a non-empty JSON object of settings")])
        try:
            changed, replicated = await arbiter.put_config(patch, f"from {_who(request)}")
        except SettingsError as exc:
            return _unprocessable(exc.errors)
        except StoreError as exc:
            raise HTTPException(503, f"not changed: {exc}") from None
        return {"changed": changed, "replicated": replicated} | arbiter.config.as_json()

    @app.get("/logs", tags=["logs"], operation_id="getLogs", response_class=PlainTextResponse,
             responses={200: _LOG_ANSWER})
    def logs(day: Annotated[str | None, Query(description="YYYY-MM-DD", pattern=r"^\d{4}-\d{2}-\d{2}$",
                                                    json_schema_extra={"format": "date"})] = None,
             format: Literal["text", "json"] = "text") -> Response:
        try:
            when = date.fromisoformat(day) if day else None
        except ValueError:
            raise RequestValidationError([{"loc": ("query", "day"), "msg": "not a calendar date (YYYY-MM-DD)",
                                           "type": "value_error", "input": day}]) from None
        text = arbiter.ftlog.read(when)
        if format == "json":
            return JSONResponse(arbiter.ftlog.parse(text))
        return PlainTextResponse(text)

    @app.get("/history", tags=["status"], operation_id="getHistory", response_model=list[HistoryItem],
             response_model_by_alias=True,
             responses=error_responses(422) | {503: {"description": "the database cannot be read"}})
    def history(response: Response,
                limit: Annotated[int, Query(ge=1, le=1000, description="entries in this page")] = 50,
                before: Annotated[int | None, Query(ge=1, description="only entries with a smaller id (the "
                                                                      "previous page's last id)")] = None,
                ) -> list[dict[str, Any]]:
        """This node's role changes, newest first, a page at a time (a `Link: rel="next"` header when there
        are more)."""
        try:
            page = arbiter.store.history(limit=limit + 1, before=before)
        except StoreError as exc:
            raise HTTPException(503, f"history unavailable: {exc}") from None
        if len(page) > limit:
            page = page[:limit]
            response.headers["link"] = f'</history?limit={limit}&before={page[-1].id}>; rel="next"'
        return [{"id": e.id, "at": e.at, "node_id": e.node_id, "from": e.from_role, "to": e.to_role, "rule": e.rule,
                 "cause": e.cause, "epoch": e.epoch, "asked_by": e.asked_by, "reason": e.reason} for e in page]

    @app.get("/explain", tags=["status"], operation_id="explain", response_model=Explanation,
             responses=error_responses(422))
    def explain(scenario: Annotated[Literal["peer-dead", "lan-lost", "vip-to", "switch", "stop"] | None, Query(
                    description="what to suppose from the next tick on")] = None,
                target: Annotated[Literal["server1", "server2"] | None, Query(
                    description="the node, for vip-to and switch")] = None) -> dict[str, Any]:
        """What the core would decide on the next tick and why, from this node's last observation; with a
        scenario, tick by tick what would happen then. Computed by the same pure rules; changes nothing."""
        if scenario in ("vip-to", "switch") and target is None:
            raise RequestValidationError([{"loc": ("query", "target"), "msg": f"{scenario} needs a target",
                                           "type": "value_error"}])
        seen = arbiter.last_observation
        return explain_pair(arbiter.state, seen[0] if seen else None, arbiter.cluster, scenario=scenario,
                            target=target, observed_at=iso(seen[1]) if seen else None)

    @app.get("/logs/days", tags=["logs"], operation_id="getLogDays", response_model=LogDays)
    def log_days() -> list[str]:
        return arbiter.ftlog.days()

    install_peer_api(app, arbiter, lambda msg: _refused(arbiter, "peer", msg))  # /peer/*, signed
    return app


def _refused(arbiter: Arbiter, kind: str, message: str) -> None:
    arbiter.ftlog.write("Arbiter", message)
    arbiter.metrics.auth_rejections.labels(arbiter.node.node_id, kind).inc()


def _unprocessable(errors: list[tuple[str, str]]) -> JSONResponse:
    detail = [{"loc": ["body", name], "msg": rule, "type": "value_error"} for name, rule in errors]
    message = "; ".join(f"{name}: {rule}" for name, rule in errors)
    return JSONResponse({"detail": detail, "message": message}, status_code=422)
