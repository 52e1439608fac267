"""The arbiter's peer calls (SPEC 3, ``/peer/*``): what one arbiter asks of the other, each signed with the
pair's secret (HS_PEER_SECRET, ``hotstandby.peerauth``) and refused with 401 otherwise.

- ``POST /peer/hb``: the state exchange in its compact form (protocol 2), signed in one header; in front of
  the app, ``hotpath.beat_route`` answers it through the same ``BeatEndpoint`` (``app.state.beats``)
- ``POST /peer/heartbeat``: the state exchange in its long form (protocol 1, earlier releases)
- ``POST /peer/role``: a role command (409 when it is stale)
- ``GET /peer/config``: the cluster settings, empty when the asker's digest is already ours
"""

from __future__ import annotations

from collections.abc import Callable
from email.utils import formatdate
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from hotstandby.api_models import Heartbeat, HeartbeatAnswer, PeerConfig, RoleAnswer, RoleCommand
from hotstandby.peerauth import AuthError, Verifier
from hotstandby.rules import StaleCommand
from hotstandby.web import PEER_COMPACT_SCHEME, PEER_SCHEME, error_responses, schema_ref
from services.arbiter import wire
from services.arbiter.heartbeat import Arbiter
from services.arbiter.hotpath import BeatEndpoint

_BEAT_ANSWER: dict[int | str, dict[str, Any]] = {200: {
    "description": "the answering node's word about itself (t = [t2, t3])",
    "content": {"application/json": {"schema": schema_ref("Beat")}}}}


def install_peer_api(app: FastAPI, arbiter: Arbiter, refused: Callable[[str], None]) -> None:
    """The peer calls on the arbiter's app; ``refused`` logs and counts a call whose signature fails."""
    node = arbiter.node
    verifier = Verifier(node.peer_secret, expect_node=node.peer_id)

    async def peer_auth(request: Request, _: Annotated[str | None, Security(PEER_SCHEME)]) -> None:
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            verifier.verify(request.method, path, body, request.headers)
        except AuthError as exc:
            host = request.client.host if request.client else "?"
            refused(f"peer call refused: {request.method} {request.url.path} from {host}: {exc}")
            raise HTTPException(401, f"peer authentication failed: {exc}") from None

    peer = APIRouter(prefix="/peer", tags=["peer"], dependencies=[Depends(peer_auth)],
                     responses=error_responses(400, 401, 413))

    @peer.post("/heartbeat", operation_id="peerHeartbeat", response_model=HeartbeatAnswer,
               response_model_exclude_unset=True)
    async def heartbeat(body: Heartbeat) -> dict[str, Any]:
        try:
            return await arbiter.on_heartbeat(body.model_dump())
        except ValueError as exc:  # e.g. a timestamp of the right shape but no real date
            raise RequestValidationError([{"loc": ("body",), "msg": str(exc), "type": "value_error"}]) from None

    @peer.post("/role", operation_id="peerRole", response_model=RoleAnswer, response_model_exclude_unset=True,
               responses=error_responses(409))
    async def role(cmd: RoleCommand) -> dict[str, Any]:
        try:
            state = await arbiter.on_role_command(cmd.role, cmd.epoch, cmd.cause, cmd.reason)
        except StaleCommand as exc:
            raise HTTPException(409, str(exc)) from None
        return {"node_id": state.node_id, "role": state.role.value, "epoch": state.epoch}

    @peer.get("/config", operation_id="getPeerConfig", response_model=PeerConfig, response_model_exclude_unset=True)
    def peer_config(response: Response, digest: str = "") -> dict[str, Any]:
        # The one answer with a Date header (the servers send none: bytes on every exchange); `hotstandby
        # check` reads the peer's clock from it.
        response.headers["date"] = formatdate(usegmt=True)
        if digest == arbiter.config.digest():
            return {"settings": {}, "digest": digest}
        return arbiter.config.as_json()

    app.include_router(peer)

    # The compact exchange (protocol 2): signed in one header, not by the peer router's dependency.
    # hotpath.beat_route, on the server's connections (node.py), answers it through the same BeatEndpoint.
    beats = app.state.beats = BeatEndpoint(arbiter.on_beat, verifier, refused)

    @app.post(wire.PATH, tags=["peer"], operation_id="peerBeat", response_class=Response,
              dependencies=[Security(PEER_COMPACT_SCHEME)],  # declares the scheme; BeatEndpoint checks it
              summary="The state exchange in its compact form (protocol 2); the answer has the ask's shape",
              responses=_BEAT_ANSWER | error_responses(401, 413, 422),
              openapi_extra={
                  "requestBody": {"required": True, "content": {"application/json": {"schema": schema_ref("Beat")}}}})
    async def beat(request: Request) -> Response:
        host = request.client.host if request.client else "?"
        status, body = beats.reply(await request.body(), request.headers.get("x-hs"), host)
        return Response(body, status_code=status, media_type="application/json")
