"""The arbiter's HTTP API (SPEC section 3): open reads, admin commands, signed peer calls."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from hotstandby.hlc import Timestamp
from hotstandby.model import Cause, Role
from hotstandby.peerauth import AuthError, Verifier
from hotstandby.rules import StaleCommand
from hotstandby.settings import ClusterSettings, SettingsError
from hotstandby.store import StoreError
from hotstandby.web import BodyLimit, admin_guard, console_html, error_responses, install_error_handlers
from services.arbiter import wire
from services.arbiter.heartbeat import Arbiter, SwitchRefused
from services.arbiter.hotpath import BeatEndpoint


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


_BEAT_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "description": "the answering node's word about itself (t = [t2, t3])",
    "content": {"application/json": {"schema": wire.SCHEMA}}}}


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

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def console() -> HTMLResponse:
        return HTMLResponse(console_html())

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

    # The compact exchange (protocol 2): signed in one header, not by the peer router's dependency.
    # hotpath.HotBeats, in front of this app (node.py), answers it through the same BeatEndpoint.
    beats = app.state.beats = BeatEndpoint(arbiter.on_beat, verifier, lambda msg: _refused(arbiter, "peer", msg))

    @app.post(wire.PATH, tags=["peer"], response_class=Response,
              summary="The state exchange in its compact form (protocol 2); the answer has the ask's shape",
              responses=_BEAT_ANSWER | error_responses(401, 413, 422),
              openapi_extra={
                  "requestBody": {"required": True, "content": {"application/json": {"schema": wire.SCHEMA}}},
                  "parameters": [{"name": "x-hs", "in": "header", "required": True, "schema": {"type": "string"},
                                  "description": "<node> <timestamp> <nonce> <HMAC-SHA256 of the request, "
                                                 "128 bits, base64url> (hotstandby.peerauth.sign_compact)"}]})
    async def beat(request: Request) -> Response:
        host = request.client.host if request.client else "?"
        status, body = await beats.reply(await request.body(), request.headers.get("x-hs"), host)
        return Response(body, status_code=status, media_type="application/json")

    return app


def _refused(arbiter: Arbiter, kind: str, message: str) -> None:
    arbiter.ftlog.write("Arbiter", message)
    arbiter.metrics.auth_rejections.labels(arbiter.node.node_id, kind).inc()


def _unprocessable(errors: list[tuple[str, str]]) -> JSONResponse:
    detail = [{"loc": ["body", name], "msg": rule, "type": "value_error"} for name, rule in errors]
    message = "; ".join(f"{name}: {rule}" for name, rule in errors)
    return JSONResponse({"detail": detail, "message": message}, status_code=422)
