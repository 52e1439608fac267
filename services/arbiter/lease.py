"""The witness's lease keeping (SPEC 12): renew every tick, take the key before a promotion, release it
after a demotion, and tend it after each tick's decision.

``Lease`` wraps a ``hotstandby.witness.Witness`` (the etcd client) for the arbiter; with no witness
configured (``HS_WITNESS_URL`` empty) or hot standby disabled, every method is a no-op and ``view()``
is None, so the core decides exactly as without a witness.
"""

from __future__ import annotations

import logging
from typing import Any

from hotstandby import rules
from hotstandby.model import Decision, NodeState, Role, WitnessView
from hotstandby.settings import ClusterSettings
from hotstandby.witness import NOT_CONTACTED, Witness, WitnessReport, lease_ttl_request
from services.arbiter.memory import Memory

log = logging.getLogger("hotstandby.arbiter")


class Lease:
    def __init__(self, mem: Memory, witness: Witness | None) -> None:
        self.mem, self.witness = mem, witness

    def on(self) -> bool:
        return self.witness is not None and self.mem.cluster.enabled

    async def renew(self, cfg: ClusterSettings) -> WitnessReport | None:
        """Keep our lease alive every tick and read the key; log and count when the witness is lost or found."""
        if self.witness is None or not cfg.enabled:
            return None
        was = self.witness.last()
        report = await self.witness.renew(lease_ttl_request(cfg.failures_to_switch, cfg.heartbeat_interval_s),
                                          cfg.heartbeat_timeout_s)
        self._transition(was, report)
        return report

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

    async def take(self, d: Decision, kept: NodeState) -> Decision:
        """Every promotion, whatever its path (tick, peer command, switch), first takes the key in one
        transaction; the epoch becomes the revision it was taken at. No key, no promotion."""
        if not self.on() or d.state.role is not Role.ACTIVE or self.mem.state.role is Role.ACTIVE:
            return d
        assert self.witness is not None
        taken = await self.witness.take(d.state.epoch, self.mem.cluster.heartbeat_timeout_s)
        if taken.ok:
            self.mem.say(f"Witness key {taken.detail}, epoch {taken.epoch}")
            return rules.with_witness_epoch(d, taken.epoch)
        refused = rules.witness_refused(kept, d, taken.detail)
        if self.mem.last_reason != refused.reason:  # once per streak, not once a tick
            self.mem.say(refused.reason)
        log.warning(refused.reason)
        return refused

    async def release(self) -> None:
        if self.on():
            assert self.witness is not None
            # Bounded by 1 s as well: R10's handover must finish within 2 s whatever T is.
            if not await self.witness.release(min(self.mem.cluster.heartbeat_timeout_s, 1.0)):
                self.mem.say("Witness key not released (unreachable): the peer waits for our lease to expire")

    async def tend(self) -> None:
        """After a tick's decision: an ACTIVE whose key vanished (its lease lapsed during an outage it rode
        out on the failsafe) takes it back; a STANDBY never holds it (a release that failed, a previous life)."""
        if not self.on():
            return
        assert self.witness is not None
        r, s = self.witness.last(), self.mem.state
        if not r.reachable:
            return
        if s.role is Role.ACTIVE and r.holder is None:
            taken = await self.witness.reassert(s.epoch, self.mem.cluster.heartbeat_timeout_s)
            self.mem.say(f"Witness key re-taken while ACTIVE (epoch {s.epoch})" if taken.ok
                         else f"Witness key not re-taken: {taken.detail}")
        elif s.role is Role.STANDBY and r.holder == s.node_id:
            await self.release()

    def status(self) -> dict[str, Any] | None:
        """``GET /status``'s ``witness``: null without one."""
        if self.witness is None:
            return None
        r, view = self.witness.last(), self.view()
        return {"url": self.witness.url, "reachable": r.reachable, "holder": r.holder, "lease_ttl_s": r.lease_ttl_s,
                "holds": r.holds, "renewal_age_s": None if view is None or view.renewal_age_s is None
                else round(view.renewal_age_s, 3), "detail": r.detail}
