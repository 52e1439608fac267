"""The arbiter's runtime: a loop that only waits, a tick that does one cycle, and the commands.

    tick():  observe the peer, the LAN and the VIP (concurrently, bounded by T)
             -> rules.decide() (pure) -> commit role and epoch -> apply the actions in order

Manual switches, peer role commands and the graceful stop go through the same commit-then-apply
path under one lock, so a role is always durable before CTI starts or stops because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from hotstandby import rules
from hotstandby.ftlog import FaultTolerantLog
from hotstandby.hlc import HybridClock, Timestamp
from hotstandby.metrics import ArbiterMetrics
from hotstandby.model import Action, Cause, Decision, NodeState, Observation, PeerView, Role, WitnessView, rank_of
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.store import Store, StoreError
from hotstandby.witness import NOT_CONTACTED, Witness, WitnessReport, lease_ttl_request
from services.arbiter import probes
from services.arbiter.config import ConfigBook
from services.arbiter.peer import CallResult, PeerClient

log = logging.getLogger("hotstandby.arbiter")

CTI_CONNECT_S = 0.5  # the vendor's typical CTI manager connect time, part of the expected delay
SKEW_LOG_S = 1.0
PROMOTE_ANSWER_S = 1.0  # the least a "take ACTIVE" command waits for its answer (see _command_peer)


class CtiControl(Protocol):
    async def converge(self) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...
    def vouch(self) -> tuple[bool, str | None]:
        """(the monitor serves from this process, its application problem or None)."""
        ...


class Exchanged(NamedTuple):
    view: PeerView | None  # None: no valid answer
    digest: str | None  # the peer's settings digest after the exchange
    vouched: bool  # the answer also speaks for the peer's monitor (same process, application healthy)


class SwitchRefused(Exception):
    """A manual switch that cannot be done safely: the text is the 409's reason."""


def status_words(role: Role | None) -> str:
    return {Role.ACTIVE: "Active (Primary)", Role.STANDBY: "Standby (Backup)"}.get(role, "Unknown")  # type: ignore[arg-type]


def _why(d: Decision) -> str:
    """The cause part of a switch sentence, to pass on to the peer (it adds its own rule words)."""
    return re.sub(r"^SWITCH THIS SERVER TO \w+, R\d+ ", "", d.reason)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


class Arbiter:
    def __init__(self, *, node: NodeSettings, store: Store, ftlog: FaultTolerantLog, metrics: ArbiterMetrics,
                 config: ConfigBook, hlc: HybridClock, peer: PeerClient, cti: CtiControl,
                 vip: probes.VipProbe | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, rng: random.Random | None = None,
                 witness: Witness | None = None) -> None:
        self.node, self.store, self.ftlog, self.metrics = node, store, ftlog, metrics
        self.witness = witness  # SPEC 12; None: no witness, the pair alone decides (HS_WITNESS_URL empty)
        self.config, self.hlc, self.peer, self.cti = config, hlc, peer, cti
        self.vip = vip or probes.VipProbe(node)
        self.clock, self.wall = clock, wall
        self.rng = rng or random.Random()
        rec = store.load_node()
        self.maint_version = (rec.maintenance_at, rec.maintenance_origin) if rec else (Timestamp(0), "")
        # A restarted node never comes back ACTIVE on the strength of its stored role (SPEC 4).
        self.state = rules.restart_state(node.node_id, rec.epoch if rec else 0, rec.maintenance if rec else False)
        store.save_node(node_id=node.node_id, role=Role.STANDBY, epoch=self.state.epoch, cause=Cause.START)
        self.role_since = wall()
        self.lock = asyncio.Lock()
        self.version = 0  # bumped by every commit and peer confirmation: a tick's observations expire
        self.started = clock()
        self.last_tick_done: float | None = None
        self.last_reason = "starting: STANDBY until the first tick decides"
        self.applied: Decision | None = None  # the last decision _commit_and_apply carried out (after the witness)
        self.lan_ok: bool | None = None
        self.skew_s: float | None = None
        self.peer_digest: str | None = None
        self.peer_info: dict[str, Any] = {}
        self.peer_auth_problem: str | None = None
        self.store_problem: str | None = None
        self.channels: dict[str, dict[str, Any]] = {
            "probe": {"ok": None, "seconds": None, "detail": "not probed yet"},
            "exchange": {"ok": None, "consecutive_failures": 0},
        }
        self._wake = asyncio.Event()
        self._stopping = False
        self._update_gauges()

    # -- the loop ----------------------------------------------------------------------------
    @property
    def cluster(self) -> ClusterSettings:
        return self.config.current

    async def run(self) -> None:
        """Wait for the next tick (or a wake-up), run it, repeat until stopped."""
        while not self._stopping:
            start = self.clock()
            try:
                await self.tick()
            except Exception:  # a tick must never kill the loop; /healthz shows a loop that stalls
                log.exception("tick failed")
            # Jitter only ever shortens the wait, so the R1 bound holds and the nodes drift apart.
            interval = self.cluster.heartbeat_interval_s * (1 - 0.1 * self.rng.random())
            delay = max(0.0, interval - (self.clock() - start))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def healthy(self) -> tuple[bool, str]:
        """/healthz: the loop has completed a tick within 3·I (a hung loop must be visible)."""
        limit = 3 * self.cluster.heartbeat_interval_s
        last = self.last_tick_done if self.last_tick_done is not None else self.started
        age = self.clock() - last
        if age > limit:
            return False, f"no heartbeat tick completed for {age:.1f} s (limit 3·I = {limit:g} s)"
        if self.store_problem:
            return False, f"cannot persist the role: {self.store_problem}"
        return True, "ok"

    async def tick(self) -> Decision:
        cfg = self.cluster
        before = self.version
        started = self.clock()
        await asyncio.to_thread(self._check_store)  # an fsync must not stall the loop and its HTTP
        probe, exchanged, lan, vip, _ = await asyncio.gather(
            self.peer.probe(), self._exchange_full(cfg), probes.lan_ok(cfg), self.vip.where(cfg),
            self._renew_witness(cfg),
        )
        view = exchanged.view
        self.metrics.probe_seconds.labels(self.node.node_id).observe(probe.seconds)
        if not probe.ok:
            self.metrics.probe_failures.labels(self.node.node_id).inc()
        # Two independent channels, both reported: the monitor probe decides (R2), the exchange informs.
        self.channels = {
            "probe": {"ok": probe.ok, "seconds": round(probe.seconds, 4), "detail": probe.detail},
            "exchange": {"ok": view is not None,
                         "consecutive_failures": 0 if view else self.channels["exchange"]["consecutive_failures"] + 1},
        }
        self.lan_ok = lan
        # R2: the peer failed this tick only when neither channel brought a valid answer within T.
        obs = Observation(probe_ok=probe.ok or exchanged.vouched, peer=view, lan_ok=lan, vip_node=vip)
        async with self.lock:
            if self.version != before:
                # A command changed our role or heard from the peer while we observed: what we saw
                # may predate it (e.g. the peer's promotion after a switch), so do not act on it.
                decision = Decision(self.state, "no action: a command changed the pair while this tick observed")
            else:
                # The renewal's age is taken now, right before deciding, not when the tick began.
                obs = replace(obs, witness=self._witness_view())
                decision = rules.decide(self.state, obs, cfg)
                if self.store_problem and decision.state.role is Role.ACTIVE:
                    decision = self._cannot_persist(decision)
                for line in decision.log:
                    self.ftlog.write("Arbiter", line)
                # A refused promotion keeps what this tick observed (the failure counts go on).
                await self._commit_and_apply(decision, kept=rules.observe(self.state, obs)[0])
                decision = self.applied or decision
                await self._tend_key()
        self.last_reason = decision.reason
        self.last_tick_done = self.clock()
        self.metrics.tick_seconds.labels(self.node.node_id).observe(self.last_tick_done - started)
        self._update_gauges()
        if decision.switched:
            log.info(decision.reason)
        return decision

    def _cannot_persist(self, d: Decision) -> Decision:
        """An ACTIVE node that cannot write its database hands over (or stays off a promotion)."""
        s = d.state
        if self.state.role is Role.STANDBY:
            return Decision(self.state.evolve(peer_failures=s.peer_failures, peer_successes=s.peer_successes,
                                              lan_failures=s.lan_failures, probed=True, peer=s.peer),
                            f"no action: cannot take ACTIVE, the database is not writable ({self.store_problem})")
        healthy_peer = s.peer_failures == 0 and s.peer is not None and s.peer.can_be_active
        return rules.demote(s, rule="R5", cause=Cause.LAN_LOST, handover=healthy_peer,
                            why=f"cannot persist the role ({self.store_problem}); handing over")

    def _check_store(self) -> None:
        try:
            self.store.probe_writable()
            if self.store_problem:
                self.ftlog.write("Arbiter", "Database writable again")
            self.store_problem = None
        except StoreError as exc:
            if self.store_problem is None:
                self.ftlog.write("Arbiter", f"Database not writable: {exc}")
            self.store_problem = str(exc)

    # -- commit, then apply ------------------------------------------------------------------
    async def _commit_and_apply(self, d: Decision, *, promote_timeout: float | None = None,
                                kept: NodeState | None = None) -> CallResult | None:
        d = self.applied = await self._take_key(d, kept or self.state)
        old, new = self.state, d.state
        durable = (new.role, new.epoch, new.cause) != (old.role, old.epoch, old.cause)
        if durable:
            try:
                self.store.save_node(node_id=self.node.node_id, role=new.role, epoch=new.epoch, cause=new.cause)
            except StoreError as exc:
                self.store_problem = str(exc)
                if new.role is Role.ACTIVE and old.role is not Role.ACTIVE:
                    self.ftlog.write("Arbiter", f"Not taking ACTIVE: the role cannot be persisted ({exc})")
                    self.state = old
                    return None
                # Stepping down is safe unpersisted: a restarted node is STANDBY whatever it stored.
                self.ftlog.write("Arbiter", f"Role change not persisted ({exc}); stepping down anyway")
        self.state = new
        if durable:
            self.version += 1
        if new.role is not old.role:
            self.role_since = self.wall()
            self.metrics.role_changes.labels(self.node.node_id, new.role.value, new.cause.value).inc()
        if d.switched or (new.role is not old.role):
            self.ftlog.write("Arbiter", d.reason)
        self._update_gauges()
        result = None
        for action in d.actions:
            if action in (Action.START_CTI, Action.STOP_CTI):
                await self.cti.converge()
                if action is Action.STOP_CTI and new.role is Role.STANDBY:
                    await self._release_key()  # our CTI is down: the peer may take the key (handover)
            elif action is Action.DEMOTE_PEER:
                await self._command_peer(Role.STANDBY, new.epoch, new.cause, _why(d))
            elif action is Action.PROMOTE_PEER:
                result = await self._command_peer(Role.ACTIVE, new.epoch + 1, new.cause, _why(d),
                                                  timeout=promote_timeout)
        return result

    async def _command_peer(self, role: Role, epoch: int, cause: Cause, reason: str,
                            timeout: float | None = None) -> CallResult:
        cfg = self.cluster
        if timeout is None:
            # Asking the peer to take ACTIVE waits at least PROMOTE_ANSWER_S: a loaded peer that persists
            # and answers in 0.15 s at T = 0.1 s has taken ACTIVE, and reading that as "no" (then taking
            # ACTIVE back) would leave both ACTIVE until R4. Telling it to stand down stays bounded by T:
            # a promotion must not wait on a peer that may be gone.
            timeout = max(cfg.heartbeat_timeout_s, PROMOTE_ANSWER_S) if role is Role.ACTIVE else cfg.heartbeat_timeout_s
        r = await self.peer.role({"role": role.value, "epoch": epoch, "cause": cause.value, "reason": reason},
                                 timeout)
        peer = self.node.peer_id
        if r.ok:
            self._peer_confirmed(r.body)
            self.ftlog.write("Arbiter", f"Server {peer} confirmed {role.value} (epoch {epoch})")
        elif r.answered:
            self.ftlog.write("Arbiter", f"Server {peer} refused {role.value}: {r.detail}")
        else:
            self.ftlog.write("Arbiter", f"Server {peer} not reached to make it {role.value}: {r.detail}")
        return r

    def _peer_confirmed(self, body: Any) -> None:
        """A role command's answer is the freshest word on the peer's role: status shows it at once."""
        with contextlib.suppress(KeyError, TypeError, ValueError):
            role, epoch = Role(body["role"]), int(body["epoch"])
            old = self.state.peer or PeerView(node_id=self.node.peer_id, role=role, epoch=epoch)
            self.state = self.state.evolve(peer=replace(old, role=role, epoch=epoch))
            self.version += 1

    # -- the witness (SPEC 12) -----------------------------------------------------------------
    def _witness_on(self) -> bool:
        return self.witness is not None and self.cluster.enabled

    async def _renew_witness(self, cfg: ClusterSettings) -> WitnessReport | None:
        """Keep our lease alive every tick and read the key; log and count when the witness is lost or found."""
        if self.witness is None or not cfg.enabled:
            return None
        was = self.witness.last()
        report = await self.witness.renew(lease_ttl_request(cfg.failures_to_switch, cfg.heartbeat_interval_s),
                                          cfg.heartbeat_timeout_s)
        self._witness_transition(was, report)
        return report

    def _witness_transition(self, was: WitnessReport, now: WitnessReport) -> None:
        first = was.detail == NOT_CONTACTED
        if now.reachable and (first or not was.reachable):
            line = (f"Witness found: {self.witness.url if self.witness else ''}, lease TTL {now.lease_ttl_s:g} s, "
                    f"key held by {now.holder or 'nobody'}")
            self.ftlog.write("Arbiter", line)
            log.info(line)
        elif not now.reachable and (first or was.reachable):
            line = f"Witness lost: {now.detail}"
            self.ftlog.write("Arbiter", line)
            log.warning(line)
        self.metrics.witness_up.labels(self.node.node_id).set(1 if now.reachable else 0)

    def _witness_view(self) -> WitnessView | None:
        if not self._witness_on():
            return None
        assert self.witness is not None
        r = self.witness.last()
        age = None if r.renewed_at is None else max(0.0, self.clock() - r.renewed_at)
        return WitnessView(reachable=r.reachable, renewal_age_s=age, lease_ttl_s=r.lease_ttl_s, holder=r.holder,
                           holds=r.holds)

    async def _take_key(self, d: Decision, kept: NodeState) -> Decision:
        """Every promotion, whatever its path (tick, peer command, switch), first takes the key in one
        transaction; the epoch becomes the revision it was taken at. No key, no promotion."""
        if not self._witness_on() or d.state.role is not Role.ACTIVE or self.state.role is Role.ACTIVE:
            return d
        assert self.witness is not None
        taken = await self.witness.take(d.state.epoch, self.cluster.heartbeat_timeout_s)
        if taken.ok:
            self.ftlog.write("Arbiter", f"Witness key {taken.detail}, epoch {taken.epoch}")
            return rules.with_witness_epoch(d, taken.epoch)
        refused = rules.witness_refused(kept, d, taken.detail)
        if self.last_reason != refused.reason:  # once per streak, not once a tick
            self.ftlog.write("Arbiter", refused.reason)
        log.warning(refused.reason)
        return refused

    async def _release_key(self) -> None:
        if self._witness_on():
            assert self.witness is not None
            # Bounded by 1 s as well: R10's handover must finish within 2 s whatever T is.
            if not await self.witness.release(min(self.cluster.heartbeat_timeout_s, 1.0)):
                self.ftlog.write("Arbiter", "Witness key not released (unreachable): the peer waits for our lease "
                                            "to expire")

    async def _tend_key(self) -> None:
        """After a tick's decision: an ACTIVE whose key vanished (its lease lapsed during an outage it rode
        out on the failsafe) takes it back; a STANDBY never holds it (a release that failed, a previous life)."""
        if not self._witness_on():
            return
        assert self.witness is not None
        r, s = self.witness.last(), self.state
        if not r.reachable:
            return
        if s.role is Role.ACTIVE and r.holder is None:
            taken = await self.witness.reassert(s.epoch, self.cluster.heartbeat_timeout_s)
            self.ftlog.write("Arbiter", f"Witness key re-taken while ACTIVE (epoch {s.epoch})" if taken.ok
                             else f"Witness key not re-taken: {taken.detail}")
        elif s.role is Role.STANDBY and r.holder == s.node_id:
            await self._release_key()

    def cluster_epoch(self) -> int:
        return max(self.state.epoch, self.state.peer.epoch if self.state.peer else 0)

    # -- the state exchange ------------------------------------------------------------------
    def can_be_active(self) -> bool:
        # Before the first renewal the witness is not known to be down: saying so would let the peer's R6
        # take ACTIVE from a primary that is merely starting (a take that fails is refused safely anyway).
        last = self.witness.last() if self.witness is not None else None
        witness_ok = not self._witness_on() or (last is not None and (last.reachable or last.detail == NOT_CONTACTED))
        return self.lan_ok is not False and self.store_problem is None and self.cluster.enabled and witness_ok

    def view(self) -> dict[str, Any]:
        """What this node tells its peer about itself on every exchange (both directions)."""
        s = self.state
        at, origin = self.maint_version
        return {
            "node_id": s.node_id, "role": s.role.value, "epoch": s.epoch, "cause": s.cause.value,
            "rank": s.rank.value, "lan_ok": self.lan_ok is not False, "can_be_active": self.can_be_active(),
            "maintenance": {"value": s.maintenance, "at": str(at), "origin": origin},
            "digest": self.config.digest(), "hlc": str(self.hlc.now()), "role_since": _iso(self.role_since),
            "address": self.node.local_address or self.cluster.address_of(s.node_id),
            "vouch": self._vouch(),
        }

    def app_problem(self) -> str | None:
        """Why this node's application is unhealthy (what mod=IPSWS reports), or None."""
        if self.store_problem:
            return f"cannot persist the role: {self.store_problem}"
        return self.cti.vouch()[1]

    def _vouch(self) -> dict[str, Any]:
        """What this answer proves about our monitor (the peer's second channel, see _exchange)."""
        return {"serves": self.cti.vouch()[0], "app_ok": self.app_problem() is None}

    async def _exchange(self, cfg: ClusterSettings) -> PeerView | None:
        return (await self._exchange_full(cfg)).view

    async def _exchange_full(self, cfg: ClusterSettings) -> Exchanged:
        """One exchange. Besides the peer's view it returns, from this exchange's own answer (never
        from another racing with it), the settings digest the peer holds after it (`replicated`)
        and whether the answer vouches for the peer's monitor (the second channel)."""
        r = await self.peer.exchange(lambda: self.view() | {"t1": self.wall()}, cfg.heartbeat_timeout_s)
        t4 = self.wall()
        if not r.ok:
            self.metrics.exchange_failures.labels(self.node.node_id).inc()
            if r.status == 401:
                self._auth_problem("the peer refused our signed heartbeat (401): check that HS_PEER_SECRET "
                                   "is the same on both nodes")
            return Exchanged(None, None, False)
        try:
            body = r.body
            view = PeerView(node_id=body["node_id"], role=Role(body["role"]), epoch=int(body["epoch"]),
                            lan_ok=bool(body["lan_ok"]), maintenance=bool(body["maintenance"]["value"]),
                            can_be_active=bool(body["can_be_active"]))
            if view.node_id != self.node.peer_id:
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
        if digest != self.config.digest():
            await self.pull_config()
            digest = self.peer_digest  # what we pulled is what the peer holds
        return Exchanged(view, digest, vouched)

    async def on_heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """The peer's half of the exchange: learn its clock, maintenance and settings digest."""
        t2 = self.wall()
        self.hlc.receive(Timestamp.parse(body["hlc"]))
        self.merge_maintenance(body["maintenance"])
        self.peer_info = {"role_since": body.get("role_since"), "address": body.get("address")}
        self.peer_digest = body["digest"]
        if body["digest"] != self.config.digest():
            await self.pull_config()
        return self.view() | {"t2": t2, "t3": self.wall()}

    def _note_skew(self, skew: float) -> None:
        crossed = (abs(skew) > SKEW_LOG_S) != (self.skew_s is not None and abs(self.skew_s) > SKEW_LOG_S)
        self.skew_s = skew
        self.metrics.skew.labels(self.node.node_id).set(skew)
        if crossed:
            state = "exceeds" if abs(skew) > SKEW_LOG_S else "back within"
            self.ftlog.write("Arbiter", f"Clock skew with {self.node.peer_id} {state} {SKEW_LOG_S:g} s: {skew:+.3f} s")

    def _auth_problem(self, text: str) -> None:
        if self.peer_auth_problem != text:
            self.ftlog.write("Arbiter", f"Authentication problem: {text}")
        self.peer_auth_problem = text

    # -- maintenance (R11) -------------------------------------------------------------------
    def merge_maintenance(self, remote: dict[str, Any]) -> bool:
        version = (Timestamp.parse(remote["at"]), str(remote["origin"]))
        if version <= self.maint_version:
            return False
        self.hlc.receive(version[0])
        self._set_maintenance(bool(remote["value"]), version, f"replicated from {version[1]}")
        return True

    def _set_maintenance(self, enabled: bool, version: tuple[Timestamp, str], source: str) -> None:
        self.store.save_maintenance(node_id=self.node.node_id, enabled=enabled, at=version[0], origin=version[1])
        self.maint_version = version
        changed = enabled != self.state.maintenance
        self.state = self.state.evolve(maintenance=enabled)
        if changed:
            self.ftlog.write("Arbiter", f"Maintenance {'ON: automatic switching paused' if enabled else 'OFF'} "
                                        f"({source})")
        self._update_gauges()

    async def set_maintenance(self, enabled: bool, who: str) -> bool:
        """Set it here, durably, then push it to the peer at once; True when the peer has it."""
        self._set_maintenance(enabled, (self.hlc.now(), self.node.node_id), who)
        view = await self._exchange(self.cluster)
        return view is not None and view.maintenance == self.state.maintenance

    # -- configuration -----------------------------------------------------------------------
    async def pull_config(self) -> list[str]:
        r = await self.peer.config(self.config.digest(), self.cluster.heartbeat_timeout_s)
        if not r.ok or not isinstance(r.body, dict):
            return []
        try:
            changed = self.config.merge_remote(r.body.get("settings", {}))
        except (StoreError, KeyError, TypeError, ValueError) as exc:
            log.warning("config pull failed: %s", exc)
            return []
        self.peer_digest = r.body.get("digest")
        if changed:
            self._settings_changed(changed, f"replicated from {self.node.peer_id}")
        return changed

    async def put_config(self, patch: dict[str, Any], who: str) -> tuple[list[str], bool]:
        changed = self.config.put(patch, origin=self.node.node_id)
        if changed:
            self._settings_changed(changed, who)
        # Push at once: the peer pulls in its half of the exchange and answers with its new digest.
        pushed = await self._exchange_full(self.cluster)
        return changed, pushed.digest == self.config.digest()

    def _settings_changed(self, names: list[str], source: str) -> None:
        values = ", ".join(f"{n}={self.config.table[n].value!r}" for n in names)
        self.ftlog.write("Arbiter", f"Configuration changed: {values} ({source})")
        if self.config.repaired:
            self.ftlog.write("Arbiter", f"Configuration conflict: {self.config.repaired}")
        self.metrics.config_changes.labels(self.node.node_id, "local" if "API" in source else "peer").inc()
        self._update_gauges()
        self.wake()  # a new interval applies from the next tick, not after the old one ends

    # -- commands ----------------------------------------------------------------------------
    async def on_role_command(self, role: Role, epoch: int, cause: Cause, reason: str) -> NodeState:
        async with self.lock:
            d = rules.on_role_command(self.state, role, epoch, cause=cause, why=f"{reason} (asked by "
                                      f"{self.node.peer_id})", can_be_active=self.can_be_active())
            await self._commit_and_apply(d)
            if role is Role.ACTIVE and self.state.role is not Role.ACTIVE:
                applied = self.applied
                raise rules.StaleCommand(applied.reason if applied and applied.reason.startswith("no action")
                                         else "the role could not be persisted")
            return self.state

    async def switch(self, target: str, *, force: bool, who: str) -> NodeState:
        """R7: move ACTIVE to ``target``; the old ACTIVE's CTI stops before the target's starts."""
        me, peer = self.node.node_id, self.node.peer_id
        async with self.lock:
            self.ftlog.write("Arbiter", f"Manual switch to {target} requested by {who}{' (force)' if force else ''}")
            if target == me:
                return await self._switch_to_me(force, who)
            return await self._switch_to_peer(peer, who)

    async def _switch_to_me(self, force: bool, who: str) -> NodeState:
        s, peer = self.state, self.node.peer_id
        if s.role is Role.ACTIVE:
            return s
        if not self.can_be_active():
            raise SwitchRefused(f"{s.node_id} cannot be ACTIVE: "
                                f"{self.store_problem or 'its LAN check fails or hot standby is disabled'}")
        known = max(s.epoch, s.peer.epoch if s.peer else 0)
        why = f"manual switch requested by {who}"
        r = await self._command_peer(Role.STANDBY, known + 1, Cause.MANUAL, why)
        if not r.ok:
            if r.answered and r.status != 401:
                raise SwitchRefused(f"{peer} refused to step down: {r.detail}")
            if not force:
                raise SwitchRefused(f"the current ACTIVE {peer} is unreachable ({r.detail}); "
                                    "use force to take ACTIVE anyway")
            why += f", forced while {peer} is unreachable"
        d = rules.promote(self.state, rule="R7", cause=Cause.MANUAL, why=why, demote_peer=False, epoch=known + 1)
        await self._commit_and_apply(d)
        if self.state.role is not Role.ACTIVE:
            applied = self.applied
            raise SwitchRefused(f"cannot take ACTIVE: {self.store_problem or (applied.reason if applied else '')}")
        return self.state

    async def _switch_to_peer(self, peer: str, who: str) -> NodeState:
        probe = await self.peer.probe()
        view = await self._exchange(self.cluster)
        if not probe.ok or view is None:
            raise SwitchRefused(f"target {peer} is unreachable or unhealthy ({probe.detail})")
        if not view.can_be_active:
            raise SwitchRefused(f"target {peer} cannot be ACTIVE (its LAN check fails or it cannot persist)")
        if view.role is Role.ACTIVE and self.state.role is Role.STANDBY:
            return self.state
        why = f"manual switch to {peer} requested by {who}"
        if self.state.role is Role.ACTIVE:
            d = rules.demote(self.state, rule="R7", cause=Cause.MANUAL, why=why, handover=True)
            r = await self._commit_and_apply(d)
            if r is not None and r.ok:
                return self.state
            back = rules.promote(self.state, rule="R7", cause=Cause.MANUAL, demote_peer=True,
                                 why=f"switch to {peer} failed ({r.detail if r else 'no answer'}); taking ACTIVE back")
            await self._commit_and_apply(back)
            raise SwitchRefused(f"target {peer} did not take ACTIVE: {r.detail if r else 'no answer'}")
        r = await self._command_peer(Role.ACTIVE, max(self.state.epoch, view.epoch) + 1, Cause.MANUAL, why)
        if not r.ok:
            raise SwitchRefused(f"target {peer} did not take ACTIVE: {r.detail}")
        return self.state

    async def shutdown(self) -> None:
        """R10: hand ACTIVE to a healthy peer, stop CTI, and stop the loop."""
        self._stopping = True
        self.wake()
        try:
            await asyncio.wait_for(self.lock.acquire(), 1.0)
        except TimeoutError:
            log.warning("shutdown: a command holds the lock; stopping without waiting for it")
            await self.cti.converge()
            return
        try:
            s, cfg = self.state, self.cluster
            healthy_peer = s.probed and s.peer_failures == 0 and s.peer is not None and s.peer.can_be_active
            if cfg.enabled and s.role is Role.ACTIVE:
                d = rules.demote(s, rule="R10", cause=Cause.SHUTDOWN, handover=healthy_peer,
                                 why=f"graceful stop{f': handing ACTIVE to {s.peer_id}' if healthy_peer else ''}")
                # Capped at 1.5 s: R10 wants the peer ACTIVE within 2 s whatever T is.
                answer_s = min(max(cfg.heartbeat_timeout_s, PROMOTE_ANSWER_S), 1.5)
                await self._commit_and_apply(d, promote_timeout=answer_s)
            await self.cti.converge()
        finally:
            self.lock.release()

    # -- status ------------------------------------------------------------------------------
    def expected_delay(self) -> float:
        return rules.expected_failover_delay(self.cluster, connect_s=CTI_CONNECT_S,
                                             ports=self.node.cti_ports, devices=self.node.cti_devices)

    def _update_gauges(self) -> None:
        m, n, s = self.metrics, self.node.node_id, self.state
        m.role.labels(n).set(1 if s.role is Role.ACTIVE else 0)
        m.epoch.labels(n).set(s.epoch)
        m.consecutive_failures.labels(n).set(s.peer_failures)
        m.lan_ok.labels(n).set(0 if self.lan_ok is False else 1)
        m.maintenance.labels(n).set(1 if s.maintenance else 0)
        m.expected_delay.labels(n).set(self.expected_delay())

    def peer_status(self) -> str:
        s = self.state
        if not s.probed:
            return "Unknown"
        if s.peer_failures >= self.cluster.failures_to_switch:
            return "Error"
        return status_words(s.peer.role if s.peer else None)

    def status(self) -> dict[str, Any]:
        s, cfg = self.state, self.cluster
        peer_id = s.peer_id
        return {
            "local": {
                "node_id": s.node_id, "address": self.node.local_address or cfg.address_of(s.node_id),
                "rank": s.rank.value, "role": s.role.value, "status": status_words(s.role), "epoch": s.epoch,
                "role_since": _iso(self.role_since), "cause": s.cause.value,
                "consecutive_failures": s.peer_failures, "consecutive_successes": s.peer_successes,
                "lan_ok": self.lan_ok is not False, "lan_check": "off" if self.lan_ok is None else "on",
                "cti": self.cti.snapshot(), "maintenance": s.maintenance, "last_decision": self.last_reason,
                "channels": self.channels,
                "healthy": self.healthy()[0], "problem": self.store_problem or self.peer_auth_problem,
            },
            "peer": {
                "node_id": peer_id, "address": cfg.address_of(peer_id), "rank": rank_of(peer_id).value,
                "role": s.peer.role.value if s.peer else None, "status": self.peer_status(),
                "epoch": s.peer.epoch if s.peer else None, "role_since": self.peer_info.get("role_since"),
                "reachable": s.probed and s.peer_failures == 0,
                "auth_problem": self.peer_auth_problem,
            },
            "settings": cfg.model_dump(),
            "expected_failover_delay_s": round(self.expected_delay(), 3),
            "clock_skew_s": None if self.skew_s is None else round(self.skew_s, 4),
            "config_digest": self.config.digest(),
            "config_replicated": self.peer_digest == self.config.digest(),
            "witness": self._witness_status(),
        }

    def _witness_status(self) -> dict[str, Any] | None:
        if self.witness is None:
            return None
        r, view = self.witness.last(), self._witness_view()
        return {"url": self.witness.url, "reachable": r.reachable, "holder": r.holder, "lease_ttl_s": r.lease_ttl_s,
                "holds": r.holds, "renewal_age_s": None if view is None or view.renewal_age_s is None
                else round(view.renewal_age_s, 3), "detail": r.detail}
