"""What this node tells its peer about itself on every exchange, ask or answer, in either protocol.

Its role and epoch, whether it can be ACTIVE (LAN, database, settings, witness), the maintenance flag
with its stamp, the settings digest, its hybrid clock, and what the answer vouches for its monitor
(R2's second channel): protocol 1 as the long JSON of ``POST /peer/heartbeat`` (``view()``), protocol 2
as a ``wire.Beat`` (``beat()``). The peer reads it as a ``PeerView``.
"""

from __future__ import annotations

from typing import Any

from hotstandby.hlc import HybridClock
from services.arbiter import wire
from services.arbiter.lease import Lease
from services.arbiter.maintenance import Maintenance
from services.arbiter.memory import Memory
from services.arbiter.roles import CtiControl
from services.arbiter.status import iso


class SelfView:
    def __init__(self, mem: Memory, *, hlc: HybridClock, cti: CtiControl, lease: Lease,
                 maintenance: Maintenance) -> None:
        self.mem, self.hlc, self.cti, self.lease, self.maintenance = mem, hlc, cti, lease, maintenance

    def can_be_active(self) -> bool:
        mem = self.mem
        return mem.lan_ok is not False and mem.store_problem is None and mem.cluster.enabled and self.lease.vouches()

    def app_problem(self) -> str | None:
        """Why this node's application is unhealthy (what mod=IPSWS reports), or None."""
        if self.mem.store_problem:
            return f"cannot persist the role: {self.mem.store_problem}"
        return self.cti.vouch()[1]

    def view(self) -> dict[str, Any]:
        """What this node tells its peer about itself on every exchange (both directions), protocol 1."""
        mem = self.mem
        s = mem.state
        at, origin = self.maintenance.version
        return {
            "node_id": s.node_id, "role": s.role.value, "epoch": s.epoch, "cause": s.cause.value,
            "rank": s.rank.value, "lan_ok": mem.lan_ok is not False, "can_be_active": self.can_be_active(),
            "maintenance": {"value": s.maintenance, "at": str(at), "origin": origin},
            "digest": mem.config.digest(), "hlc": str(self.hlc.now()), "role_since": iso(mem.role_since),
            "address": mem.node.local_address or mem.cluster.address_of(s.node_id),
            "vouch": self._vouch(), "protocol": wire.PROTOCOL,  # earlier releases ignore it
        }

    def beat(self, times: tuple[float, ...], skew: float | None = None) -> wire.Beat:
        """``view()`` in the compact protocol's terms (services/arbiter/wire.py)."""
        mem = self.mem
        s = mem.state
        at, origin = self.maintenance.version
        serves = self.cti.vouch()[0]
        return wire.Beat(node_id=s.node_id, role=s.role, epoch=s.epoch, can_be_active=self.can_be_active(),
                         lan_ok=mem.lan_ok is not False, serves=serves, app_ok=self.app_problem() is None,
                         maintenance=s.maintenance, maintenance_at=at, maintenance_origin=origin,
                         digest=mem.config.digest(), hlc=self.hlc.now(), role_since=mem.role_since, times=times,
                         skew=skew)

    def _vouch(self) -> dict[str, Any]:
        """What this answer proves about our monitor (the peer's second channel, see Exchange.exchange_full)."""
        return {"serves": self.cti.vouch()[0], "app_ok": self.app_problem() is None}
