"""The witness's lease keeping (SPEC 12): renew every tick, take the key before a promotion, release it
after a demotion (when and why is the plan's business: ``hotstandby.carry``).

``Lease`` wraps a ``hotstandby.witness.Witness`` (the etcd client) for the arbiter; with no witness
configured (``HS_WITNESS_URL`` empty) or hot standby disabled, every method is a no-op and ``view()``
is None, so the core decides exactly as without a witness.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotstandby.model import WitnessView
from hotstandby.settings import ClusterSettings
from hotstandby.witness import NOT_CONTACTED, Taken, Witness, WitnessReport, lease_ttl_request
from services.arbiter.memory import Memory

log = logging.getLogger("hotstandby.arbiter")


class Lease:
    def __init__(self, mem: Memory, witness: Witness | None) -> None:
        self.mem, self.witness = mem, witness
        self.last_sent: float | None = None  # when the last renewal was sent (by a tick or keep_alive)
        self._renewing = asyncio.Lock()

    def on(self) -> bool:
        return self.witness is not None and self.mem.cluster.enabled

    async def renew(self, cfg: ClusterSettings) -> WitnessReport | None:
        """Keep our lease alive every tick and read the key; log and count when the witness is lost or found."""
        if self.witness is None or not cfg.enabled:
            return None
        if self._renewing.locked():
            # One at a time, and never waited for: the renewal in flight (keep_alive's, or the tick's) reports
            # for both. A tick that queued behind it took 2·T with the witness cut, its decision as late, and an
            # ACTIVE cut from its peer and etcd stepped down (R12) at 3 s instead of L − I (lab, L = 2, I = 0.5).
            return None
        async with self._renewing:
            self.last_sent = self.mem.clock()
            was = self.witness.last()
            report = await self.witness.renew(lease_ttl_request(cfg.failures_to_switch, cfg.heartbeat_interval_s),
                                              cfg.heartbeat_timeout_s)
        self._transition(was, report)
        return report

    async def keep_alive(self) -> None:
        """Renew between ticks too, whenever none was sent for I: a tick held up by a plan that waits on the
        peer (a failover's DEMOTE waits up to T) or by a command must not let the lease of an ACTIVE lapse.
        (Found by the simulator: N = 2 and T close to I let the new ACTIVE's lease expire right after R1.)"""
        while True:
            cfg = self.mem.cluster
            now = self.mem.clock()
            due = (self.last_sent if self.last_sent is not None else now) + cfg.heartbeat_interval_s
            if due > now:
                await asyncio.sleep(due - now)
            elif self._renewing.locked():  # the tick's renewal is in flight, and late: look again shortly
                await asyncio.sleep(cfg.heartbeat_interval_s / 10)
            elif self.on():
                await self.renew(cfg)
            else:
                await asyncio.sleep(cfg.heartbeat_interval_s)

    def _transition(self, was: WitnessReport, now: WitnessReport) -> None:
        first = was.detail == NOT_CONTACTED
        if now.reachable and (first or not was.reachable):
            line = (f"Witness found: {self.witness.url if self.witness else ''}, lease TTL {now.lease_ttl_s:g} s, "
                    f"key held by {now.holder or 'nobody'}")
            self.mem.say(line)
            self.mem.journal.event("witness_found", self.mem.state, line)
            log.info(line)
        elif not now.reachable and (first or was.reachable):
            line = f"Witness lost: {now.detail}"
            self.mem.say(line)
            self.mem.journal.event("witness_lost", self.mem.state, line)
            log.warning(line)
        self.mem.metrics.witness_up.labels(self.mem.node.node_id).set(1 if now.reachable else 0)

    def view(self) -> WitnessView | None:
        """What the core reads: the renewal's age is taken now, right before deciding."""
        if not self.on():
            return None
        assert self.witness is not None
        r = self.witness.last()
        age = None if r.renewed_at is None else max(0.0, self.mem.clock() - r.renewed_at)
        return WitnessView(reachable=r.reachable, renewal_age_s=age, lease_ttl_s=r.lease_ttl_s, holder=r.holder,
                           holds=r.holds)

    def vouches(self) -> bool:
        """Not known to be down: before the first renewal the witness is not known to be down, and saying
        so would let the peer's R6 take ACTIVE from a primary that is merely starting (a take that fails is
        refused safely anyway)."""
        if not self.on():
            return True
        assert self.witness is not None
        last = self.witness.last()
        return last.reachable or last.detail == NOT_CONTACTED

    async def take(self, epoch: int) -> Taken | None:
        """Take the key for a promotion (None: no witness, nothing to take)."""
        if not self.on():
            return None
        assert self.witness is not None
        return await self.witness.take(epoch, self.mem.cluster.heartbeat_timeout_s)

    async def reassert(self, epoch: int) -> Taken:
        assert self.witness is not None
        return await self.witness.reassert(epoch, self.mem.cluster.heartbeat_timeout_s)

    async def release(self) -> bool:
        """Delete the key if it names us; False when the witness did not answer (True without one)."""
        if not self.on():
            return True
        assert self.witness is not None
        # Bounded by 1 s as well: R10's handover must finish within 2 s whatever T is.
        return await self.witness.release(min(self.mem.cluster.heartbeat_timeout_s, 1.0))

    def status(self) -> dict[str, Any] | None:
        """``GET /status``'s ``witness``: null without one."""
        if self.witness is None:
            return None
        r, view = self.witness.last(), self.view()
        return {"url": self.witness.url, "reachable": r.reachable, "holder": r.holder, "lease_ttl_s": r.lease_ttl_s,
                "holds": r.holds, "renewal_age_s": None if view is None or view.renewal_age_s is None
                else round(view.renewal_age_s, 3), "detail": r.detail}
