"""The CTI manager simulator (SPEC section 10): the outside witness of "only one node runs CTI".

It stands in for the telephony CTI manager. CTI simulators register, keep alive and unregister;
it accepts everything and only records, so tests and benchmarks can count split brain from
outside the pair. The accounting itself lives in `accounting.py`; this module is the HTTP skin.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from services.ctisim.accounting import DEFAULT_LAPSE_S, OverlapAccounting, Registration


class RegisterBody(BaseModel):
    node_id: str = Field(min_length=1)
    epoch: int
    ports: int = Field(default=0, ge=0)
    devices: int = Field(default=0, ge=0)


class KeepaliveBody(BaseModel):
    node_id: str = Field(min_length=1)
    epoch: int | None = None


class UnregisterBody(BaseModel):
    node_id: str = Field(min_length=1)
    # Optional so a bare {node_id} works; when given, an old process cannot remove a newer epoch.
    epoch: int | None = None


def _holder_json(reg: Registration, now: float) -> dict[str, Any]:
    return {
        "node_id": reg.node_id,
        "epoch": reg.epoch,
        "since": reg.since_wall,
        "ports": reg.ports,
        "devices": reg.devices,
        "expires_in_s": max(0.0, reg.end - now),
    }


def state_json(acc: OverlapAccounting) -> dict[str, Any]:
    """The `GET /state` document (advances the accounting first, like every request)."""
    holders = acc.holders()
    now = acc.clock()
    c = acc.counters
    return {
        "holders": [_holder_json(r, now) for r in holders],
        "overlapping": acc.overlapping,
        "registrations_total": c.registrations_total,
        "keepalives_total": c.keepalives_total,
        "unregistrations_total": c.unregistrations_total,
        "lapses_total": c.lapses_total,
        "overlaps_total": c.overlaps_total,
        "overlap_seconds_total": c.overlap_seconds_total,
        "overlap_longest_seconds": acc.overlap_longest_seconds,
        "stale_epoch_total": c.stale_epoch_total,
        "max_epoch": acc.max_epoch,
        "lapse_s": acc.lapse_s,
        "wall": acc.wall(),
    }


def create_app(
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    *,
    lapse_s: float = DEFAULT_LAPSE_S,
) -> FastAPI:
    """Build a manager with its own state, so tests can run several and inject the clocks.

    Handlers are `async` on purpose: they all run on the event loop thread, so the accounting
    is never touched concurrently and needs no lock.
    """
    acc = OverlapAccounting(clock=clock, wall=wall, lapse_s=lapse_s)
    app = FastAPI(title="hotstandby CTI manager simulator", version="1")
    app.state.accounting = acc

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/register")
    async def register(body: RegisterBody) -> dict[str, Any]:
        result = acc.register(body.node_id, body.epoch, body.ports, body.devices)
        return {
            "ok": True,
            "node_id": body.node_id,
            "epoch": body.epoch,
            "stale_epoch": result.stale,
            "replaced": result.replaced,
            "holders": result.holders,
            "lapse_s": acc.lapse_s,
        }

    @app.post("/keepalive")
    async def keepalive(body: KeepaliveBody) -> dict[str, Any]:
        if not acc.keepalive(body.node_id, body.epoch):
            # 404 tells the CTI simulator to register again (its link "dropped").
            raise HTTPException(status_code=404, detail=f"{body.node_id} holds no live registration")
        return {"ok": True}

    @app.post("/unregister")
    async def unregister(body: UnregisterBody) -> dict[str, Any]:
        return {"ok": True, "removed": acc.unregister(body.node_id, body.epoch)}

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return state_json(acc)

    @app.get("/events")
    async def events(after: int = 0) -> dict[str, Any]:
        """The journal after sequence number ``after``: each registration, unregistration and lapse with
        its node, epoch, wall time and (registrations) whether the epoch was stale."""
        return {"events": acc.events(after), "wall": acc.wall()}

    @app.post("/reset")
    async def reset(holders: bool = False) -> dict[str, Any]:
        """Zero the counters; `?holders=true` also forgets the live registrations."""
        acc.reset(drop_holders=holders)
        return state_json(acc)

    return app


def parse_bind(bind: str) -> tuple[str, int]:
    """Split "HOST:PORT" (IPv6 as "[::1]:PORT"); ValueError with a readable message otherwise."""
    host, sep, port_s = bind.rpartition(":")
    if not sep or not host or not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"--bind must be HOST:PORT with a port in 1..65535, got {bind!r}")
    return host.strip("[]"), int(port_s)


async def serve(host: str, port: int) -> None:
    """Serve a fresh manager until uvicorn is told to stop (SIGINT/SIGTERM)."""
    config = uvicorn.Config(create_app(), host=host, port=port, log_level="warning", lifespan="off")
    await uvicorn.Server(config).serve()


def manager_main(bind: str) -> int:
    """Entry point for `hotstandby cti-manager --bind HOST:PORT`: 0 on a signalled stop, 2 on bad input."""
    try:
        host, port = parse_bind(bind)
    except ValueError as exc:
        print(f"cti-manager: {exc}", file=sys.stderr)
        return 2
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully, then re-raises the signal it captured; turning SIGTERM
        # into the same exception as SIGINT makes a supervised stop exit 0 instead of -15.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(host, port))
    return 0


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
