"""The invariants the simulator checks as a run goes, each counted under its own name.

Safety invariants hold at every step. Bound invariants (R1, R3, R4, R7, R10) are measured in
simulated time from the event that starts them, but only when nothing else was disturbed in the
meantime: a bound says how fast the pair reacts to *one* event, not to a storm. "Disturbed" means a
fault is active (link, node, LAN, VIP), maintenance is on somewhere, or an instant fault (CTI death,
a forced switch) just happened. Liveness is judged after the last fault: exactly one ACTIVE with CTI
registered, and no more role changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hotstandby.model import Cause, Decision, NodeState, Observation, Role
from hotstandby.sim.scenario import lease_s, settle_s

if TYPE_CHECKING:
    from hotstandby.sim.witness import Lease
    from hotstandby.sim.world import Node, World

#: Every invariant, in report order; each appears in every report, even at 0.
NAMES = (
    "single_active",  # CTI registered on both nodes at once, outside a window the SPEC allows
    "cti_only_on_active",  # a CTI process running on a node that is not ACTIVE
    "epoch_monotonic",  # a node's durable epoch went back (a lost disk resets its baseline)
    "no_promotion_below_n",  # promoted on fewer than N consecutive failed probes without R6/R8 grounds
    "maintenance_no_switch",  # an automatic switch on a node whose maintenance flag is on
    "core_invariant",  # decide() raised InvariantError
    "r1_bound",  # peer death -> ACTIVE within N*I + T + I
    "r3_bound",  # server1 healthy -> ACTIVE within N*I + I (auto_failback)
    "r4_bound",  # both ACTIVE -> one ACTIVE within 2N*I + I of the link healing
    "r7_bound",  # manual switch -> target ACTIVE within I
    "r10_bound",  # graceful stop -> peer ACTIVE within 2 s
    "liveness",  # after the faults: exactly one ACTIVE, CTI registered there, and it stays
    "maintenance_agreement",  # after the faults both nodes carry the same maintenance flag
    # With a witness (SPEC 12); 0 in runs without one:
    "witness_dual_active",  # two nodes ACTIVE at once for longer than one tick (I + T), a frozen node aside
    "promotion_without_key",  # a node became ACTIVE while the witness's key did not name it
    "epoch_order",  # a promotion's epoch not above every earlier promotion's
    "active_past_lease",  # the witness expired an ACTIVE node's lease while it stayed ACTIVE off the failsafe
)

R10_BOUND_S = 2.0


@dataclass
class Window:
    """A bound being measured: ``node`` must be ACTIVE by ``deadline``, unless disturbed first."""

    name: str
    node: int
    start: float
    deadline: float
    dseq: int


@dataclass
class Violation:
    name: str
    at: float
    node: str
    detail: str


class Checks:
    """Named invariant checks over one ``World``; the world calls the ``on_*`` hooks."""

    def __init__(self, world: World) -> None:
        self.w = world
        cfg = world.cfg
        n, i, t = cfg.failures_to_switch, cfg.heartbeat_interval_s, cfg.heartbeat_timeout_s
        self.n, self.i, self.t = n, i, t
        self.witness = world.sc.witness
        # With a witness the survivor also waits for the dead node's lease (L, up to 0.5 s late), then
        # takes the key at its next decision.
        self.r1_bound = max(n * i + t + i, lease_s(cfg) + i + t) if self.witness else n * i + t + i
        self.r3_bound = n * i + i
        self.r4_bound = 2 * n * i + i
        self.r10_bound = R10_BOUND_S + (5 * world.longest_message() if self.witness else 0.0)  # see on_handover
        self.tick_s = i + t  # one tick: the interval, and the T its decision may wait for what it observes
        # A dual registration can begin this long after the last disturbance ended (the N-th
        # failure was counted before the heal, then a DEMOTE wait of T and the CTI startup).
        self.grace = (n + 2) * i + 2 * t + world.startup
        self.settle = settle_s(cfg, self.witness)
        self.dual_excused = False  # a frozen node took part in the current dual ACTIVE
        self.max_promoted = -1  # the highest epoch a promotion took
        self.counts = dict.fromkeys(NAMES, 0)
        self.found: list[Violation] = []
        self.dcount = 0
        self.dseq = 0
        self.quiet_since = 0.0
        self.ignored: set[int] = set()
        self.dirty = False
        self.dual_since: float | None = None
        self.r4_reported = False
        self.windows: dict[int, Window] = {}
        self.wid = 0
        self.measured = dict.fromkeys(("r1", "r3", "r7", "r10"), 0)
        self.worst_failover = 0.0  # R1: peer death to ACTIVE, seconds
        self.worst_ratio = 0.0  # ... over its bound
        self.liveness_at: float | None = None
        self.flap_reported = False

    # -- bookkeeping -----------------------------------------------------------------------------

    def violate(self, name: str, node: Node | None, detail: str) -> None:
        self.counts[name] += 1
        if len(self.found) < 20:
            self.found.append(Violation(name, self.w.now, node.id if node else "-", detail))

    def calm(self, own: int = 0) -> bool:
        """Nothing disturbs the pair (``own``: the triggering fault itself is already counted): no fault is
        on, no maintenance, and no node waits out the timeout of a role command a fault lost (it holds its
        lock until then: R3's "take ACTIVE back" waits up to 1 s, and nothing else runs on that node)."""
        a, b = self.w.nodes
        return (self.dcount <= own and not a.state.maintenance and not b.state.maintenance
                and not a.held and not b.held)

    def disturb_begin(self) -> None:
        self.dcount += 1
        self.dseq += 1

    def disturb_end(self) -> None:
        self.dcount -= 1
        self.quiet_since = self.w.now

    def disturb_instant(self) -> None:
        self.dseq += 1
        self.quiet_since = self.w.now

    def on_maintenance_change(self) -> None:
        self.dseq += 1
        self.quiet_since = self.w.now

    def _open(self, name: str, node: int, bound: float) -> None:
        target = self.w.nodes[node]
        if target.alive and target.state.role is Role.ACTIVE:
            return  # met at once; what happens next is another rule's business (R3, R4)
        self.wid += 1
        now = self.w.now
        self.windows[self.wid] = Window(name, node, now, now + bound, self.dseq)
        # world.DEADLINE, judged just after the bound: "within" includes it, and whatever happens at that very
        # instant (a promotion, a switch's refusal at T = I) happens before the judgement.
        self.w.push(now + bound + 1e-9, 13, 0, 0, self.wid)

    # -- safety, at every step -------------------------------------------------------------------

    def after_step(self) -> None:
        if self.dirty:
            self.dirty = False
            self.check_cti_only_on_active()

    def check_cti_only_on_active(self) -> None:
        for node in self.w.nodes:
            if node.alive and node.cti and node.state.role is not Role.ACTIVE:
                self.violate("cti_only_on_active", node, f"CTI {node.cti} while {node.state.role}")

    def on_commit(self, node: Node, new: NodeState) -> None:
        self.dirty = True
        if new.epoch < node.stored_epoch:
            self.violate("epoch_monotonic", node, f"epoch {node.stored_epoch} -> {new.epoch}")

    def on_decision(self, node: Node, before: NodeState, obs: Observation, d: Decision) -> None:
        after = d.state
        if before.maintenance and after.role is not before.role and d.rule != "R12":  # R12 is not paused
            self.violate("maintenance_no_switch", node, d.reason)
        if before.role is Role.STANDBY and after.role is Role.ACTIVE and node.fails < self.n:
            r6 = obs.probe_ok and obs.peer is not None and obs.peer.role is Role.STANDBY
            r8 = self.w.cfg.test_vip_destination and node.vip_node == node.id and node.vip_count >= self.n
            if not (r6 or r8):
                self.violate("no_promotion_below_n", node, f"{node.fails} failures: {d.reason}")
        self.check_r4()

    def on_overlap_start(self) -> None:
        """single_active: two registrations at once only in the wake of a disturbance."""
        w = self.w
        if self.calm() and w.now - self.quiet_since >= self.grace:
            self.violate("single_active", None, f"both nodes registered, quiet since {self.quiet_since:.3f}")

    def on_overlap_end(self, duration: float) -> None:
        pass

    # -- roles and bounds ------------------------------------------------------------------------

    def _track_dual(self) -> None:
        a, b = self.w.nodes
        both = a.alive and b.alive and a.state.role is Role.ACTIVE and b.state.role is Role.ACTIVE
        if both and self.dual_since is None:
            self.dual_since = self.w.now
            self.dual_excused = a.frozen or b.frozen
        elif not both and self.dual_since is not None:
            self._check_dual_length()
            self.dual_since = None
            self.r4_reported = False

    def _check_dual_length(self) -> None:
        """With a witness: never two ACTIVE for longer than one tick (SPEC 12), under any partition of the
        three. A frozen node is no partition: its CTI runs on in its own process group, as without one."""
        if self.witness and self.dual_since is not None and not self.dual_excused:
            took = self.w.now - self.dual_since
            if took > self.tick_s:
                self.violate("witness_dual_active", None, f"both ACTIVE for {took:.3f} s from {self.dual_since:.3f} "
                                                          f"(one tick: {self.tick_s:.3f} s)")

    def on_freeze(self) -> None:
        if self.dual_since is not None:
            self.dual_excused = True

    def on_promotion(self, node: Node) -> None:
        """Every promotion, with a witness: the key names this node, and its epoch is above all before it."""
        etcd = self.w.etcd
        if etcd is None:
            return
        key = etcd.key
        if node.woke:
            # Frozen with the answer to its take in flight, it reads "taken" on waking, after the key may have
            # moved on: a paused process cannot keep the promise (see "A frozen ACTIVE outlives its lease").
            self.max_promoted = max(self.max_promoted, node.state.epoch)
            return
        if key is None or key.node != node.idx or key.lease not in etcd.leases:
            held = "nobody" if key is None else self.w.nodes[key.node].id
            self.violate("promotion_without_key", node, f"ACTIVE in epoch {node.state.epoch}; the key names {held}")
        epoch = node.state.epoch
        if epoch <= self.max_promoted:
            self.violate("epoch_order", node, f"promoted in epoch {epoch}, not above {self.max_promoted}")
        self.max_promoted = max(self.max_promoted, epoch)

    def on_lease_expired(self, lease: Lease) -> None:
        """R12's promise: an ACTIVE is down before the witness can expire its lease, unless its peer
        confirmed STANDBY on its last tick (the failsafe). A frozen node cannot keep any promise (nor one
        just thawed before its next decision)."""
        node = self.w.nodes[lease.owner]
        if (node.alive and not node.frozen and not node.woke and node.state.role is Role.ACTIVE and not node.failsafe
                and node.client.lease == lease.id):
            self.violate("active_past_lease", node, f"lease {lease.id} (TTL {lease.ttl} s) expired while ACTIVE, "
                                                    f"last renewal sent at {node.client.renewed_at}")

    def check_r4(self) -> None:
        if self.dual_since is None or self.r4_reported or not self.calm():
            return
        since = max(self.dual_since, self.quiet_since)
        if self.w.now - since > self.r4_bound:
            self.r4_reported = True
            self.violate("r4_bound", None, f"both ACTIVE since {self.dual_since:.3f}, calm since {since:.3f}")

    def on_role_change(self, node: Node) -> None:
        self._track_dual()
        w = self.w
        if self.liveness_at is not None and w.now > self.liveness_at and not self.flap_reported:
            self.flap_reported = True
            self.violate("liveness", node, f"role change to {node.state.role} after the pair settled")
        if node.state.role is not Role.ACTIVE:
            return
        for wid, win in list(self.windows.items()):
            if win.node == node.idx:
                del self.windows[wid]
                if win.dseq != self.dseq:
                    continue
                took = w.now - win.start
                if win.name == "r1_bound":
                    self.measured["r1"] += 1
                    if took > self.worst_failover:
                        self.worst_failover = took
                    self.worst_ratio = max(self.worst_ratio, took / self.r1_bound)

    def on_deadline(self, _: int, wid: int) -> None:
        win = self.windows.pop(wid, None)
        if win is not None and win.dseq == self.dseq:
            node = self.w.nodes[win.node]
            if node.alive and node.state.role is Role.ACTIVE:
                return  # it already was ACTIVE (no role change to see)
            self.violate(win.name, node, f"not ACTIVE {win.deadline - win.start:.3f}s after {win.start:.3f}")

    def on_node_down(self, node: Node, was_active: bool, back_at: float) -> None:
        self._track_dual()
        peer = self.w.nodes[1 - node.idx]
        if (
            was_active and self.calm(own=1) and peer.alive and not peer.frozen
            and peer.state.role is Role.STANDBY and peer.lan_down == 0
            and back_at - self.w.now > self.r1_bound + self.i
        ):
            self._open("r1_bound", peer.idx, self.r1_bound)

    def on_boot(self, node: Node) -> None:
        self._track_dual()
        w = self.w
        backup = w.nodes[1]
        if (
            node.idx == 0 and w.cfg.auto_failback and not w.cfg.test_vip_destination and self.calm()
            and backup.alive and not backup.frozen and backup.state.role is Role.ACTIVE
            and backup.state.cause is not Cause.MANUAL and node.lan_down == 0
        ):
            self.measured["r3"] += 1
            self._open("r3_bound", 0, self.r3_bound)

    def on_handover(self, node: Node) -> None:
        """R10: the peer ACTIVE within 2 s of a graceful stop. With a witness the handover is five messages
        (release, then the tell, then the peer's take), which the model delays by up to 2 % of T each: the
        bound adds them (a LAN's are milliseconds, but the model scales its delays with T). A peer without
        a live lease cannot take the key at all: no bound then (it refuses, and R1 follows)."""
        target = self.w.nodes[1 - node.idx]
        if self.calm(own=1) and (not self.witness or self._has_lease(target)):
            self.measured["r10"] += 1
            self._open("r10_bound", target.idx, self.r10_bound)

    def _has_lease(self, node: Node) -> bool:
        etcd = self.w.etcd
        return etcd is not None and node.client.lease in etcd.leases

    def on_switch_accepted(self, target: Node, force: bool) -> None:
        if force:
            self.disturb_instant()  # a forced switch may overlap by design (the ACTIVE was unreachable)
            return
        calm = self.calm()
        self.dseq += 1  # other bounds stop measuring: the operator changed the situation
        # With test_vip_destination R8 follows the load balancer, which may undo the switch (README).
        if calm and not self.w.cfg.test_vip_destination:
            self.measured["r7"] += 1
            self._open("r7_bound", target.idx, self.i)

    def on_switch_refused(self, target: Node) -> None:
        """A switch refused while it was carried out (409): R7's bound is about switches that happen."""
        self.measured["r7_refused"] = self.measured.get("r7_refused", 0) + 1
        for wid, win in list(self.windows.items()):
            if win.name == "r7_bound" and win.node == target.idx:
                del self.windows[wid]

    # -- liveness --------------------------------------------------------------------------------

    def on_liveness(self, _: int, __: Any) -> None:
        """Judged ``settle`` after the last disturbance: a fault's effect may outlast the fault (a graceful
        stop waits up to 1 s for its handover, a lost command's answer up to 1 s); the run goes on until then."""
        w = self.w
        late = w.now > w.sc.horizon + 2 * self.settle  # still disturbed by then: judge all the same
        if not self.calm() and not late:
            w.judge_liveness(w.now + self.i)
            return
        if self.quiet_since + self.settle > w.now + 1e-9 and not late:
            w.judge_liveness(self.quiet_since + self.settle)
            return
        self.liveness_at = w.now
        self.check_one_active("when the pair should have settled")

    def check_one_active(self, when: str) -> None:
        w = self.w
        active = [n for n in w.nodes if n.alive and n.state.role is Role.ACTIVE]
        standby = [n for n in w.nodes if n.alive and n.state.role is Role.STANDBY]
        if len(active) != 1 or len(standby) != 1 or w.regs[active[0].idx] is None or w.regs[standby[0].idx]:
            roles = ", ".join(f"{n.id}={n.state.role if n.alive else 'down'}" for n in w.nodes)
            if not self.flap_reported:
                self.flap_reported = True
                self.violate("liveness", None, f"{when}: {roles}, registered {w.regs}")

    def finish(self) -> None:
        self.check_r4()
        self._check_dual_length()
        if self.liveness_at is not None:
            self.check_one_active("at the end")
        a, b = self.w.nodes
        if a.maint[0] != b.maint[0]:
            self.violate("maintenance_agreement", None, f"server1 {a.maint}, server2 {b.maint}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())
