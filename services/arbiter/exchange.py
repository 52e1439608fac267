"""The state exchange with the peer arbiter (``POST /peer/heartbeat``, both directions in one call), and
what rides on it: the clock skew, the maintenance flag (R11) and the cluster settings' digest (SPEC 5).

``view()`` is what this node tells its peer; ``exchange()`` is our half, ``on_heartbeat()`` the peer's.
An answered exchange from a node whose monitor serves in the same process also vouches for that
monitor: the second channel of R2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from hotstandby.hlc import HybridClock, Timestamp
from hotstandby.model import PeerView, Role
from hotstandby.settings import ClusterSettings
from hotstandby.store import Store, StoreError
from services.arbiter.lease import Lease
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient
from services.arbiter.roles import CtiControl
from services.arbiter.status import iso, update_gauges

log = logging.getLogger("hotstandby.arbiter")

SKEW_LOG_S = 1.0


class Exchanged(NamedTuple):
    view: PeerView | None  # None: no valid answer
    digest: str | None  # the peer's settings digest after the exchange
    vouched: bool  # the answer also speaks for the peer's monitor (same process, application healthy)


class Exchange:
    def __init__(self, mem: Memory, *, peer: PeerClient, hlc: HybridClock, store: Store, cti: CtiControl,
                 lease: Lease, wake: Callable[[], None], maint_version: tuple[Timestamp, str]) -> None:
        self.mem, self.peer, self.hlc, self.store, self.cti, self.lease = mem, peer, hlc, store, cti, lease
        self.wake = wake  # a new interval applies from the next tick, not after the old one ends
        self.maint_version = maint_version  # the maintenance flag's stamp: the newest wins
        self.skew_s: float | None = None
        self.peer_digest: str | None = None
        self.peer_info: dict[str, Any] = {}
        self.peer_auth_problem: str | None = None

    # -- what we tell the peer ------------------------------------------------------------------
    def can_be_active(self) -> bool:
        mem = self.mem
        return mem.lan_ok is not False and mem.store_problem is None and mem.cluster.enabled and self.lease.vouches()

    def view(self) -> dict[str, Any]:
        """What this node tells its peer about itself on every exchange (both directions)."""
        mem = self.mem
        s = mem.state
        at, origin = self.maint_version
        return {
            "node_id": s.node_id, "role": s.role.value, "epoch": s.epoch, "cause": s.cause.value,
            "rank": s.rank.value, "lan_ok": mem.lan_ok is not False, "can_be_active": self.can_be_active(),
            "maintenance": {"value": s.maintenance, "at": str(at), "origin": origin},
            "digest": mem.config.digest(), "hlc": str(self.hlc.now()), "role_since": iso(mem.role_since),
            "address": mem.node.local_address or mem.cluster.address_of(s.node_id),
            "vouch": self._vouch(),
        }

    def app_problem(self) -> str | None:
        """Why this node's application is unhealthy (what mod=IPSWS reports), or None."""
        if self.mem.store_problem:
            return f"cannot persist the role: {self.mem.store_problem}"
        return self.cti.vouch()[1]

    def _vouch(self) -> dict[str, Any]:
        """What this answer proves about our monitor (the peer's second channel, see exchange_full)."""
        return {"serves": self.cti.vouch()[0], "app_ok": self.app_problem() is None}

    # -- the two halves of one exchange ---------------------------------------------------------
    async def exchange(self, cfg: ClusterSettings) -> PeerView | None:
        return (await self.exchange_full(cfg)).view

    async def exchange_full(self, cfg: ClusterSettings) -> Exchanged:
        """One exchange. Besides the peer's view it returns, from this exchange's own answer (never
        from another racing with it), the settings digest the peer holds after it (`replicated`)
        and whether the answer vouches for the peer's monitor (the second channel)."""
        mem = self.mem
        r = await self.peer.exchange(lambda: self.view() | {"t1": mem.wall()}, cfg.heartbeat_timeout_s)
        t4 = mem.wall()
        if not r.ok:
            mem.metrics.exchange_failures.labels(mem.node.node_id).inc()
            if r.status == 401:
                self._auth_problem("the peer refused our signed heartbeat (401): check that HS_PEER_SECRET "
                                   "is the same on both nodes")
            return Exchanged(None, None, False)
        try:
            body = r.body
            view = PeerView(node_id=body["node_id"], role=Role(body["role"]), epoch=int(body["epoch"]),
                            lan_ok=bool(body["lan_ok"]), maintenance=bool(body["maintenance"]["value"]),
                            can_be_active=bool(body["can_be_active"]))
            if view.node_id != mem.node.peer_id:
                raise ValueError(f"peer answered as {view.node_id}")
            self.hlc.receive(Timestamp.parse(body["hlc"]))
            self._note_skew(((body["t2"] - r.sent["t1"]) + (body["t3"] - t4)) / 2)
            self.merge_maintenance(body["maintenance"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed heartbeat answer: %s", exc)
            return Exchanged(None, None, False)
        self.peer_auth_problem = None
        self.peer_info = {"role_since": body.get("role_since"), "address": body.get("address")}
        vouch = body.get("vouch") if isinstance(body.get("vouch"), dict) else {}
        # Second channel: an answered exchange from a node whose monitor serves in the same process
        # is a valid answer within T too (and, with switch_on_application_error, only if its
        # application self-check passes, exactly what mod=IPSWS would have said).
        vouched = bool(vouch.get("serves")) and (not cfg.switch_on_application_error or bool(vouch.get("app_ok")))
        digest = self.peer_digest = body["digest"]
        if digest != mem.config.digest():
            await self.pull_config()
            digest = self.peer_digest  # what we pulled is what the peer holds
        return Exchanged(view, digest, vouched)

    async def on_heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The peer's half of the exchange: learn its clock, maintenance and settings digest."""
        t2 = self.mem.wall()
        self.hlc.receive(Timestamp.parse(body["hlc"]))
        self.merge_maintenance(body["maintenance"])
        self.peer_info = {"role_since": body.get("role_since"), "address": body.get("address")}
        self.peer_digest = body["digest"]
        if body["digest"] != self.mem.config.digest():
            await self.pull_config()
        return self.view() | {"t2": t2, "t3": self.mem.wall()}

    def _note_skew(self, skew: float) -> None:
        crossed = (abs(skew) > SKEW_LOG_S) != (self.skew_s is not None and abs(self.skew_s) > SKEW_LOG_S)
        self.skew_s = skew
        self.mem.metrics.skew.labels(self.mem.node.node_id).set(skew)
        if crossed:
            state = "exceeds" if abs(skew) > SKEW_LOG_S else "back within"
            self.mem.say(f"Clock skew with {self.mem.node.peer_id} {state} {SKEW_LOG_S:g} s: {skew:+.3f} s")

    def _auth_problem(self, text: str) -> None:
        if self.peer_auth_problem != text:
            self.mem.say(f"Authentication problem: {text}")
        self.peer_auth_problem = text

    # -- maintenance (R11): a replicated flag, the newest stamp wins ------------------------------
    def merge_maintenance(self, remote: dict[str, Any]) -> bool:
        version = (Timestamp.parse(remote["at"]), str(remote["origin"]))
        if version <= self.maint_version:
            return False
        self.hlc.receive(version[0])
        self._set_maintenance(bool(remote["value"]), version, f"replicated from {version[1]}")
        return True

    def _set_maintenance(self, enabled: bool, version: tuple[Timestamp, str], source: str) -> None:
        mem = self.mem
        self.store.save_maintenance(node_id=mem.node.node_id, enabled=enabled, at=version[0], origin=version[1])
        self.maint_version = version
        changed = enabled != mem.state.maintenance
        mem.state = mem.state.evolve(maintenance=enabled)
        if changed:
            line = f"Maintenance {'ON: automatic switching paused' if enabled else 'OFF'} ({source})"
            mem.say(line)
            mem.journal.event("maintenance_on" if enabled else "maintenance_off", mem.state, line)
        update_gauges(mem)

    async def set_maintenance(self, enabled: bool, who: str) -> bool:
        """Set it here, durably, then push it to the peer at once; True when the peer has it."""
        self._set_maintenance(enabled, (self.hlc.now(), self.mem.node.node_id), who)
        view = await self.exchange(self.mem.cluster)
        return view is not None and view.maintenance == self.mem.state.maintenance

    # -- the cluster settings (SPEC 5): pulled when the digests differ, pushed at once --------------
    async def pull_config(self) -> list[str]:
        mem = self.mem
        r = await self.peer.config(mem.config.digest(), mem.cluster.heartbeat_timeout_s)
        if not r.ok or not isinstance(r.body, dict):
            return []
        try:
            changed = mem.config.merge_remote(r.body.get("settings", {}))
        except (StoreError, KeyError, TypeError, ValueError) as exc:
            log.warning("config pull failed: %s", exc)
            return []
        self.peer_digest = r.body.get("digest")
        if changed:
            self._settings_changed(changed, f"replicated from {mem.node.peer_id}")
        return changed

    async def put_config(self, patch: dict[str, Any], who: str) -> tuple[list[str], bool]:
        mem = self.mem
        changed = mem.config.put(patch, origin=mem.node.node_id)
        if changed:
            self._settings_changed(changed, who)
        # Push at once: the peer pulls in its half of the exchange and answers with its new digest.
        pushed = await self.exchange_full(mem.cluster)
        return changed, pushed.digest == mem.config.digest()

    def _settings_changed(self, names: list[str], source: str) -> None:
        mem = self.mem
        values = ", ".join(f"{n}={mem.config.table[n].value!r}" for n in names)
        mem.say(f"Configuration changed: {values} ({source})")
        if mem.config.repaired:
            mem.say(f"Configuration conflict: {mem.config.repaired}")
        mem.metrics.config_changes.labels(mem.node.node_id, "local" if "API" in source else "peer").inc()
        update_gauges(mem)
        self.wake()
