"""Keeps the CTI process in step with the node's durable role (R9: CTI only while ACTIVE).

The arbiter commits a role, then asks for convergence; the node also converges on a timer
(services/node.py) so that, when the two services run as separate processes, the CTI server still
follows the role committed in the shared database. An operator's ``/cti/stop`` holds CTI stopped
until ``/cti/start`` or the next promotion. In warm mode (``HS_CTI_MODE=warm``) a STANDBY keeps the CTI
process idle and unregistered instead of stopped; an operator's hold still stops it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from hotstandby.model import Role


class Supervisor(Protocol):
    warm: bool

    async def start(self, *, epoch: int) -> None: ...
    async def idle(self, reason: str = "") -> None: ...
    def follow_epoch(self, epoch: int) -> None: ...
    async def stop(self, reason: str = "") -> None: ...
    async def restart(self, reason: str, *, counted: bool = True) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
    def self_check(self) -> str | None: ...


class NotActive(Exception):
    """CTI may only run on the ACTIVE node."""


RoleSource = Callable[[], tuple[Role | None, int]]


class CtiService:
    def __init__(self, supervisor: Supervisor, role: RoleSource) -> None:
        self.supervisor = supervisor
        self._role = role
        self.held = False
        self._last_role: Role | None = None
        self._lock = asyncio.Lock()

    async def converge(self) -> None:
        async with self._lock:
            role, epoch = self._role()
            if role is Role.ACTIVE and self._last_role is not Role.ACTIVE:
                self.held = False  # a promotion always starts CTI, whatever an operator held before
            self._last_role = role
            desired = self.supervisor.snapshot().get("desired")
            if role is Role.ACTIVE and not self.held:
                if desired != "running":
                    await self.supervisor.start(epoch=epoch)
                else:
                    self.supervisor.follow_epoch(epoch)  # a respawn must not register at an epoch the node left
            elif self.held or not self.supervisor.warm:
                if desired != "stopped":
                    await self.supervisor.stop("held by operator" if self.held else "node is STANDBY")
            elif desired != "idle":
                await self.supervisor.idle("node is STANDBY")

    async def start(self) -> None:
        if self._role()[0] is not Role.ACTIVE:
            raise NotActive("CTI runs only on the ACTIVE node; this node is STANDBY")
        self.held = False
        await self.converge()

    async def stop(self) -> None:
        self.held = True
        await self.converge()

    async def restart(self) -> None:
        if self._role()[0] is not Role.ACTIVE:
            raise NotActive("CTI runs only on the ACTIVE node; this node is STANDBY")
        self.held = False
        await self.converge()
        async with self._lock:
            await self.supervisor.restart("manual restart")

    def self_check(self) -> str | None:
        return self.supervisor.self_check()
