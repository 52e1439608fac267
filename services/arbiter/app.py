"""The arbiter's HTTP API (SPEC section 3): open reads, admin commands, signed peer calls."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from hotstandby.explain import explain as explain_pair
from hotstandby.hlc import Timestamp
from hotstandby.model import Cause, Role
from hotstandby.peerauth import AuthError, Verifier
from hotstandby.rules import StaleCommand
from hotstandby.settings import ClusterSettings, SettingsError
from hotstandby.store import StoreError
from hotstandby.web import BodyLimit, admin_guard, error_responses, install_error_handlers
from services.arbiter.console import install_console
from services.arbiter.heartbeat import Arbiter, SwitchRefused
from services.arbiter.status import iso


class HistoryItem(BaseModel):
    """One role change of this node (SPEC 13), as the store keeps it."""

    model_config = ConfigDict(populate_by_name=True)
    id: int = Field(description="orders the history; `before` in the next page's request")
    at: str = Field(description="ISO 8601, UTC")
    node_id: str
    from_: str = Field(alias="from", description="the role before")
    to: str = Field(description="the role after")
    rule: str | None = Field(description="R1..R12, or null")
    cause: str
    epoch: int
    asked_by: str | None = Field(description="who asked (an operator, the peer); null: the node decided itself")
    reason: str = Field(description="the decision's sentence, as in the fault-tolerant log")


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: Literal["server1", "server2"]
    force: StrictBool = False  # JSON true/false only: 0 or "yes" is a 422, not a guess


class MaintenanceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: StrictBool


# Epochs stay JSON-safe integers (I-JSON: up to 2**53 - 1); a bound near 2**62 is not even
# representable as a double, so validators in other languages compare it wrongly.
MAX_EPOCH = 2**53 - 1
HLC_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z#\d{1,18}$"  # hotstandby.hlc.Timestamp's text


def _hlc(text: str) -> str:
    """The pattern has the shape; a calendar date (no month 13, no 30 February) is checked here."""
    Timestamp.parse(text)
    return text


class RoleCommand(BaseModel):
    role: Role
    epoch: int = Field(ge=0, le=MAX_EPOCH)
    cause: Cause = Cause.PEER
    reason: str = Field(default="", max_length=500)


class MaintenanceStamp(BaseModel):
    value: bool
    at: str = Field(pattern=HLC_PATTERN)
    origin: str = Field(max_length=64)

    @field_validator("at")
    @classmethod
    def _calendar(cls, v: str) -> str:
        return _hlc(v)


class Heartbeat(BaseModel):
    node_id: Literal["server1", "server2"]
    role: Role
    epoch: int = Field(ge=0, le=MAX_EPOCH)
    hlc: str = Field(pattern=HLC_PATTERN)
    digest: str = Field(max_length=128)
    maintenance: MaintenanceStamp
    model_config = ConfigDict(extra="allow")

    @field_validator("hlc")
    @classmethod
    def _calendar(cls, v: str) -> str:
        return _hlc(v)


# PUT /config's body: any non-empty subset of the cluster settings (validated together, section 2).
_PATCH: dict[str, Any] = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {name: {k: v for k, v in spec.items() if k not in ("default", "title")}
                   for name, spec in ClusterSettings.model_json_schema()["properties"].items()},
}
_LOG_CONTENT: dict[str, Any] = {"content": {
    "text/plain": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
}, "description": "the day's fault-tolerant log: text, or parsed entries with ?format=json"}


def _who(request: Request) -> str:
    agent = request.headers.get("user-agent", "")
    tool = "CLI" if agent.startswith("hotstandby-cli") else "console" if "Mozilla" in agent else "API"
    host = request.client.host if request.client else "?"
    return f"{tool} from {host}"


def create_app(arbiter: Arbiter) -> FastAPI:
    node = arbiter.node
    verifier = Verifier(node.peer_secret, expect_node=node.peer_id)
    app = FastAPI(title=f"hotstandby arbiter ({node.node_id})", version="0.1.0",
                  description="Heartbeats with the peer, decides the ACTIVE node, holds the cluster settings.")
    app.add_middleware(BodyLimit, max_bytes=64 * 1024)
    install_error_handlers(app)
    admin = admin_guard(node.admin_token, lambda msg: _refused(arbiter, "admin", msg))
    install_console(app, arbiter, admin, _who)  # GET /, its files, POST /cti/restart, CORS on open reads

    async def peer_auth(request: Request) -> None:
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            verifier.verify(request.method, path, body, request.headers)
        except AuthError as exc:
            host = request.client.host if request.client else "?"
            _refused(arbiter, "peer", f"peer call refused: {request.method} {request.url.path} from {host}: {exc}")
            raise HTTPException(401, f"peer authentication failed: {exc}") from None

    @app.get("/healthz", tags=["health"], responses={503: {"description": "the heartbeat loop is late or hung"}})
    def healthz() -> JSONResponse:
        ok, why = arbiter.healthy()
        return JSONResponse({"status": "ok" if ok else "unhealthy", "detail": why}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(arbiter.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status", tags=["status"])
    def status() -> dict[str, Any]:
        return arbiter.status()

    @app.post("/switch", tags=["commands"], dependencies=[Depends(admin)],
              responses=error_responses(400, 401, 409, 413))
    async def switch(req: SwitchRequest, request: Request) -> dict[str, Any]:
        try:
            await arbiter.switch(req.target, force=req.force, who=_who(request))
        except SwitchRefused as exc:
            arbiter.ftlog.write("Arbiter", f"Manual switch to {req.target} refused: {exc}")
            raise HTTPException(409, str(exc)) from None
        return {"target": req.target, "active": req.target, "epoch": arbiter.cluster_epoch(),
                "status": arbiter.status()}

    @app.post("/maintenance", tags=["commands"], dependencies=[Depends(admin)],
              responses=error_responses(400, 401, 413))
    async def maintenance(req: MaintenanceRequest, request: Request) -> dict[str, Any]:
        replicated = await arbiter.set_maintenance(req.enabled, f"by {_who(request)}")
        return {"maintenance": req.enabled, "replicated": replicated}

    @app.get("/config", tags=["config"])
    def get_config() -> dict[str, Any]:
        return arbiter.config.as_json()

    @app.put("/config", tags=["config"], dependencies=[Depends(admin)],
             responses=error_responses(401, 413, 422) | {503: {"description": "not changed: the database failed"}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _PATCH}}}})
    async def put_config(request: Request) -> JSONResponse:
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
        return JSONResponse({"changed": changed, "replicated": replicated} | arbiter.config.as_json())

    @app.get("/logs", tags=["logs"], response_class=PlainTextResponse, responses={200: _LOG_CONTENT})
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

    @app.get("/history", tags=["status"], response_model=list[HistoryItem], response_model_by_alias=True,
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

    @app.get("/explain", tags=["status"], responses=error_responses(422))
    def explain(scenario: Annotated[Literal["peer-dead", "lan-lost", "vip-to"] | None, Query(
                    description="what to suppose from the next tick on")] = None,
                target: Annotated[Literal["server1", "server2"] | None, Query(
                    description="the node, for vip-to")] = None) -> dict[str, Any]:
        """What the core would decide on the next tick and why, from this node's last observation; with a
        scenario, tick by tick what would happen then. Computed by the same pure rules; changes nothing."""
        if scenario == "vip-to" and target is None:
            raise RequestValidationError([{"loc": ("query", "target"), "msg": "vip-to needs a target",
                                           "type": "value_error"}])
        seen = arbiter.last_observation
        return explain_pair(arbiter.state, seen[0] if seen else None, arbiter.cluster, scenario=scenario,
                            target=target, observed_at=iso(seen[1]) if seen else None)

    @app.get("/logs/days", tags=["logs"])
    def log_days() -> list[str]:
        return arbiter.ftlog.days()

    peer = APIRouter(prefix="/peer", tags=["peer"], dependencies=[Depends(peer_auth)],
                     responses=error_responses(400, 401, 413))

    @peer.post("/heartbeat")
    async def heartbeat(body: Heartbeat) -> dict[str, Any]:
        try:
            return await arbiter.on_heartbeat(body.model_dump())
        except ValueError as exc:  # e.g. a timestamp of the right shape but no real date
            raise RequestValidationError([{"loc": ("body",), "msg": str(exc), "type": "value_error"}]) from None

    @peer.post("/role", responses=error_responses(409))
    async def role(cmd: RoleCommand) -> dict[str, Any]:
        try:
            state = await arbiter.on_role_command(cmd.role, cmd.epoch, cmd.cause, cmd.reason)
        except StaleCommand as exc:
            raise HTTPException(409, str(exc)) from None
        return {"node_id": state.node_id, "role": state.role.value, "epoch": state.epoch}

    @peer.get("/config")
    def peer_config(digest: str = "") -> dict[str, Any]:
        if digest == arbiter.config.digest():
            return {"settings": {}, "digest": digest}
        return arbiter.config.as_json()

    app.include_router(peer)
    return app


def _refused(arbiter: Arbiter, kind: str, message: str) -> None:
    arbiter.ftlog.write("Arbiter", message)
    arbiter.metrics.auth_rejections.labels(arbiter.node.node_id, kind).inc()


def _unprocessable(errors: list[tuple[str, str]]) -> JSONResponse:
    detail = [{"loc": ["body", name], "msg": rule, "type": "value_error"} for name, rule in errors]
    message = "; ".join(f"{name}: {rule}" for name, rule in errors)
    return JSONResponse({"detail": detail, "message": message}, status_code=422)
