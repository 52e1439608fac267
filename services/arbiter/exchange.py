"""The state exchange with the peer arbiter (both directions in one call), and what rides on it: the
clock skew, the peer's word on the maintenance flag (R11, services/arbiter/maintenance.py) and on the
settings' digest (SPEC 5, services/arbiter/settings_sync.py).

Two protocols. 2, the compact one (``POST /peer/hb``, services/arbiter/wire.py), is what this release
speaks; 1, the long JSON of ``POST /peer/heartbeat``, is what earlier releases speak, and this one still
answers it and falls back to it when a peer answers 404 to the compact ask: a pair keeps working while
its nodes are upgraded one at a time. What we say about ourselves in either is services/arbiter/selfview.py.
``exchange_full()`` is our half, the ``on_*`` methods the peer's. The peer's latest ask is kept
(``last_ask``) for the tick: the ACTIVE counts being asked as its heartbeat (services/arbiter/hearing.py).
An answer from a node whose monitor serves in the same process also vouches for that monitor (R2).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, NamedTuple

from hotstandby.hlc import HybridClock, Timestamp
from hotstandby.model import PeerView
from hotstandby.settings import ClusterSettings
from services.arbiter import longform, wire
from services.arbiter.maintenance import Maintenance
from services.arbiter.memory import Memory
from services.arbiter.peer import CallResult, PeerClient
from services.arbiter.selfview import SelfView
from services.arbiter.settings_sync import SettingsSync
from services.arbiter.status import iso

log = logging.getLogger("hotstandby.arbiter")

SKEW_LOG_S = 1.0
RETRY_COMPACT_S = 60.0  # a peer answering only protocol 1 is asked in protocol 2 again this often (upgraded?)


class Exchanged(NamedTuple):
    view: PeerView | None  # None: no valid answer
    digest: str | None  # the peer's settings digest after the exchange
    vouched: bool  # the answer also speaks for the peer's monitor (same process, application healthy)
    speaks: bool = False  # the peer's monitor serves in the peer's process: its answer says what a probe would


@dataclass(frozen=True)
class Asked:
    """An ask the peer made of us: when (monotonic), what it said about itself, and for its monitor."""

    at: float
    view: PeerView
    vouched: bool
    speaks: bool


class Exchange:
    def __init__(self, mem: Memory, *, peer: PeerClient, hlc: HybridClock, me: SelfView, maintenance: Maintenance,
                 settings: SettingsSync) -> None:
        self.mem, self.peer, self.hlc = mem, peer, hlc
        self.me = me  # what we say about ourselves
        self.maintenance, self.settings = maintenance, settings  # what the peer's word may change here
        self.skew_s: float | None = None
        self.peer_info: dict[str, Any] = {}
        self.peer_auth_problem: str | None = None
        self.protocol = wire.PROTOCOL  # what we ask the peer in: 2, or 1 for a peer of an earlier release
        self._compact_refused_at: float | None = None
        self._ask: Asked | None = None  # the peer's latest ask
        self._peer_since: float | None = None

    # -- the two halves of one exchange ---------------------------------------------------------
    async def exchange(self, cfg: ClusterSettings) -> PeerView | None:
        return (await self.exchange_full(cfg)).view

    async def exchange_full(self, cfg: ClusterSettings) -> Exchanged:
        """One exchange. Besides the peer's view it returns, from this exchange's own answer (never
        from another racing with it), the settings digest the peer holds after it (`replicated`)
        and whether the answer vouches for the peer's monitor (the second channel)."""
        if self._compact_now():
            r = await self.peer.beat(lambda: self.me.beat((self.mem.wall(),), self.skew_s), cfg.heartbeat_timeout_s)
            if r.status not in (404, 405):
                return await self._read_beat(r, cfg)
            # A peer of an earlier release: it knows only /peer/heartbeat. Ask again in its words.
            self._peer_speaks(1)
        return await self._exchange_long(cfg)

    def _peer_speaks(self, protocol: int) -> None:
        """What the peer speaks, as its last ask or answer showed: 1 (an earlier release) or 2. Protocol 1
        is asked in 2 again RETRY_COMPACT_S later, in case it has been upgraded meanwhile."""
        peer = self.mem.node.peer_id
        if protocol < wire.PROTOCOL:
            if self.protocol != protocol:
                self.mem.say(f"Server {peer} speaks exchange protocol {protocol} (an earlier release): "
                             "exchanging in it")
            self.protocol, self._compact_refused_at = protocol, self.mem.clock()
            return
        if self.protocol != wire.PROTOCOL:
            self.mem.say(f"Server {peer} speaks exchange protocol {wire.PROTOCOL} again (upgraded)")
        self.protocol, self._compact_refused_at = wire.PROTOCOL, None

    def _compact_now(self) -> bool:
        refused = self._compact_refused_at
        return self.protocol == wire.PROTOCOL or refused is None or self.mem.clock() - refused >= RETRY_COMPACT_S

    def _failed(self, r: CallResult) -> Exchanged:
        mem = self.mem
        mem.metrics.exchange_failures.labels(mem.node.node_id).inc()
        if r.status == 401:
            self._auth_problem("the peer refused our signed heartbeat (401): check that HS_PEER_SECRET "
                               "is the same on both nodes")
        return Exchanged(None, None, False)

    async def _read_beat(self, r: CallResult, cfg: ClusterSettings) -> Exchanged:
        """The peer's answer to our compact ask."""
        mem = self.mem
        t4 = mem.wall()
        if not r.ok:
            return self._failed(r)
        try:
            b = wire.decode(r.body)
            if b.node_id != mem.node.peer_id or len(b.times) != 2:
                raise wire.WireError(f"n: the peer answered as {b.node_id}" if b.node_id != mem.node.peer_id
                                     else "t: an answer carries [t2, t3]")
            self.hlc.receive(b.hlc)
            self._note_skew(((b.times[0] - r.sent.times[0]) + (b.times[1] - t4)) / 2)
            self.maintenance.merge(b.maintenance, b.maintenance_at, b.maintenance_origin)
        except ValueError as exc:
            log.warning("malformed heartbeat answer: %s", exc)
            return Exchanged(None, None, False)
        self._peer_speaks(wire.PROTOCOL)
        self.peer_auth_problem = None
        self._role_since(b.role_since)
        return await self._settle(b.view, b.digest, b.serves, b.app_ok, cfg)

    async def _exchange_long(self, cfg: ClusterSettings) -> Exchanged:
        """Protocol 1: ``POST /peer/heartbeat`` with ``view()``, for a peer of an earlier release."""
        mem = self.mem
        r = await self.peer.exchange(lambda: self.me.view() | {"t1": mem.wall()}, cfg.heartbeat_timeout_s)
        t4 = mem.wall()
        if not r.ok:
            return self._failed(r)
        try:
            body = r.body
            view = longform.view_of(body)
            if view.node_id != mem.node.peer_id:
                raise ValueError(f"peer answered as {view.node_id}")
            self.hlc.receive(Timestamp.parse(body["hlc"]))
            self._note_skew(((body["t2"] - r.sent["t1"]) + (body["t3"] - t4)) / 2)
            self.maintenance.merge_json(body["maintenance"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("malformed heartbeat answer: %s", exc)
            return Exchanged(None, None, False)
        self.peer_auth_problem = None
        self.peer_info = {"role_since": body.get("role_since"), "address": body.get("address")}
        self._peer_speaks(longform.protocol_of(body))
        return await self._settle(view, body["digest"], *longform.vouch_of(body), cfg)

    async def _settle(self, view: PeerView, digest: str, serves: bool, app_ok: bool,
                      cfg: ClusterSettings) -> Exchanged:
        # Second channel: an answered exchange from a node whose monitor serves in the same process
        # is a valid answer within T too (and, with switch_on_application_error, only if its
        # application self-check passes, exactly what mod=IPSWS would have said).
        vouched = serves and (not cfg.switch_on_application_error or app_ok)
        if self.settings.heard(digest):
            await self.settings.pull()
            digest = self.settings.peer_digest or digest  # what we pulled is what the peer holds
        return Exchanged(view, digest, vouched, serves)

    # -- the peer's asks, answered --------------------------------------------------------------
    async def on_heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The peer's half of a protocol 1 exchange: learn its clock, maintenance and settings digest."""
        mem = self.mem
        t2 = mem.wall()
        self.hlc.receive(Timestamp.parse(body["hlc"]))
        self.maintenance.merge_json(body["maintenance"])
        self.peer_info = {"role_since": body.get("role_since"), "address": body.get("address")}
        self._asked(longform.view_of(body, ask=True), *longform.vouch_of(body))
        # A node of this release says which protocol it speaks even in protocol 1 (it asks in 1 only while it
        # takes us for an earlier release); a body without "protocol" is an earlier release's.
        self._peer_speaks(longform.protocol_of(body))
        if self.settings.heard(body["digest"]):
            self.settings.pull_soon()
        return self.me.view() | {"t2": t2, "t3": mem.wall()}

    def on_beat(self, raw: bytes) -> bytes:
        """The peer's half of a compact exchange (protocol 2): ``raw`` is the ask's body, already
        authenticated; the answer's body, or WireError (the caller's 422)."""
        mem = self.mem
        t2 = mem.wall()
        b = wire.decode(raw)
        if b.node_id != mem.node.peer_id:
            raise wire.WireError(f"n: expected {mem.node.peer_id}")
        self.hlc.receive(b.hlc)
        self.maintenance.merge(b.maintenance, b.maintenance_at, b.maintenance_origin)
        self._role_since(b.role_since)
        if b.skew is not None:
            self._note_skew(-b.skew)  # the asker measured it; the same offset, seen from this side
        self._asked(b.view, b.serves, b.app_ok)
        self._peer_speaks(wire.PROTOCOL)
        if self.settings.heard(b.digest):
            self.settings.pull_soon()
        return wire.encode(self.me.beat((t2, mem.wall())))

    def _role_since(self, since: float | None) -> None:
        """The peer's role_since for status, in ISO form (formatted when it changes, not every exchange)."""
        if since != self._peer_since:
            self._peer_since = since
            self.peer_info = {"role_since": iso(since)}

    def _asked(self, view: PeerView, serves: bool, app_ok: bool) -> None:
        vouched = serves and (not self.mem.cluster.switch_on_application_error or app_ok)
        self._ask = Asked(self.mem.clock(), view, vouched, serves)
        self.peer_auth_problem = None

    def last_ask(self) -> Asked | None:
        """The peer's latest ask, or None if it never asked."""
        return self._ask

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

    # -- a change made here, pushed to the peer at once ----------------------------------------
    async def set_maintenance(self, enabled: bool, who: str) -> bool:
        """R11: set it here, durably, then push it to the peer at once; True when the peer has it."""
        self.maintenance.set_here(enabled, who)
        view = await self.exchange(self.mem.cluster)
        return view is not None and view.maintenance == self.mem.state.maintenance

    async def put_config(self, patch: dict[str, Any], who: str) -> tuple[list[str], bool]:
        """SPEC 5: change the settings here, durably, then push them; (the names changed, the peer holds them)."""
        mem = self.mem
        changed = self.settings.put(patch, who)
        # Push at once: the exchange shows the peer our digest, and it pulls as soon as it has answered. It
        # holds the change when an answer carries our digest: asked again (a bounded wait, T at most) until then.
        cfg = mem.cluster
        deadline = mem.clock() + cfg.heartbeat_timeout_s
        pushed = await self.exchange_full(cfg)
        while pushed.view is not None and pushed.digest != mem.config.digest() and mem.clock() < deadline:
            await asyncio.sleep(min(0.05, cfg.heartbeat_timeout_s / 10))
            pushed = await self.exchange_full(cfg)
        return changed, pushed.digest == mem.config.digest()

