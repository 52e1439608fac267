"""The simulated pair: two arbiters running the real decision core over a simulated link, LAN and CTI.

A discrete-event simulation in simulated seconds: one priority queue, one ``random.Random``, no
threads, no sockets, no clock. It models the arbiter the way the real one uses the core:

* every I seconds (±2 % jitter, the nodes not in lockstep) a node probes its peer's monitor and
  exchanges state with the peer arbiter, concurrently and bounded by T, checks its LAN probes and
  (with test_vip_destination) asks the VIP where it routes; then ``decide`` (injectable: a broken
  rule must be caught), commit, and the actions in order: DEMOTE_PEER waits for the peer's answer
  (or T) before START_CTI; PROMOTE_PEER hands ACTIVE over with epoch + 1;
* each message crosses a per-direction link with loss, delay (beyond T when slow) and partitions,
  so requests and role commands reorder; a frozen node queues what reaches it and handles it on thaw;
* the CTI process is separate from the node process: it survives a freeze (SIGSTOP of the node),
  dies with a crash (its registration then lapses 0.5 s later, as SPEC 10 says), and the watchdog
  respawns it within I on an ACTIVE node;
* the operator switches (R7, with and without force), toggles maintenance (replicated, newest HLC
  stamp wins), and stops the ACTIVE node gracefully (R10).

Invariants are checked as the run goes (``invariants.py``); this module only keeps the world.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Any

from hotstandby.model import Action, Cause, Decision, NodeState, Observation, PeerView, Role
from hotstandby.rules import (
    InvariantError,
    StaleCommand,
    decide,
    demote,
    on_role_command,
    promote,
    restart_state,
)
from hotstandby.settings import ClusterSettings
from hotstandby.sim import invariants as inv
from hotstandby.sim.scenario import Fault, Scenario, cti_startup_s

DecideFn = Callable[[NodeState, Observation, ClusterSettings], Decision]

NODE_IDS = ("server1", "server2")
LAPSE_S = 0.5  # SPEC 10: a registration lapses 0.5 s after its last keepalive
CTI_STOPPED, CTI_STARTING, CTI_RUNNING = 0, 1, 2

# Event codes. Node-bound events carry the node's incarnation and vanish when it crashed since.
(TICK, HANDLE, DECIDE, CMD, REPLY, RESUME, CTI_UP, CTI_RESPAWN, CTI_LAPSE, MAINT, FAULT_ON,
 FAULT_OFF, BOOT, DEADLINE, LIVENESS, FINAL_MAINT) = range(16)
_INC_BOUND = frozenset((TICK, DECIDE, REPLY, RESUME, CTI_RESPAWN))
# Handled by the node process, so held while it is frozen (the CTI process is not frozen with it).
_FREEZABLE = frozenset((TICK, HANDLE, DECIDE, CMD, REPLY, RESUME, CTI_RESPAWN, MAINT))

# Ops a node applies in order after a commit; a "cmd" with wait suspends until the answer or T.
OP_STOP, OP_START, OP_CMD, OP_SELF_PROMOTE, OP_EXIT = range(5)

Maint = tuple[bool, tuple[int, int], int]  # value, HLC stamp, origin node index


class Tick:
    """One tick in flight: what was sent, and what came back before its deadline."""

    __slots__ = ("deadline", "lan_ok", "peer_maint", "probe_ok", "start", "view", "vip")

    def __init__(self, start: float, deadline: float, lan_ok: bool | None, vip: str | None) -> None:
        self.start = start
        self.deadline = deadline
        self.lan_ok = lan_ok
        self.vip = vip
        self.probe_ok = False
        self.view: PeerView | None = None
        self.peer_maint: Maint | None = None


class Node:
    """One server: the arbiter's state and durable store, the process, its CTI child."""

    __slots__ = (
        "alive", "busy", "cti", "cti_epoch", "cti_inc", "decide_due", "deferred", "fails", "frozen", "hlc",
        "id", "idx", "inc", "kept", "lan_down", "last_reply_ok", "maint", "offset", "ops", "state",
        "stored_epoch", "tick", "tick_due", "vip_count", "vip_node", "wait",
    )

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.id = NODE_IDS[idx]
        self.state = restart_state(self.id, 0, False)
        self.alive = True
        self.frozen = False
        self.inc = 0  # incarnation: bumped on crash and boot
        self.deferred: list[tuple[int, int, int, Any]] = []
        self.stored_epoch = 0  # the durable epoch (SQLite)
        self.kept = True
        self.maint: Maint = (False, (0, 0), idx)
        self.hlc = (0, 0)
        self.offset = 0.0  # wall clock minus simulated time (skew, steps back)
        self.lan_down = 0
        self.cti = CTI_STOPPED
        self.cti_inc = 0
        self.cti_epoch = 0
        self.tick: Tick | None = None
        self.busy = False
        self.ops: deque[tuple[Any, ...]] = deque()
        self.wait = 0
        self.last_reply_ok = False
        self.decide_due: Tick | None = None
        self.tick_due = False
        self.fails = 0  # consecutive failed probes, counted by the simulator itself (not the core)
        self.vip_node: str | None = None
        self.vip_count = 0


class World:
    """The whole simulated pair and its surroundings; ``run()`` plays one scenario to its horizon."""

    def __init__(self, scenario: Scenario, decide_fn: DecideFn = decide, trace: bool = False) -> None:
        self.sc = scenario
        self.cfg = cfg = scenario.settings
        self.decide_fn = decide_fn
        self.n = cfg.failures_to_switch
        self.i = cfg.heartbeat_interval_s
        self.t = cfg.heartbeat_timeout_s
        self.startup = cti_startup_s()
        self.rng = random.Random(scenario.run_seed)
        self.nodes = (Node(0), Node(1))
        self.q: list[tuple[float, int, int, int, int, Any]] = []
        self.seq = 0
        self.now = 0.0
        self.token = 0
        self.loss = [0.0, 0.0]  # per direction, from node i to the other
        self.slow = [False, False]
        self.link_faults: list[Fault] = []
        self.vip_pref = scenario.vip_pref
        self.trace = trace
        self.events: list[tuple[float, int, int]] = []
        self.story: list[str] = []  # with ``trace``: what happened, one line an event, for replays
        self.trace_hash = 0
        self.ticks = 0
        self.checks = inv.Checks(self)
        # CTI manager (SPEC 10): who holds a live registration, and the overlap measure.
        self.regs: list[int | None] = [None, None]
        self.reg_epoch = [0, 0]
        self.max_epoch_seen = -1
        self.stale_epochs = 0
        self.overlap_start: float | None = None
        self.overlap_seconds = 0.0
        self.overlaps = 0
        self.cti_restarts = 0

    # -- scheduler -------------------------------------------------------------------------------

    def push(self, at: float, code: int, idx: int = 0, inc: int = 0, payload: Any = None) -> None:
        self.seq += 1
        heapq.heappush(self.q, (at, self.seq, code, idx, inc, payload))

    def run(self) -> World:
        sc = self.sc
        for k, f in enumerate(sc.faults):
            self.push(f.start, FAULT_ON, k)
            if f.duration:
                self.push(f.end, FAULT_OFF, k)
        self.push(sc.quiet_from, FINAL_MAINT)
        self.push(sc.quiet_from + self.checks.settle, LIVENESS)
        for node in self.nodes:  # both start together (R6), not in lockstep
            self.push(self.rng.uniform(0.0, self.i), TICK, node.idx, node.inc)
        handlers = self._handlers()
        q = self.q
        horizon = sc.horizon
        checks = self.checks
        pop = heapq.heappop
        while q and q[0][0] <= horizon:
            at, _, code, idx, inc, payload = pop(q)
            self.now = at
            self.trace_hash = hash((self.trace_hash, code, idx, at))
            if self.trace:
                self.events.append((at, code, idx))
            if code in _INC_BOUND or code in _FREEZABLE:
                node = self.nodes[idx]
                if code in _INC_BOUND and (inc != node.inc or not node.alive):
                    continue
                if node.frozen and code in _FREEZABLE:
                    if code == HANDLE:  # the requester times out meanwhile
                        tk, src, src_inc = payload[0], payload[1], payload[2]
                        self.push(max(at, tk.deadline), DECIDE, src, src_inc, tk)
                    node.deferred.append((code, idx, inc, payload))
                    continue
            handlers[code](idx, payload)
            checks.after_step()
        self.now = horizon
        checks.finish()
        return self

    def _handlers(self) -> list[Callable[[int, Any], None]]:
        return [self._on_tick, self._on_handle, self._on_decide, self._on_cmd, self._on_reply,
                self._on_resume, self._on_cti_up, self._on_cti_respawn, self._on_cti_lapse, self._on_maint,
                self._on_fault_on, self._on_fault_off, self._on_boot, self.checks.on_deadline,
                self.checks.on_liveness, self._on_final_maint]

    # -- the link --------------------------------------------------------------------------------

    def delay(self, src: int) -> float | None:
        """One message from node ``src`` to its peer: its one-way delay, or None when it is lost."""
        loss = self.loss[src]
        if loss and (loss >= 1.0 or self.rng.random() < loss):
            return None
        if self.slow[src]:
            return self.t * self.rng.uniform(0.3, 1.6)  # up to and beyond T
        return self.t * 0.02 * self.rng.random() + 1e-4

    def _relink(self) -> None:
        loss, slow = [0.0, 0.0], [False, False]
        for f in self.link_faults:
            dirs = (0, 1) if f.both else (f.node,)
            for d in dirs:
                if f.kind in ("partition", "oneway"):
                    loss[d] = 1.0
                elif f.kind == "loss":
                    loss[d] = max(loss[d], f.value)
                else:
                    slow[d] = True
        self.loss, self.slow = loss, slow

    def lan_ok(self, node: Node) -> bool:
        return node.lan_down == 0

    def serves(self, node: Node) -> bool:
        return node.alive and not node.frozen

    def _vip_seen(self, node: Node) -> str | None:
        """Where /whoami through the VIP lands: the preferred node while it serves, else the other."""
        if self.vip_pref is None or not self.lan_ok(node):
            return None
        pref = self.nodes[self.vip_pref]
        if self.serves(pref) and self.lan_ok(pref):
            return pref.id
        alt = self.nodes[1 - self.vip_pref]
        return alt.id if self.serves(alt) and self.lan_ok(alt) else None

    # -- one tick --------------------------------------------------------------------------------

    def _on_tick(self, idx: int, _: Any) -> None:
        node = self.nodes[idx]
        self.push(self.now + self.i * self.rng.uniform(0.98, 1.02), TICK, idx, node.inc)
        if node.busy or node.tick is not None:
            node.tick_due = True  # the loop is sequential: this tick starts when the last one is done
            return
        self._start_tick(node)

    def _start_tick(self, node: Node) -> None:
        now = self.now
        lan = self.lan_ok(node) if self.sc.lan_checked else None
        vip = self._vip_seen(node) if self.cfg.test_vip_destination else None
        tk = Tick(now, now + self.t, lan, vip)
        node.tick = tk
        d1 = self.delay(node.idx)
        exchange_through = d1 is not None and (self.loss[node.idx] == 0 or self.rng.random() >= self.loss[node.idx])
        if d1 is None or d1 >= self.t:
            self.push(tk.deadline, DECIDE, node.idx, node.inc, tk)
            if d1 is not None:  # late, but the peer still handles it (replication side effects)
                self.push(now + d1, HANDLE, 1 - node.idx, 0, (tk, node.idx, node.inc, exchange_through, node.maint))
            return
        self.push(now + d1, HANDLE, 1 - node.idx, 0, (tk, node.idx, node.inc, exchange_through, node.maint))

    def _on_handle(self, idx: int, payload: Any) -> None:
        """The peer (``idx``) answers a probe and a state exchange sent at ``tk.start``."""
        tk, src, src_inc, exchange, maint = payload
        peer = self.nodes[idx]
        now = self.now
        if not peer.alive:  # connection refused: the requester knows at once (if the RST gets back)
            back = self.delay(idx)
            at = tk.deadline if back is None else min(tk.deadline, now + back)
            self.push(max(at, now), DECIDE, src, src_inc, tk)
            return
        if exchange:
            self._merge_maint(peer, maint)
        if now >= tk.deadline:
            return
        back_probe = self.delay(idx)
        back_exchange = self.delay(idx) if exchange else None
        answered = now
        complete = True
        if back_probe is not None and now + back_probe <= tk.deadline:
            tk.probe_ok = True
            answered = now + back_probe
        else:
            complete = False
        if back_exchange is not None and now + back_exchange <= tk.deadline:
            s = peer.state
            ok = self.lan_ok(peer)
            tk.view = PeerView(peer.id, s.role, s.epoch, ok, s.maintenance, ok)
            tk.peer_maint = peer.maint
            answered = max(answered, now + back_exchange)
        else:
            complete = False
        self.push(answered if complete else tk.deadline, DECIDE, src, src_inc, tk)

    def _on_decide(self, idx: int, tk: Tick) -> None:
        node = self.nodes[idx]
        if node.tick is not tk:
            return  # already decided (early answer) or superseded
        if node.busy:
            node.decide_due = tk  # an operator request holds the node; decide when it is done
            return
        node.tick = None
        if tk.peer_maint is not None:
            self._merge_maint(node, tk.peer_maint)
        node.fails = 0 if tk.probe_ok else node.fails + 1
        if tk.vip is None:
            node.vip_node, node.vip_count = None, 0
        else:
            node.vip_count = node.vip_count + 1 if tk.vip == node.vip_node else 1
            node.vip_node = tk.vip
        obs = Observation(tk.probe_ok, tk.view, tk.lan_ok, tk.vip)
        before = node.state
        try:
            d = self.decide_fn(before, obs, self.cfg)
        except InvariantError as exc:
            self.checks.violate("core_invariant", node, str(exc))
            self._tick_done(node)
            return
        self.ticks += 1
        self.checks.on_decision(node, before, obs, d)
        self.commit(node, d.state, d.reason if d.rule else "")
        self._queue_actions(node, d)
        self._run_ops(node)

    def _tick_done(self, node: Node) -> None:
        if node.tick_due and not node.busy and node.alive:
            node.tick_due = False
            self._start_tick(node)

    # -- committing and acting -------------------------------------------------------------------

    def note(self, node: Node | None, text: str) -> None:
        if self.trace:
            self.story.append(f"{self.now:12.4f} {node.id if node else '-':7} {text}")

    def commit(self, node: Node, new: NodeState, why: str = "") -> None:
        """Role and epoch are durable before any effect (SPEC 4)."""
        old = node.state
        if self.trace and (old.role is not new.role or old.epoch != new.epoch or why):
            self.note(node, f"{old.role}/{old.epoch} -> {new.role}/{new.epoch} {why}")
        self.checks.on_commit(node, new)
        node.state = new
        node.stored_epoch = new.epoch
        if old.role is not new.role:
            self.trace_hash = hash((self.trace_hash, node.idx, new.role is Role.ACTIVE, new.epoch))
            self.checks.on_role_change(node)

    def _queue_actions(self, node: Node, d: Decision) -> None:
        ops = node.ops
        for a in d.actions:
            if a is Action.STOP_CTI:
                ops.append((OP_STOP,))
            elif a is Action.START_CTI:
                ops.append((OP_START,))
            elif a is Action.DEMOTE_PEER:
                ops.append((OP_CMD, Role.STANDBY, d.state.epoch, Cause.PEER, f"{node.id} took ACTIVE", True))
            elif a is Action.PROMOTE_PEER:
                cause = {"R3": Cause.FAILBACK, "R10": Cause.SHUTDOWN}.get(d.rule or "", Cause.MANUAL)
                ops.append((OP_CMD, Role.ACTIVE, d.state.epoch + 1, cause, f"handover from {node.id}", False))

    def _run_ops(self, node: Node) -> None:
        ops = node.ops
        while ops:
            op = ops.popleft()
            kind = op[0]
            if kind == OP_STOP:
                self.cti_stop(node)
            elif kind == OP_START:
                # Applied under the node's lock: a role command may have demoted us while we waited.
                if node.state.role is Role.ACTIVE:
                    self.cti_start(node)
            elif kind == OP_CMD:
                _, role, epoch, cause, why, wait = op
                token = self.send_cmd(node, role, epoch, cause, why)
                if wait:
                    node.busy = True
                    node.wait = token
                    self.push(self.now + self.t, RESUME, node.idx, node.inc, token)
                    return
            elif kind == OP_SELF_PROMOTE:
                _, needs_reply, demote_peer, fence = op
                # After the DEMOTE answer, promote only if no newer epoch arrived meanwhile (someone
                # else took ACTIVE, e.g. R8): otherwise the switch ends in a dual ACTIVE.
                if needs_reply and (not node.last_reply_ok or node.state.epoch > fence):
                    self.checks.on_switch_refused(node)
                    continue
                d = promote(node.state, rule="R7", cause=Cause.MANUAL, demote_peer=demote_peer,
                            why=f"manual switch to {node.id}")
                self.commit(node, d.state)
                front: deque[tuple[Any, ...]] = deque()
                saved, node.ops = node.ops, front
                self._queue_actions(node, d)
                node.ops.extend(saved)
                ops = node.ops
            elif kind == OP_EXIT:
                _, boot_at, kept = op
                self.node_down(node, clean=True, kept=kept, back_at=max(self.now, boot_at))
                self.push(max(self.now, boot_at), BOOT, node.idx, 0, "sigterm")
                return
        node.busy = False
        if node.decide_due is not None:
            tk, node.decide_due = node.decide_due, None
            self._on_decide(node.idx, tk)
            return
        self._tick_done(node)

    def send_cmd(self, node: Node, role: Role, epoch: int, cause: Cause, why: str) -> int:
        self.token += 1
        d1 = self.delay(node.idx)
        if d1 is not None:
            self.push(self.now + d1, CMD, 1 - node.idx, 0, (role, epoch, cause, why, node.idx, node.inc, self.token))
        return self.token

    def _on_cmd(self, idx: int, payload: Any) -> None:
        """``POST /peer/role``: apply, commit, act, then answer."""
        role, epoch, cause, why, src, src_inc, token = payload
        node = self.nodes[idx]
        if not node.alive:
            return
        try:
            d = on_role_command(node.state, role, epoch, cause=cause, why=why, can_be_active=self.lan_ok(node))
            ok = True
        except StaleCommand:
            ok = False
        if ok:
            self.commit(node, d.state, f"role command {role} epoch {epoch}: {d.reason}")
            for a in d.actions:
                if a is Action.STOP_CTI:
                    self.cti_stop(node)
                elif a is Action.START_CTI and node.state.role is Role.ACTIVE:
                    self.cti_start(node)
        else:
            self.note(node, f"refused role command {role} epoch {epoch}")
        back = self.delay(idx)
        if back is not None:
            self.push(self.now + back, REPLY, src, src_inc, (token, ok))

    def _on_reply(self, idx: int, payload: Any) -> None:
        token, ok = payload
        node = self.nodes[idx]
        if node.wait == token:
            node.wait = 0
            node.last_reply_ok = ok
            self._run_ops(node)

    def _on_resume(self, idx: int, token: int) -> None:
        node = self.nodes[idx]
        if node.wait == token:  # no answer within T
            node.wait = 0
            node.last_reply_ok = False
            self._run_ops(node)

    # -- CTI process and CTI manager ---------------------------------------------------------------

    def cti_start(self, node: Node) -> None:
        if node.cti != CTI_STOPPED:
            return
        self.note(node, "CTI start")
        node.cti = CTI_STARTING
        node.cti_inc += 1
        node.cti_epoch = node.state.epoch
        self.checks.dirty = True
        self.push(self.now + self.startup, CTI_UP, node.idx, 0, node.cti_inc)

    def cti_stop(self, node: Node) -> None:
        """Synchronous clean stop: the simulator unregisters before exiting."""
        if node.cti:
            self.note(node, "CTI stop")
        node.cti = CTI_STOPPED
        node.cti_inc += 1
        if self.regs[node.idx] is not None:
            self._unregister(node.idx)

    def cti_die(self, node: Node) -> None:
        """The CTI process is gone without unregistering: its registration lapses 0.5 s later."""
        node.cti = CTI_STOPPED
        node.cti_inc += 1
        token = self.regs[node.idx]
        if token is not None:
            self.push(self.now + LAPSE_S, CTI_LAPSE, node.idx, 0, token)

    def _on_cti_up(self, idx: int, cti_inc: int) -> None:
        node = self.nodes[idx]
        if node.cti_inc != cti_inc or node.cti != CTI_STARTING:
            return
        node.cti = CTI_RUNNING
        self.note(node, f"CTI registered, epoch {node.cti_epoch}")
        self.token += 1
        if self.regs[idx] is not None:
            self._unregister(idx)
        if node.cti_epoch < self.max_epoch_seen:
            self.stale_epochs += 1
        self.max_epoch_seen = max(self.max_epoch_seen, node.cti_epoch)
        self.regs[idx] = self.token
        self.reg_epoch[idx] = node.cti_epoch
        if self.regs[1 - idx] is not None:
            self.overlap_start = self.now
            self.overlaps += 1
            self.checks.on_overlap_start()

    def _unregister(self, idx: int) -> None:
        if self.regs[1 - idx] is not None and self.overlap_start is not None:
            self.overlap_seconds += self.now - self.overlap_start
            self.checks.on_overlap_end(self.now - self.overlap_start)
            self.overlap_start = None
        self.regs[idx] = None

    def _on_cti_lapse(self, idx: int, token: int) -> None:
        if self.regs[idx] == token:
            self._unregister(idx)

    def _on_cti_respawn(self, idx: int, _: Any) -> None:
        node = self.nodes[idx]
        if node.state.role is Role.ACTIVE and node.cti == CTI_STOPPED:
            self.cti_restarts += 1
            self.cti_start(node)

    # -- maintenance (R11): a replicated flag, newest HLC stamp wins -------------------------------

    def hlc_now(self, node: Node) -> tuple[int, int]:
        pt = int((self.now + node.offset) * 1000)
        wall, counter = node.hlc
        node.hlc = (pt, 0) if pt > wall else (wall, counter + 1)
        return node.hlc

    def _merge_maint(self, node: Node, incoming: Maint) -> None:
        if (incoming[1], incoming[2]) > (node.maint[1], node.maint[2]):
            if incoming[1] > node.hlc:
                node.hlc = incoming[1]
            self._set_maint(node, incoming)

    def _set_maint(self, node: Node, maint: Maint) -> None:
        node.maint = maint
        if node.state.maintenance is not maint[0]:
            node.state = node.state.evolve(maintenance=maint[0])
            self.checks.on_maintenance_change()

    def operator_maintenance(self, idx: int, value: bool) -> None:
        """``POST /maintenance`` lands on ``idx`` (or on the other node when ``idx`` does not serve)."""
        node = self.nodes[idx]
        if not self.serves(node):
            node = self.nodes[1 - idx]
            if not self.serves(node):
                return
        self._set_maint(node, (value, self.hlc_now(node), node.idx))
        d1 = self.delay(node.idx)  # pushed at once; the exchange carries it too
        if d1 is not None:
            self.push(self.now + d1, MAINT, 1 - node.idx, 0, node.maint)

    def _on_maint(self, idx: int, maint: Maint) -> None:
        node = self.nodes[idx]
        if node.alive:
            self._merge_maint(node, maint)

    def _on_final_maint(self, idx: int, _: Any) -> None:
        self.operator_maintenance(0, False)

    # -- node life -------------------------------------------------------------------------------

    def node_down(self, node: Node, *, clean: bool, kept: bool, back_at: float) -> None:
        was_active = node.state.role is Role.ACTIVE
        if clean:
            self.cti_stop(node)
        else:
            self.cti_die(node)  # the CTI child dies with its node (R9)
        node.alive = False
        node.frozen = False
        node.deferred.clear()
        node.inc += 1
        node.ops.clear()
        node.busy = False
        node.wait = 0
        node.tick = None
        node.decide_due = None
        node.tick_due = False
        node.kept = kept
        self.checks.on_node_down(node, was_active, back_at)

    def _on_boot(self, idx: int, payload: Any) -> None:
        node = self.nodes[idx]
        if payload == "sigterm":
            self.checks.disturb_end()
        if node.alive:
            return
        self.note(node, "boot")
        node.alive = True
        node.inc += 1
        if not node.kept:  # storage lost: the epoch restarts from what the peer tells
            node.stored_epoch = 0
            node.maint = (False, (0, 0), idx)
        node.state = restart_state(node.id, node.stored_epoch, node.maint[0])
        node.fails = 0
        node.vip_node, node.vip_count = None, 0
        self.checks.on_boot(node)
        self.push(self.now + self.i * self.rng.uniform(0.01, 0.3), TICK, idx, node.inc)

    def _thaw(self, node: Node) -> None:
        node.frozen = False
        for code, idx, inc, payload in node.deferred:
            self.push(self.now, code, idx, inc, payload)
        node.deferred.clear()

    # -- faults and operator actions -------------------------------------------------------------

    def _on_fault_on(self, k: int, _: Any) -> None:
        f = self.sc.faults[k]
        node = self.nodes[f.node]
        kind = f.kind
        checks = self.checks
        self.note(node, f"fault #{k} {f}")
        if kind in ("partition", "oneway", "loss", "slow"):
            checks.disturb_begin()
            self.link_faults.append(f)
            self._relink()
        elif kind == "crash":
            if not node.alive:
                checks.ignored.add(k)
                return
            checks.disturb_begin()
            self.node_down(node, clean=False, kept=f.value > 0, back_at=f.end)
        elif kind == "freeze":
            if not self.serves(node):
                checks.ignored.add(k)
                return
            checks.disturb_begin()
            node.frozen = True
        elif kind == "lan":
            checks.disturb_begin()
            node.lan_down += 1
        elif kind == "sigterm":
            if not self.serves(node):
                checks.ignored.add(k)
                return
            checks.disturb_begin()
            self.graceful_stop(node, f)
        elif kind == "cti_death":
            if node.alive and node.cti != CTI_STOPPED:
                checks.disturb_instant()
                self.cti_die(node)
                self.push(self.now + self.i * self.rng.uniform(0.05, 1.0), CTI_RESPAWN, node.idx, node.inc)
        elif kind in ("skew", "clock_back"):
            node.offset += f.value  # only the HLC reads the wall clock; the loop runs on monotonic time
        elif kind == "switch":
            self.operator_switch(node, int(f.value), f.force)
        elif kind == "vip":
            checks.disturb_begin()
            self.vip_pref = None if f.value < 0 else int(f.value)
        elif kind == "maintenance":
            checks.disturb_begin()
            self.operator_maintenance(f.node, True)

    def _on_fault_off(self, k: int, _: Any) -> None:
        f = self.sc.faults[k]
        node = self.nodes[f.node]
        if k in self.checks.ignored:
            return
        kind = f.kind
        self.note(node, f"end of fault #{k} {kind}")
        if kind in ("partition", "oneway", "loss", "slow"):
            self.link_faults.remove(f)
            self._relink()
        elif kind == "crash":
            self.checks.disturb_end()
            self._on_boot(node.idx, None)
            return
        elif kind == "sigterm":
            return  # its disturbance ends when the node is back (BOOT)
        elif kind == "freeze":
            if node.alive and node.frozen:
                self._thaw(node)
        elif kind == "lan":
            node.lan_down -= 1
        elif kind == "vip":
            self.vip_pref = self.sc.vip_pref
        elif kind == "maintenance":
            self.operator_maintenance(f.node, False)
        self.checks.disturb_end()

    def graceful_stop(self, node: Node, f: Fault) -> None:
        """R10: SIGTERM on the ACTIVE node hands ACTIVE to a healthy peer, then the process exits."""
        s = node.state
        ops = node.ops
        ops.clear()
        if s.role is Role.ACTIVE and s.probed and s.peer_failures == 0 and s.peer and s.peer.can_be_active:
            d = demote(s, rule="R10", cause=Cause.SHUTDOWN, why=f"graceful stop: handing ACTIVE to {s.peer_id}",
                       handover=True)
            self.commit(node, d.state)
            ops.append((OP_STOP,))
            ops.append((OP_CMD, Role.ACTIVE, d.state.epoch + 1, Cause.SHUTDOWN, "graceful stop", True))
            self.checks.on_handover(node)
        ops.append((OP_EXIT, f.end, f.value > 0))
        if not node.busy:
            self._run_ops(node)

    def operator_switch(self, node: Node, target: int, force: bool) -> None:
        """``POST /switch {"target": ..., "force": ...}`` landing on ``node`` (R7)."""
        if not self.serves(node):
            return  # the request failed; nothing changed
        s = node.state
        peer_active = s.peer is not None and s.peer.role is Role.ACTIVE
        current = node.idx if s.role is Role.ACTIVE else (1 - node.idx if peer_active else None)
        if current == target:
            return  # already there: 200, no change
        reachable = s.probed and s.peer_failures == 0
        checks = self.checks
        if node.idx == target:
            if not self.lan_ok(node):
                return  # 409: the target's LAN fails
            if reachable:  # demote the peer first even if its last view said STANDBY: it may be stale
                epoch = max(s.epoch, s.peer.epoch if s.peer else 0) + 1
                node.ops.append((OP_CMD, Role.STANDBY, epoch, Cause.MANUAL, "manual switch", True))
                node.ops.append((OP_SELF_PROMOTE, True, False, epoch))
            elif force:
                node.ops.append((OP_SELF_PROMOTE, False, True, 0))
            else:
                return  # 409: the ACTIVE node is unreachable; needs force
        else:
            if not reachable or (s.peer is not None and not s.peer.can_be_active):
                return  # 409: the target is unreachable or its LAN fails
            if s.role is Role.ACTIVE:
                d = demote(s, rule="R7", cause=Cause.MANUAL, why=f"manual switch to {s.peer_id}")
                self.commit(node, d.state)
                node.ops.append((OP_STOP,))
            node.ops.append((OP_CMD, Role.ACTIVE, node.state.epoch + 1, Cause.MANUAL, "manual switch", False))
        checks.on_switch_accepted(self.nodes[target], force)
        if not node.busy:
            self._run_ops(node)
