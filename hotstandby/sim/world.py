"""The simulated pair: two arbiters running the shipping core and its plans over a simulated link, LAN,
disks, CTI and witness.

A discrete-event simulation in simulated seconds: one priority queue, one ``random.Random``, no
threads, no sockets, no clock. It models the arbiter the way the real one runs:

* the loop only waits: a tick starts I·(1 − 0.1·u) after the last one started, or when it ended if
  it took longer; it probes the peer's monitor, exchanges state with the peer arbiter and renews its
  witness lease, concurrently and bounded by T, checks its LAN and (with test_vip_destination) the
  VIP; then, holding the node's lock, ``rules.plan_tick`` (its ``decide`` injectable: a broken rule
  must be caught) and ``hotstandby.carry.carry_out``: the very plans and runner the arbiter uses;
* the lock: a tick's plan, a role command from the peer, an operator's switch and the graceful stop
  each hold it while their plan runs (waiting on the peer or the witness too); a tick whose
  observations predate a role change or a word from the peer does not act on them;
* each message crosses a per-direction link with loss, delay (beyond T when slow) and partitions, so
  requests and role commands reorder; a frozen node queues what reaches it and handles it on thaw;
* the witness is a simulated etcd (``witness.py``) on links of its own that can be cut from either
  node or both, can go down, and can see one node's renewals stall;
* the CTI process is separate from the node process: it survives a freeze (SIGSTOP of the node),
  dies with a crash (its registration lapses 0.5 s later, as SPEC 10 says), and the watchdog
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

from hotstandby import rules
from hotstandby.carry import Adopt, Answer, Ask, Heard, KeyNow, Outcome, Persist, Reassert, Run, Say, TakeKey, carry_out
from hotstandby.model import (
    Commit,
    Decision,
    NodeState,
    Observation,
    PeerView,
    Plan,
    ReleaseKey,
    Role,
    StartCti,
    StopCti,
    Tell,
)
from hotstandby.rules import InvariantError, decide, peer_confirms_standby, restart_state, witness_lost
from hotstandby.settings import ClusterSettings
from hotstandby.sim import invariants as inv
from hotstandby.sim.scenario import Fault, Scenario, cti_startup_s
from hotstandby.sim.witness import EXPIRY_LATE_S, Client, Etcd, Lease, ttl_request
from hotstandby.witness import Taken

DecideFn = Callable[[NodeState, Observation, ClusterSettings], Decision]

NODE_IDS = ("server1", "server2")
LAPSE_S = 0.5  # SPEC 10: a registration lapses 0.5 s after its last keepalive
CTI_STOPPED, CTI_STARTING, CTI_RUNNING = 0, 1, 2
DISK_FULL = "database or disk is full"
#: Bugs a run can plant without editing code, to prove the invariants catch them (``World(plant=...)``).
PLANTS = ("late-step-down", "promote-without-key")

# Event codes. Node-bound events carry the node's incarnation and vanish when it crashed since.
(TICK, HANDLE, PART, CMD, REPLY, RESUME, CTI_UP, CTI_RESPAWN, CTI_LAPSE, MAINT, FAULT_ON, FAULT_OFF, BOOT,
 DEADLINE, LIVENESS, FINAL_MAINT, W_REQ, W_REPLY, W_SWEEP, GIVE_UP, KEEP) = range(21)

# The message delays of an unslowed link: a share of T (the model scales with the operator's timing), etcd's
# fsync on the witness's side, and the wire.
LINK_SHARE, ETCD_FSYNC_S, WIRE_S = 0.02, 0.002, 1e-4

_INC_BOUND = frozenset((TICK, PART, REPLY, RESUME, CTI_RESPAWN, W_REPLY, GIVE_UP, KEEP))
# Handled by the node process, so held while it is frozen (the CTI process is not frozen with it).
_FREEZABLE = frozenset((TICK, HANDLE, PART, CMD, REPLY, RESUME, CTI_RESPAWN, MAINT, W_REPLY, GIVE_UP, KEEP))
PEER_PART, WITNESS_PART = 1, 2  # what a tick waits for before it decides
WAIT = object()  # an effect whose answer comes later (an event resumes the plan)

Maint = tuple[bool, tuple[int, int], int]  # value, HLC stamp, origin node index
Job = Callable[[], None]


class Tick:
    """One tick in flight: what was sent, and what came back before its deadline."""

    __slots__ = ("deadline", "lan_ok", "peer_maint", "probe_ok", "start", "todo", "version", "view", "vip",
                 "writes")

    def __init__(self, start: float, deadline: float, lan_ok: bool | None, vip: str | None, version: int) -> None:
        self.start = start
        self.deadline = deadline
        self.lan_ok = lan_ok
        self.vip = vip
        self.version = version
        self.probe_ok = False
        self.view: PeerView | None = None
        self.peer_maint: Maint | None = None
        self.todo = PEER_PART
        self.writes = 0


class Node:
    """One server: the arbiter's state and durable store, the process, its lock, its CTI child."""

    __slots__ = (
        "alive",
        "asks",
        "busy",
        "client",
        "cti",
        "cti_epoch",
        "cti_inc",
        "deferred",
        "disk_down",
        "done",
        "fail_value",
        "fails",
        "failsafe",
        "frozen",
        "held",
        "hlc",
        "id",
        "idx",
        "inc",
        "keep_due",
        "kept",
        "lan_down",
        "maint",
        "offset",
        "pumping",
        "queue",
        "renew_sent",
        "run",
        "state",
        "stopping",
        "stored_epoch",
        "tick",
        "version",
        "vip_count",
        "vip_node",
        "wait",
        "woke",
    )

    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.id = NODE_IDS[idx]
        self.state = restart_state(self.id, 0, False)
        self.alive = True
        self.frozen = False
        self.stopping = False  # SIGTERM received: the loop runs no more ticks
        self.inc = 0  # incarnation: bumped on crash and boot
        self.deferred: list[tuple[int, int, int, Any]] = []
        self.stored_epoch = 0  # the durable epoch (SQLite)
        self.kept = True
        self.disk_down = 0  # the database refuses writes while > 0
        self.maint: Maint = (False, (0, 0), idx)
        self.hlc = (0, 0)
        self.offset = 0.0  # wall clock minus simulated time (skew, steps back)
        self.lan_down = 0
        self.cti = CTI_STOPPED
        self.cti_inc = 0
        self.cti_epoch = 0
        self.tick: Tick | None = None
        self.version = 0  # bumped by every durable change and every word from the peer (see the arbiter)
        self.busy = False  # the lock is held
        self.pumping = False
        self.queue: deque[Job] = deque()  # waiting for the lock, in order
        self.run: Run | None = None  # the plan being carried out
        self.done: Callable[[Outcome], None] | None = None
        self.wait = 0  # the token of the answer the plan waits for
        self.asks = 0  # the token of a role command to the peer (``wait`` equals it while its answer is due)
        self.held = False  # that command or its answer is lost: the plan holds the lock until its timeout
        self.fail_value: Any = None  # what the plan gets when that answer does not come in time
        self.client = Client()
        self.renew_sent: float | None = None  # when the last lease renewal was sent (a tick's or keep_alive's)
        self.keep_due = False  # a KEEP event is pending
        self.failsafe = False  # the last decision kept ACTIVE on the failsafe (witness lost, peer STANDBY)
        self.woke = False  # thawed, and not decided since
        self.fails = 0  # consecutive failed probes, counted by the simulator itself (not the core)
        self.vip_node: str | None = None
        self.vip_count = 0


class World:
    """The whole simulated pair and its surroundings; ``run()`` plays one scenario to its horizon."""

    def __init__(self, scenario: Scenario, decide_fn: DecideFn = decide, trace: bool = False,
                 plant: str | None = None) -> None:
        if plant is not None and plant not in PLANTS:
            raise ValueError(f"plant must be one of {', '.join(PLANTS)}")
        self.sc = scenario
        self.horizon = scenario.horizon  # past it only to judge liveness (judge_liveness)
        self.cfg = cfg = scenario.settings
        self.decide_fn = decide_fn
        self.plant = plant
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
        self.w_out = [False, False]  # node i's requests to the witness are lost
        self.w_in = [False, False]  # the witness's answers to node i are lost
        self.w_stall = [False, False]  # node i's lease renewals stall (they reach etcd after T)
        self.link_faults: list[Fault] = []
        self.etcd = Etcd() if scenario.witness else None
        self.ttl = ttl_request(self.n, self.i)
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
        while True:
            horizon = self.horizon
            self._play(horizon)
            if self.horizon == horizon:
                break
        self.now = self.horizon
        self.checks.finish()
        return self

    def judge_liveness(self, at: float) -> None:
        """Judge liveness at ``at``, playing on past the scenario's horizon if need be."""
        self.horizon = max(self.horizon, at)
        self.push(at, LIVENESS)

    def _play(self, horizon: float) -> None:
        handlers = self._handlers()
        q = self.q
        checks = self.checks
        pop = heapq.heappop
        nodes = self.nodes
        while q and q[0][0] <= horizon:
            at, _, code, idx, inc, payload = pop(q)
            self.now = at
            self.trace_hash = hash((self.trace_hash, code, idx, at))
            if self.trace:
                self.events.append((at, code, idx))
            if code in _FREEZABLE or code in _INC_BOUND:
                node = nodes[idx]
                if code in _INC_BOUND and (inc != node.inc or not node.alive):
                    continue
                if node.frozen and code in _FREEZABLE:
                    if code == HANDLE:  # the requester times out meanwhile
                        tk, src, src_inc = payload[0], payload[1], payload[2]
                        self.push(max(at, tk.deadline), PART, src, src_inc, (tk, PEER_PART))
                    node.deferred.append((code, idx, inc, payload))
                    continue
            handlers[code](idx, payload)
            checks.after_step()

    def _handlers(self) -> list[Callable[[int, Any], None]]:
        return [self._on_tick, self._on_handle, self._on_part, self._on_cmd, self._on_reply, self._on_resume,
                self._on_cti_up, self._on_cti_respawn, self._on_cti_lapse, self._on_maint, self._on_fault_on,
                self._on_fault_off, self._on_boot, self.checks.on_deadline, self.checks.on_liveness,
                self._on_final_maint, self._on_w_req, self._on_w_reply, self._on_w_sweep, self._on_give_up,
                self._on_keep]

    def note(self, node: Node | None, text: str) -> None:
        if self.trace:
            self.story.append(f"{self.now:12.4f} {node.id if node else '-':7} {text}")

    # -- the links -------------------------------------------------------------------------------

    def delay(self, src: int) -> float | None:
        """One message from node ``src`` to its peer: its one-way delay, or None when it is lost."""
        loss = self.loss[src]
        if loss and (loss >= 1.0 or self.rng.random() < loss):
            return None
        if self.slow[src]:
            return self.t * self.rng.uniform(0.3, 1.6)  # up to and beyond T
        return self.t * LINK_SHARE * self.rng.random() + WIRE_S

    def w_delay(self, cut: bool) -> float | None:
        """One message between a node and the witness (etcd commits with an fsync: a few ms)."""
        return None if cut else self.t * LINK_SHARE * self.rng.random() + ETCD_FSYNC_S * self.rng.random() + WIRE_S

    def longest_message(self) -> float:
        """The longest an unslowed message takes, to the peer or the witness (``delay``, ``w_delay``)."""
        return self.t * LINK_SHARE + ETCD_FSYNC_S + WIRE_S

    def _relink(self) -> None:
        loss, slow = [0.0, 0.0], [False, False]
        w_out, w_in, stall = [False, False], [False, False], [False, False]
        for f in self.link_faults:
            kind = f.kind
            if kind == "split":  # a partition of the three: bit 1 the peer link, 2 and 4 each node's witness link
                mask = int(f.value)
                if mask & 1:
                    loss = [1.0, 1.0]
                for i in (0, 1):
                    if mask & (2 << i):
                        w_out[i] = w_in[i] = True
            elif kind == "wcut":  # value 0: both ways, 1: requests lost, 2: answers lost
                w_out[f.node] = w_out[f.node] or f.value != 2
                w_in[f.node] = w_in[f.node] or f.value != 1
            elif kind == "wstall":
                stall[f.node] = True
            else:
                for d in ((0, 1) if f.both else (f.node,)):
                    if kind in ("partition", "oneway"):
                        loss[d] = 1.0
                    elif kind == "loss":
                        loss[d] = max(loss[d], f.value)
                    else:
                        slow[d] = True
        self.loss, self.slow, self.w_out, self.w_in, self.w_stall = loss, slow, w_out, w_in, stall

    def lan_ok(self, node: Node) -> bool:
        return node.lan_down == 0

    def serves(self, node: Node) -> bool:
        return node.alive and not node.frozen

    def can_be_active(self, node: Node) -> bool:
        """What the exchange's can_be_active says: LAN, disk, and a witness not known to be down."""
        return node.lan_down == 0 and not node.disk_down and (self.etcd is None or node.client.vouches())

    def _vip_seen(self, node: Node) -> str | None:
        """Where /whoami through the VIP lands: the preferred node while it serves, else the other."""
        if self.vip_pref is None or not self.lan_ok(node):
            return None
        pref = self.nodes[self.vip_pref]
        if self.serves(pref) and self.lan_ok(pref):
            return pref.id
        alt = self.nodes[1 - self.vip_pref]
        return alt.id if self.serves(alt) and self.lan_ok(alt) else None

    # -- the lock --------------------------------------------------------------------------------

    def locked(self, node: Node, job: Job) -> None:
        """Run ``job`` holding the node's lock (after whoever holds or waits for it); it ends with ``unlock``."""
        node.queue.append(job)
        if not node.busy:
            self.unlock(node)

    def unlock(self, node: Node) -> None:
        node.busy = False
        if node.pumping:
            return
        node.pumping = True
        while node.queue and not node.busy and node.alive:
            job = node.queue.popleft()
            node.busy = True
            job()
        node.pumping = False

    # -- one tick --------------------------------------------------------------------------------

    def _on_tick(self, idx: int, _: Any) -> None:
        node = self.nodes[idx]
        if node.tick is None and not node.stopping:
            self._start_tick(node)

    def _start_tick(self, node: Node) -> None:
        now = self.now
        idx = node.idx
        lan = self.lan_ok(node) if self.sc.lan_checked else None
        vip = self._vip_seen(node) if self.cfg.test_vip_destination else None
        tk = Tick(now, now + self.t, lan, vip, node.version)
        node.tick = tk
        if self.etcd is not None:
            tk.todo |= WITNESS_PART
            tk.writes = node.client.writes
            node.renew_sent = now
            d = (self.t * self.rng.uniform(1.0, 3.0) if self.w_stall[idx] else self.w_delay(self.w_out[idx]))
            if d is None or d >= self.t:
                self.push(tk.deadline, PART, idx, node.inc, (tk, WITNESS_PART))
            if d is not None:
                self.push(now + d, W_REQ, idx, 0, ("renew", tk, node.client.lease, node.inc))
        d1 = self.delay(idx)
        exchange_through = d1 is not None and (self.loss[idx] == 0 or self.rng.random() >= self.loss[idx])
        if d1 is None or d1 >= self.t:
            self.push(tk.deadline, PART, idx, node.inc, (tk, PEER_PART))
            if d1 is not None:  # late, but the peer still handles it (replication side effects)
                self.push(now + d1, HANDLE, 1 - idx, 0, (tk, idx, node.inc, exchange_through, node.maint, False))
            return
        self.push(now + d1, HANDLE, 1 - idx, 0, (tk, idx, node.inc, exchange_through, node.maint, True))

    def _on_handle(self, idx: int, payload: Any) -> None:
        """The peer (``idx``) answers a probe and a state exchange sent at ``tk.start``."""
        tk, src, src_inc, exchange, maint, waited = payload
        peer = self.nodes[idx]
        now = self.now
        if not peer.alive:  # connection refused: the requester knows at once (if the RST gets back)
            if waited:
                back = self.delay(idx)
                at = tk.deadline if back is None else min(tk.deadline, now + back)
                self.push(max(at, now), PART, src, src_inc, (tk, PEER_PART))
            return
        if exchange:
            self._merge_maint(peer, maint)
        if now >= tk.deadline or not waited:
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
            fit = self.can_be_active(peer)
            tk.view = PeerView(peer.id, s.role, s.epoch, self.lan_ok(peer), s.maintenance, fit)
            tk.peer_maint = peer.maint
            answered = max(answered, now + back_exchange)
        else:
            complete = False
        self.push(answered if complete else tk.deadline, PART, src, src_inc, (tk, PEER_PART))

    def _on_part(self, idx: int, payload: tuple[Tick, int]) -> None:
        tk, part = payload
        node = self.nodes[idx]
        if node.tick is not tk or not tk.todo & part:
            return
        if part == WITNESS_PART:  # no answer from the witness within T
            c = node.client
            c.reachable, c.holds, c.detail = False, False, "no answer within T"
        self._part_done(node, tk, part)

    def _part_done(self, node: Node, tk: Tick, part: int) -> None:
        tk.todo &= ~part
        if not tk.todo:
            self.locked(node, lambda: self._decide(node, tk))

    def _decide(self, node: Node, tk: Tick) -> None:
        """Holding the lock: plan the tick from what it observed, and carry the plan out."""
        node.tick = None
        node.woke = False
        if tk.version != node.version:  # a command changed the pair while this tick observed
            self._tick_over(node, tk)
            self.unlock(node)
            return
        if tk.peer_maint is not None:
            self._merge_maint(node, tk.peer_maint)
        node.fails = 0 if tk.probe_ok else node.fails + 1
        if tk.vip is None:
            node.vip_node, node.vip_count = None, 0
        else:
            node.vip_count = node.vip_count + 1 if tk.vip == node.vip_node else 1
            node.vip_node = tk.vip
        witness = None
        if self.etcd is not None:
            shift = self.i if self.plant == "late-step-down" else 0.0  # R12 at L instead of L − I
            witness = node.client.view(self.now, NODE_IDS, shift)
        obs = Observation(tk.probe_ok, tk.view, tk.lan_ok, tk.vip, witness, DISK_FULL if node.disk_down else None)
        before = node.state
        try:
            plan = rules.plan_tick(before, obs, self.cfg, self.decide_fn)
        except InvariantError as exc:
            self.checks.violate("core_invariant", node, str(exc))
            self._tick_over(node, tk)
            self.unlock(node)
            return
        self.ticks += 1
        first = plan.steps[0]
        assert isinstance(first, Commit)
        d = first.decision
        node.failsafe = (witness is not None and before.role is Role.ACTIVE and d.state.role is Role.ACTIVE
                         and witness_lost(witness, self.cfg, node.id) and peer_confirms_standby(obs))
        self.checks.on_decision(node, before, obs, d)
        self.carry(node, plan, lambda _: self._tick_over(node, tk))

    def _tick_over(self, node: Node, tk: Tick) -> None:
        """The loop waits for the next tick: I·(1 − 0.1·u) after this one started, or now if it took longer."""
        if not node.stopping:
            at = max(self.now, tk.start + self.i * (1 - 0.1 * self.rng.random()))
            self.push(at, TICK, node.idx, node.inc)

    # -- carrying out plans: the effects of hotstandby.carry, simulated ----------------------------

    def carry(self, node: Node, plan: Plan, done: Callable[[Outcome], None] | None = None) -> None:
        """Holding the lock: run ``plan`` with ``carry_out``, then call ``done`` and release the lock."""
        node.run = carry_out(plan, self.cfg, lambda: node.state)
        node.done = done
        self._advance(node, None)

    def _advance(self, node: Node, result: Any) -> None:
        run = node.run
        assert run is not None
        while True:
            try:
                effect = run.send(result)
            except StopIteration as stop:
                node.run = None
                done, node.done = node.done, None
                if done is not None:
                    done(stop.value)
                self.unlock(node)
                return
            result = self._effect(node, effect)
            if result is WAIT:
                return

    def _effect(self, node: Node, e: Any) -> Any:
        kind = type(e)
        if kind is Adopt:
            self._adopt(node, e)
        elif kind is Say:
            if self.trace:
                self.note(node, e.line)
        elif kind is Persist:
            if node.disk_down:
                return DISK_FULL
            self.checks.on_commit(node, e.state)
            node.stored_epoch = e.state.epoch
        elif kind is StopCti:
            self.cti_stop(node)
        elif kind is StartCti:
            self.cti_start(node)
        elif kind is Heard:
            node.state = e.state
            node.version += 1
        elif kind is Ask:
            return self._ask(node, e)
        elif kind is KeyNow:
            return None if self.etcd is None else node.client.view(self.now, NODE_IDS)
        elif kind is ReleaseKey:
            if self.etcd is None:
                return True
            return self._w_call(node, "release", None, min(self.t, 1.0), False)
        elif kind is TakeKey:
            return self._take(node, e.epoch, "take")
        elif kind is Reassert:
            return self._take(node, e.epoch, "reassert")
        return None

    def _adopt(self, node: Node, e: Adopt) -> None:
        old, new = node.state, e.decision.state
        if self.trace and (old.role is not new.role or old.epoch != new.epoch):
            self.note(node, f"{old.role}/{old.epoch} -> {new.role}/{new.epoch}")
        node.state = new
        if e.durable:
            node.version += 1
        self.checks.dirty = True
        if old.role is not new.role:
            self.trace_hash = hash((self.trace_hash, node.idx, new.role is Role.ACTIVE, new.epoch))
            self.checks.on_role_change(node)
            if new.role is Role.ACTIVE:
                self.checks.on_promotion(node)

    def _wait(self, node: Node, timeout: float, fail_value: Any) -> int:
        if self.etcd is not None and not node.keep_due:  # the lease keeps itself alive while a plan waits
            node.keep_due = True
            self.push((node.renew_sent if node.renew_sent is not None else self.now) + self.i, KEEP, node.idx,
                      node.inc)
        self.token += 1
        node.wait, node.fail_value = self.token, fail_value
        self.push(self.now + timeout, RESUME, node.idx, node.inc, self.token)
        return self.token

    def _resume(self, node: Node, token: int, result: Any) -> None:
        if node.wait == token and node.run is not None:
            node.wait = 0
            if node.held:  # the fault that lost the answer ends only now, for the bounds and for liveness
                node.held = False
                self.checks.disturb_instant()
            self._advance(node, result)

    def _lost(self, node: Node) -> None:
        """A role command from ``node``, or its answer, will not arrive: ``node`` waits out the timeout."""
        if node.alive and node.wait and node.wait == node.asks:
            node.held = True

    def _on_resume(self, idx: int, token: int) -> None:
        node = self.nodes[idx]
        self._resume(node, token, node.fail_value)  # no answer in time

    # -- role commands between the nodes ----------------------------------------------------------

    def _ask(self, node: Node, e: Ask) -> Any:
        token = node.asks = self._wait(node, e.timeout, Answer(False, False, "no answer within the timeout"))
        d1 = self.delay(node.idx)
        if d1 is None:
            self._lost(node)
        else:
            self.push(self.now + d1, CMD, 1 - node.idx, 0, (e.role, e.epoch, e.cause, e.why, node.idx, node.inc, token))
        return WAIT

    def _on_cmd(self, idx: int, payload: Any) -> None:
        """``POST /peer/role`` reaches ``idx``: obey under the lock, then answer."""
        node = self.nodes[idx]
        if node.alive:
            self.locked(node, lambda: self._obey(node, payload))
        else:
            self._lost(self.nodes[1 - idx])

    def _obey(self, node: Node, payload: Any) -> None:
        role, epoch, cause, why, src, src_inc, token = payload
        plan = rules.plan_role_command(node.state, role, epoch, self.cfg, cause=cause, why=why,
                                       can_be_active=self.can_be_active(node))

        def answer(out: Outcome) -> None:
            back = self.delay(node.idx)
            if back is None:
                asker = self.nodes[src]
                if asker.inc == src_inc and asker.wait == token:
                    self._lost(asker)
            else:
                s = node.state
                reply = Answer(not out.refused, True, out.reason if out.refused else "ok", s.role, s.epoch)
                self.push(self.now + back, REPLY, src, src_inc, (token, reply))

        self.carry(node, plan, answer)

    def _on_reply(self, idx: int, payload: Any) -> None:
        token, answer = payload
        self._resume(self.nodes[idx], token, answer)

    # -- the witness ------------------------------------------------------------------------------

    def _take(self, node: Node, epoch: int, kind: str) -> Any:
        if self.etcd is None:
            return None
        # The planted bug: a take the witness refuses (or does not answer) promotes all the same.
        planted = Taken(True, epoch, "planted: promoted without the key") if (
            kind == "take" and self.plant == "promote-without-key") else None
        if node.client.lease is None:
            return planted or Taken(False, 0, "no lease: the witness has not answered yet")
        return self._w_call(node, kind, (node.client.lease, epoch), self.t,
                            planted or Taken(False, 0, "the witness is unreachable (no answer within T)"))

    def _w_call(self, node: Node, kind: str, arg: Any, timeout: float, fail_value: Any) -> Any:
        token = self._wait(node, timeout, fail_value)
        d = self.w_delay(self.w_out[node.idx])
        if d is not None:
            self.push(self.now + d, W_REQ, node.idx, 0, (kind, token, arg, node.inc))
        return WAIT

    def _lease(self, lease_id: int | None) -> Lease | None:
        """The lease if etcd still has it: one whose TTL ran out is revoked now (a late keep-alive finds it gone)."""
        assert self.etcd is not None
        lease = self.etcd.leases.get(lease_id) if lease_id is not None else None
        if lease is not None and lease.expires <= self.now:
            self._expire(lease)
            return None
        return lease

    def _grant(self, idx: int) -> Lease:
        assert self.etcd is not None
        lease = self.etcd.grant(self.ttl, self.now, idx)
        self.push(lease.expires + EXPIRY_LATE_S * self.rng.random(), W_SWEEP, 0, 0, lease.id)
        return lease

    def _expire(self, lease: Lease) -> None:
        assert self.etcd is not None
        self.checks.on_lease_expired(lease)
        self.note(self.nodes[lease.owner], f"witness: lease {lease.id} expired")
        self.etcd.revoke(lease.id)

    def _on_w_sweep(self, _: int, lease_id: int) -> None:
        """etcd's expiry sweep: a lease kept alive meanwhile is looked at again when its new TTL runs out."""
        etcd = self.etcd
        assert etcd is not None
        lease = etcd.leases.get(lease_id)
        if lease is None or not etcd.up:
            return  # revoked already, or etcd is down (it starts every TTL afresh when back)
        if lease.expires > self.now:
            self.push(lease.expires + EXPIRY_LATE_S * self.rng.random(), W_SWEEP, 0, 0, lease.id)
        else:
            self._expire(lease)

    def _on_w_req(self, idx: int, payload: Any) -> None:
        """A request reaches etcd; its answer goes back to node ``idx`` (if that link carries it)."""
        etcd = self.etcd
        assert etcd is not None
        kind, ref, arg, inc = payload
        now = self.now
        if kind == "renew":
            tk, lease_id = ref, (arg if ref is not None else arg[0])
            if not etcd.up:
                if tk is not None and now < tk.deadline:
                    self.push(tk.deadline, PART, idx, inc, (tk, WITNESS_PART))
                return
            lease = self._lease(lease_id)
            if lease is None:
                lease = self._grant(idx)
            else:
                lease.expires = now + lease.ttl  # kept alive
            key = etcd.key
            renewed = (lease.id, float(lease.ttl), key.node if key else None, key.lease if key else None)
            if tk is None:  # keep_alive's renewal, between ticks: ``lease_id`` came with its send time
                sent, writes = arg[1], arg[2]
                back = self.w_delay(self.w_in[idx])
                if back is not None and now + back <= sent + self.t:
                    self.push(now + back, W_REPLY, idx, inc, ("keep", (sent, writes), renewed))
                return
            if now >= tk.deadline:
                return  # a stalled renewal: it kept the lease alive, but nobody waits for its answer
            back = self.w_delay(self.w_in[idx])
            if back is None or now + back > tk.deadline:
                self.push(tk.deadline, PART, idx, inc, (tk, WITNESS_PART))
            else:
                self.push(now + back, W_REPLY, idx, inc, ("renew", tk, renewed))
            return
        if not etcd.up:
            return
        token = ref
        if kind == "release":
            key = etcd.key
            result: Any = True
            if key is not None and key.node == idx:
                etcd.delete()
                result = "wrote"
        else:
            lease_id, epoch = arg
            key = etcd.key
            lease = self._lease(lease_id)
            if key is not None and key.node != idx:
                result = Taken(False, 0, f"the witness key is held by {NODE_IDS[key.node]} (epoch {key.epoch}) "
                                         "and its lease has not expired")
            elif lease is None:
                result = Taken(False, 0, "the witness is unreachable (transaction refused: requested lease not found)")
            else:
                new = epoch if kind == "reassert" else max(epoch, etcd.revision + 1)
                written = etcd.write(idx, new, lease.id)
                result = Taken(True, new, f"took the witness key at revision {written.revision}")
        back = self.w_delay(self.w_in[idx])
        if back is not None:
            self.push(now + back, W_REPLY, idx, inc, (kind, token, result))

    def _on_w_reply(self, idx: int, payload: Any) -> None:
        node = self.nodes[idx]
        kind, ref, result = payload
        c = node.client
        if kind == "renew":
            tk: Tick = ref
            if node.tick is not tk or not tk.todo & WITNESS_PART:
                return
            if self.now > tk.deadline:  # held while frozen: the timeout came first
                c.reachable, c.holds, c.detail = False, False, "no answer within T"
            else:
                lease_id, granted, holder, holder_lease = result
                c.lease, c.granted, c.reachable, c.detail, c.renewed_at = lease_id, granted, True, "ok", tk.start
                if c.writes == tk.writes:  # a take or release landed while we read: keep what it wrote
                    c.holder, c.holds = holder, holder == idx and holder_lease == lease_id
            self._part_done(node, tk, WITNESS_PART)
            return
        if kind == "keep":
            (sent, writes), (lease_id, granted, holder, holder_lease) = ref, result
            if c.renewed_at is None or sent > c.renewed_at:
                c.lease, c.granted, c.reachable, c.detail, c.renewed_at = lease_id, granted, True, "ok", sent
                if c.writes == writes:
                    c.holder, c.holds = holder, holder == idx and holder_lease == lease_id
            return
        if node.wait != ref:
            return
        if kind == "release":
            if result == "wrote":
                c.wrote(None, idx)
            result = True
        elif result.ok:
            c.wrote(idx, idx)
        elif node.fail_value.ok:  # the planted bug
            result = node.fail_value
        self._resume(node, ref, result)

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
        node.queue.clear()
        node.busy = False
        node.run = node.done = None
        node.wait = 0
        node.held = False
        node.tick = None
        node.keep_due = False
        node.kept = kept
        self._lost(self.nodes[1 - node.idx])  # a command it had not answered yet
        self.checks.on_node_down(node, was_active, back_at)

    def _on_boot(self, idx: int, payload: Any) -> None:
        node = self.nodes[idx]
        if payload == "sigterm":
            self.checks.disturb_end()
        if node.alive:
            return
        self.note(node, "boot")
        node.alive = True
        node.stopping = False
        node.inc += 1
        if not node.kept:  # storage lost: the epoch restarts from what the peer tells
            node.stored_epoch = 0
            node.maint = (False, (0, 0), idx)
        node.state = restart_state(node.id, node.stored_epoch, node.maint[0])
        node.client = Client()
        node.renew_sent = None
        node.keep_due = False
        node.fails = 0
        node.failsafe = False
        node.vip_node, node.vip_count = None, 0
        self.checks.on_boot(node)
        self.push(self.now + self.i * self.rng.uniform(0.01, 0.3), TICK, idx, node.inc)

    def _thaw(self, node: Node) -> None:
        node.frozen = False
        node.woke = True
        for code, idx, inc, payload in node.deferred:
            self.push(self.now, code, idx, inc, payload)
        node.deferred.clear()

    def graceful_stop(self, node: Node, f: Fault) -> None:
        """R10, SIGTERM: the loop stops; the stop waits up to 1 s for the lock, carries out ``plan_stop``
        (hand ACTIVE to a healthy peer), and the process exits (CTI stopped cleanly)."""
        node.stopping = True

        def stop() -> None:
            plan = rules.plan_stop(node.state, self.cfg)
            if any(isinstance(s, Tell) and s.role is Role.ACTIVE for s in plan.steps):
                self.checks.on_handover(node)
            self.carry(node, plan, lambda _: self._exit(node, f))

        if node.busy:
            self.push(self.now + 1.0, GIVE_UP, node.idx, node.inc, (stop, f))
        self.locked(node, stop)

    def _on_keep(self, idx: int, _: Any) -> None:
        """keep_alive (``services/arbiter/lease.py``): no renewal sent for I while a plan holds the node up:
        renew now, and look again in I while it still does."""
        node = self.nodes[idx]
        node.keep_due = False
        sent = node.renew_sent
        if sent is None or self.now - sent >= self.i - 1e-9:
            sent = node.renew_sent = self.now
            d = self.t * self.rng.uniform(1.0, 3.0) if self.w_stall[idx] else self.w_delay(self.w_out[idx])
            if d is not None:
                self.push(self.now + d, W_REQ, idx, 0, ("renew", None, (node.client.lease, sent, node.client.writes),
                                                        node.inc))
        if node.busy:
            node.keep_due = True
            self.push(sent + self.i, KEEP, idx, node.inc)

    def _on_give_up(self, idx: int, payload: Any) -> None:
        """The stop did not get the lock within 1 s: the process exits without handing over."""
        stop, f = payload
        node = self.nodes[idx]
        if stop in node.queue:
            node.queue.remove(stop)
            self._exit(node, f)

    def _exit(self, node: Node, f: Fault) -> None:
        back = max(self.now, f.end)
        self.node_down(node, clean=True, kept=f.value > 0, back_at=back)
        self.push(back, BOOT, node.idx, 0, "sigterm")

    # -- faults and operator actions -------------------------------------------------------------

    def _on_fault_on(self, k: int, _: Any) -> None:
        f = self.sc.faults[k]
        node = self.nodes[f.node]
        kind = f.kind
        checks = self.checks
        self.note(node, f"fault #{k} {f}")
        if kind in ("partition", "oneway", "loss", "slow", "split", "wcut", "wstall"):
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
            checks.on_freeze()
            node.frozen = True
        elif kind == "lan":
            checks.disturb_begin()
            node.lan_down += 1
        elif kind == "disk":
            checks.disturb_begin()
            node.disk_down += 1
        elif kind == "wdown":
            checks.disturb_begin()
            assert self.etcd is not None
            self.etcd.up = False
        elif kind == "sigterm":
            if not self.serves(node) or node.stopping:
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
        if kind in ("partition", "oneway", "loss", "slow", "split", "wcut", "wstall"):
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
        elif kind == "disk":
            node.disk_down -= 1
        elif kind == "wdown":
            assert self.etcd is not None
            self.etcd.restarted(self.now)
            for lease in self.etcd.leases.values():
                self.push(lease.expires + EXPIRY_LATE_S * self.rng.random(), W_SWEEP, 0, 0, lease.id)
        elif kind == "vip":
            self.vip_pref = self.sc.vip_pref
        elif kind == "maintenance":
            self.operator_maintenance(f.node, False)
        self.checks.disturb_end()

    def operator_switch(self, node: Node, target: int, force: bool) -> None:
        """``POST /switch {"target": ..., "force": ...}`` landing on ``node`` (R7): ``rules.plan_switch``,
        planned under the lock from what the node knows then (the arbiter probes the target first; the
        simulator uses its last tick's view of it)."""
        if self.serves(node):
            self.locked(node, lambda: self._switch(node, target, force))

    def _switch(self, node: Node, target: int, force: bool) -> None:
        s = node.state
        view = self._fresh_view(node)
        if target == node.idx:
            unfit = None if self.can_be_active(node) else "its LAN check fails, its database or the witness"
            plan = rules.plan_switch(s, node.id, self.cfg, force=force, who="the operator", unfit=unfit, view=view)
        else:
            reachable = view is not None and s.probed and s.peer_failures == 0
            plan = rules.plan_switch(s, NODE_IDS[target], self.cfg, force=force, who="the operator",
                                     view=view, probe=None if reachable else "unreachable")
        if not plan.steps:
            self.carry(node, plan)
            return
        target_node = self.nodes[target]
        self.checks.on_switch_accepted(target_node, force)

        def refused(out: Outcome) -> None:
            if out.refused:
                self.checks.on_switch_refused(target_node)

        self.carry(node, plan, refused)

    def _fresh_view(self, node: Node) -> PeerView | None:
        """The exchange the arbiter makes before planning a switch: the peer as it is now, when the link
        carries messages both ways at once (the round trip takes milliseconds), else no answer."""
        peer = self.nodes[1 - node.idx]
        if self.loss[0] or self.loss[1] or self.slow[0] or self.slow[1] or not self.serves(peer):
            return None
        s = peer.state
        return PeerView(peer.id, s.role, s.epoch, self.lan_ok(peer), s.maintenance, self.can_be_active(peer))
