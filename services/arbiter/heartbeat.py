"""The arbiter's coordinator: a loop that only waits, a tick that does one cycle, and the one object
the HTTP routes and the node talk to.

    tick():  observe the peer, the LAN, the VIP and the witness (concurrently, bounded by T)
             -> rules.plan_tick() (pure) -> Roles.carry_out(plan): commit, then each step in order

The parts, one module each (``services/arbiter/``):

    heartbeat.py      Arbiter: wiring, run() / tick() / healthy(), and the public methods below
    memory.py         Memory: NodeState and the facts around it, the lock, say() (the log's Arbiter lines)
    roles.py          Roles: carry_out(plan), the only code that changes roles (persist, then each step)
    commands.py       Commands: peer role commands, manual switch (R7), graceful stop (R10): plans too
    hearing.py        Hearing: what a tick hears from the peer (who asks, the probe as a hedge: R2)
    exchange.py       Exchange: the state exchange both ways (protocol 2, or 1), skew; pushes our changes
    selfview.py       SelfView: what this node tells its peer about itself, can_be_active, app_problem
    wire.py           the compact exchange's body (protocol 2); longform.py: the long one's (protocol 1)
    maintenance.py    Maintenance: the replicated maintenance flag (R11), the newest stamp wins
    settings_sync.py  SettingsSync: the settings' digest as the peer holds it, the pull (SPEC 5)
    lease.py          Lease: the witness's lease keeping and key (SPEC 12)
    status.py         GET /status and the gauges
    Beside them: config.py (the settings as stored), journal.py (history, hook events), probes.py (LAN, VIP),
    lbclient.py (load balancers); app.py, console.py, peer_api.py, hotpath.py (HTTP); peer.py, lane.py (client)

Every role change, automatic or commanded, is a plan made by the pure core (``hotstandby.rules``)
and carried out by ``Roles`` under one lock, so a role is always durable before CTI starts or
stops because of it, and no role change bypasses the core's invariants.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

from hotstandby import rules
from hotstandby.ftlog import FaultTolerantLog
from hotstandby.hlc import HybridClock, Timestamp
from hotstandby.metrics import ArbiterMetrics
from hotstandby.model import Cause, Decision, NodeState, Observation, Role
from hotstandby.settings import ClusterSettings, NodeSettings
from hotstandby.store import Store, StoreError, WriteCheck
from hotstandby.witness import Witness
from services.arbiter import probes
from services.arbiter.commands import Commands, SwitchRefused
from services.arbiter.config import ConfigBook
from services.arbiter.exchange import Exchange
from services.arbiter.hearing import Hearing
from services.arbiter.journal import Journal
from services.arbiter.lbclient import for_node as load_balancers
from services.arbiter.lease import Lease
from services.arbiter.maintenance import Maintenance
from services.arbiter.memory import Memory
from services.arbiter.peer import PeerClient
from services.arbiter.roles import CtiControl, Roles
from services.arbiter.selfview import SelfView
from services.arbiter.settings_sync import SettingsSync
from services.arbiter.status import status, update_gauges
from services.hooks import Hooks

log = logging.getLogger("hotstandby.arbiter")


class Arbiter:
    def __init__(self, *, node: NodeSettings, store: Store, ftlog: FaultTolerantLog, metrics: ArbiterMetrics,
                 config: ConfigBook, hlc: HybridClock, peer: PeerClient, cti: CtiControl,
                 vip: probes.VipProbe | None = None, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, rng: random.Random | None = None,
                 witness: Witness | None = None, hooks: Hooks | None = None) -> None:
        self.node, self.store, self.ftlog, self.metrics = node, store, ftlog, metrics
        self.witness = witness  # SPEC 12; None: no witness, the pair alone decides (HS_WITNESS_URL empty)
        self.config, self.hlc, self.peer, self.cti = config, hlc, peer, cti
        self.vip = vip or probes.VipProbe(node)
        self.clock = clock
        self.rng = rng or random.Random()
        rec = store.load_node()
        maint_version = (rec.maintenance_at, rec.maintenance_origin) if rec else (Timestamp(0), "")
        # A restarted node never comes back ACTIVE on the strength of its stored role (SPEC 4).
        state = rules.restart_state(node.node_id, rec.epoch if rec else 0, rec.maintenance if rec else False)
        store.save_node(node_id=node.node_id, role=state.role, epoch=state.epoch, cause=state.cause)
        journal = Journal(node.node_id, store, hooks)
        journal.restarted(rec.role if rec else "", state, wall())
        self.mem = Memory(node=node, config=config, ftlog=ftlog, metrics=metrics, state=state, clock=clock, wall=wall,
                          journal=journal)
        self.lease = Lease(self.mem, witness)
        self.lb = load_balancers(self.mem)  # HS_LB_RUNTIME_API; None: the health checks alone move the VIP
        self.roles = Roles(self.mem, store=store, cti=cti, lease=self.lease, peer=peer, lb=self.lb)
        maintenance = Maintenance(self.mem, store=store, hlc=hlc, version=maint_version)
        self.me = SelfView(self.mem, hlc=hlc, cti=cti, lease=self.lease, maintenance=maintenance)
        self.exchange = Exchange(self.mem, peer=peer, hlc=hlc, me=self.me, maintenance=maintenance,
                                 settings=SettingsSync(self.mem, peer=peer, wake=self.wake))
        self.commands = Commands(self.mem, roles=self.roles, exchange=self.exchange, me=self.me, peer=peer, cti=cti)
        self.hearing = Hearing(self.mem, exchange=self.exchange, peer=peer)
        self.started = clock()
        self.last_tick_done: float | None = None
        self.write_check = WriteCheck(store, clock=clock)
        self.channels: dict[str, dict[str, Any]] = {
            "probe": {"ok": None, "seconds": None, "detail": "not probed yet"},
            "exchange": {"ok": None, "consecutive_failures": 0},
        }
        self._wake = asyncio.Event()
        self._stopping = False
        self.on_tick: Callable[[Decision], None] | None = None  # after each completed tick (the watchdog)
        self.last_observation: tuple[Observation, float] | None = None  # what the last tick decided on, and when
        update_gauges(self.mem)

    @property
    def cluster(self) -> ClusterSettings:
        return self.config.current

    @property
    def state(self) -> NodeState:
        return self.mem.state

    @property
    def last_reason(self) -> str:
        return self.mem.last_reason

    # -- the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Wait for the next tick (or a wake-up), run it, repeat until stopped."""
        if self.lb:
            self.lb.role_changed(self.mem.state.role)  # a restarted node: whatever it left on the LB, undone
        keeper = asyncio.create_task(self.lease.keep_alive()) if self.witness is not None else None
        try:
            await self._loop()
        finally:
            if keeper is not None:
                keeper.cancel()

    async def _loop(self) -> None:
        while not self._stopping:
            start = self.clock()
            try:
                decision = await self.tick()
                if self.on_tick is not None:
                    self.on_tick(decision)
            except Exception:  # a tick must never kill the loop; /healthz shows a loop that stalls
                log.exception("tick failed")
            # Jitter only ever shortens the wait, so the R1 bound holds and the nodes drift apart.
            interval = self.cluster.heartbeat_interval_s * (1 - 0.1 * self.rng.random())
            delay = max(0.0, interval - (self.clock() - start))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # no task a wait, unlike wait_for
                    await self._wake.wait()
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
        if self.mem.store_problem:
            return False, f"cannot persist the role: {self.mem.store_problem}"
        return True, "ok"

    async def tick(self) -> Decision:
        mem, cfg = self.mem, self.cluster
        before = mem.version
        started = self.clock()
        if self.write_check.due(self.mem.store_problem is not None):
            await asyncio.to_thread(self._check_store)  # an fsync must not stall the loop and its HTTP
        if self.lb:
            self.lb.retry()  # a load balancer that missed our last role change hears it again
        # The edges at once, each bounded by T; only those configured (a task a tick for nothing adds up).
        edges: dict[str, Coroutine[Any, Any, Any]] = {"heard": self.hearing.observe(cfg)}
        if cfg.lan_probe_addresses:
            edges["lan"] = probes.lan_ok(cfg)
        if cfg.test_vip_destination:
            edges["vip"] = self.vip.where(cfg)
        if self.lease.on():
            edges["lease"] = self.lease.renew(cfg)
        done = [await edges["heard"]] if len(edges) == 1 else await asyncio.gather(*edges.values())
        seen = dict(zip(edges, done, strict=True))
        heard, lan, vip = seen["heard"], seen.get("lan"), seen.get("vip")
        self.metrics.probe_seconds.labels(self.node.node_id).observe(heard.seconds)
        if not heard.ok:
            self.metrics.probe_failures.labels(self.node.node_id).inc()
        self.channels = heard.channels  # what the exchange and the probe each did this tick
        mem.lan_ok = lan
        # R2 (services/arbiter/hearing.py): one exchange for the pair, the monitor probe as its hedge.
        obs = Observation(probe_ok=heard.ok, peer=heard.view, lan_ok=lan, vip_node=vip)
        async with mem.lock:
            if mem.version != before:
                # A command changed our role or heard from the peer while we observed: what we saw
                # may predate it (e.g. the peer's promotion after a switch), so do not act on it.
                decision = Decision(mem.state, "no action: a command changed the pair while this tick observed")
            else:
                # The renewal's age is taken now, right before deciding, not when the tick began.
                obs = obs._replace(witness=self.lease.view(), store_problem=mem.store_problem)
                self.last_observation = (obs, mem.wall())  # GET /explain decides on it again
                out = await self.roles.carry_out(rules.plan_tick(mem.state, obs, cfg))
                decision = out.applied or Decision(mem.state, out.reason)
        mem.last_reason = decision.reason
        mem.journal.after_tick(mem.state, cfg.failures_to_switch)
        self.last_tick_done = self.clock()
        self.metrics.ticked(mem.wall(), witness=self.lease.on())
        self.metrics.tick_seconds.labels(self.node.node_id).observe(self.last_tick_done - started)
        update_gauges(mem)
        if decision.switched:
            log.info(decision.reason)
        return decision

    def _check_store(self) -> None:
        mem = self.mem
        try:
            self.store.probe_writable()
            if mem.store_problem:
                mem.say("Database writable again")
            mem.store_problem = None
        except StoreError as exc:
            if mem.store_problem is None:
                mem.say(f"Database not writable: {exc}")
            mem.store_problem = str(exc)

    # -- what the routes and the node call -----------------------------------------------------
    async def shutdown(self) -> None:
        """R10: stop the loop, hand ACTIVE to a healthy peer, stop CTI."""
        self._stopping = True
        self.wake()
        await self.commands.shutdown()
        if self.lb:
            await self.lb.settle(0.5)  # the demotion's word to the load balancers, before the process goes

    async def switch(self, target: str, *, force: bool, who: str) -> NodeState:
        return await self.commands.switch(target, force=force, who=who)

    async def on_role_command(self, role: Role, epoch: int, cause: Cause, reason: str) -> NodeState:
        return await self.commands.on_role_command(role, epoch, cause, reason)

    async def on_heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.exchange.on_heartbeat(body)

    def on_beat(self, raw: bytes) -> bytes:
        return self.exchange.on_beat(raw)

    async def set_maintenance(self, enabled: bool, who: str) -> bool:
        return await self.exchange.set_maintenance(enabled, who)

    async def put_config(self, patch: dict[str, Any], who: str) -> tuple[list[str], bool]:
        return await self.exchange.put_config(patch, who)

    def status(self) -> dict[str, Any]:
        return status(self)

    def view(self) -> dict[str, Any]:
        return self.me.view()

    def app_problem(self) -> str | None:
        return self.me.app_problem()

    def cluster_epoch(self) -> int:
        return self.mem.cluster_epoch()


__all__ = ["Arbiter", "SwitchRefused"]
