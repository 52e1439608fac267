"""The checker: pure functions that judge a whole history against the SPEC. See README.md here for the rules.

``check(history)`` runs every rule and returns a ``Verdict``: for each rule how often it applied,
the worst time measured against its bound, and its violations. ``Verdict.report(history)`` prints
each violation with the faults around it, the seed and the command that replays the schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from hotstandby.hlc import ZERO, Timestamp
from lab.bounds import CTI_LAPSE_S, CTI_STOP_GRACE_S
from lab.nemesis.faults import NODES, PEER, Kind
from lab.nemesis.history import Applied, History, Sample, Write
from lab.nemesis.intervals import Intervals
from lab.nemesis.world import World, pair_edge, touches_link

TINY = 0.001  # overlaps shorter than a millisecond are rounding
START_S = 60.0  # a node process answers within this of its start (python imports on a loaded 2-core machine)
WATCH_S = 0.25  # the recorder notes an exit within a few of its 50 ms polls


@dataclass(frozen=True)
class Violation:
    rule: str
    at: float
    what: str


@dataclass
class Result:
    """One rule over the run: how many times its bound applied, the worst measure, the violations."""

    rule: str
    bound: float | None = None
    applied: int = 0
    starved: int = 0  # times it would have applied, but the machine starved the pair in its window
    worst: float | None = None
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is worth knowing but breaks no rule

    def measured(self, took: float) -> None:
        self.applied += 1
        self.worst = took if self.worst is None else max(self.worst, took)

    def fail(self, at: float, what: str) -> None:
        self.violations.append(Violation(self.rule, round(at, 3), what))


@dataclass
class Verdict:
    results: dict[str, Result]
    overlap_total: float  # CTI on both nodes, every episode
    overlap_longest: float
    overlap_episodes: int
    pause: Intervals = field(default_factory=Intervals)  # the episodes that began as a frozen node was thawed

    @property
    def violations(self) -> list[Violation]:
        return sorted((v for r in self.results.values() for v in r.violations), key=lambda v: v.at)

    def report(self, h: History, context: float = 10.0) -> str:
        """Each violation with the faults acting within ``context`` seconds before it (and 2 s after)."""
        w = World(h)
        lines = []
        for v in self.violations:
            lines.append(f"VIOLATION {v.rule} at t={v.at:.2f} s: {v.what}")
            for a in w.around(v.at - context, v.at + 2.0):
                lo, hi = w.loose(a)
                lines.append(f"    {lo:8.2f} .. {hi:8.2f}  {a.fault.describe()}"
                             f"{f' -> {a.node}' if a.fault.node in ('active', 'standby') else ''}"
                             f"{f' [{a.result}]' if a.result and a.result != 'ok' else ''}")
        if lines:
            mode = "with" if h.witness else "without"
            lines.append(f"seed {h.seed}, {h.seconds:g} s, {mode} witness; replay: {h.replay}")
        return "\n".join(lines)


def check(h: History) -> Verdict:
    w = World(h)
    allowed = split_brain_allowed(w)
    overlap = w.overlap()
    results = [
        check_overlap(w, overlap, allowed), check_stale(w, allowed), check_config(w), check_r1(w), check_r3(w),
        check_r4(w), check_r5(w), check_r7(w), check_r9(w), check_r10(w), check_cti_on_standby(w),
        check_cti_on_active(w), check_vip(w), check_settle(w), check_exits(w), check_recorder(w, overlap),
    ]
    woke = thaws(w)
    pause = Intervals.of((lo, hi) for lo, hi in overlap if any(woke[n].contains(lo) for n in NODES))
    return Verdict({r.rule: r for r in results}, overlap.total, overlap.longest(), len(overlap.spans), pause)


# -- split brain --------------------------------------------------------------------------------------
def split_brain_allowed(w: World) -> Intervals:
    """Without a witness, CTI may run on both nodes while they cannot hear each other (a fault between them, or a
    node too starved to answer) and until R4's bound (plus the margin) after they can again. With a witness,
    nowhere (a one-tick episode is judged apart)."""
    if w.h.witness:
        return Intervals()
    b = w.h.bounds
    return (w.pair_disturbed | w.unresponsive_any).grow(after=b.r4 + b.margin)


def pause_bound(w: World) -> float:
    """How long a thawed node may run CTI beside its peer (a witness run): its first tick observes (T), steps down
    and stops CTI (SIGTERM, the supervisor's grace, the manager's lapse); plus the margin."""
    b = w.h.bounds
    return b.timeout + CTI_STOP_GRACE_S + CTI_LAPSE_S + b.margin


def thaws(w: World) -> dict[str, Intervals]:
    """Per node, the moments a SIGSTOP ended (from the SIGCONT's start to its end plus T and the margin), or a span
    in which it did not answer (starved) ended: a node stalled past its lease wakes up still ACTIVE, and its CTI
    server resumes before its arbiter can step down."""
    b = w.h.bounds
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in NODES}
    for a in w.applied:
        if a.fault.kind is Kind.FREEZE and a.heal and a.node:
            out[a.node].append((a.heal[0], a.heal[1] + b.timeout + b.margin))
    for node in NODES:
        out[node] += [(hi, hi + b.timeout + b.margin) for _, hi in w.unresponsive(node)]
    return {n: Intervals.of(v) for n, v in out.items()}


def check_overlap(w: World, overlap: Intervals, allowed: Intervals) -> Result:
    """Split brain as the CTI manager saw it. With a witness, SPEC 12's one tick, for partitions; a process pause
    is not one (see ``pause_bound``): an episode that begins as a frozen node is thawed is judged by that bound and
    counted apart (the ``pause`` notes)."""
    b = w.h.bounds
    if w.h.witness:
        r = Result("split-brain", bound=b.one_tick)
        woke = thaws(w)
        for lo, hi in overlap:
            r.measured(hi - lo)
            paused = [n for n in NODES if woke[n].contains(lo)]
            if paused:
                r.notes.append(f"pause: t={lo:.2f} s, {hi - lo:.2f} s of CTI on both nodes as {paused[0]} was thawed")
                if hi - lo > pause_bound(w) + TINY:
                    r.fail(lo, f"CTI ran on both nodes for {hi - lo:.2f} s after {paused[0]} was thawed (bound "
                               f"{pause_bound(w):.2f} s)")
            elif hi - lo > b.one_tick + TINY:
                r.fail(lo, f"CTI ran on both nodes for {hi - lo:.2f} s (with a witness, at most one tick: "
                           f"{b.one_tick:g} s)")
        return r
    r = Result("split-brain", bound=0.0)
    for lo, hi in overlap:
        r.measured(hi - lo)
    for lo, hi in overlap.minus(allowed):
        if hi - lo > TINY:
            r.fail(lo, f"CTI ran on both nodes for {hi - lo:.2f} s outside a cut of the pair (and R4's "
                       f"{b.r4:g} s + {b.margin:g} s after it healed)")
    return r


def check_stale(w: World, allowed: Intervals) -> Result:
    """Epochs are fencing tokens. No registration below its own node's epoch at the time (a CTI server registering
    at an epoch its node has left behind: after R4 the survivor moves above its peer), ever. No registration below
    an epoch already registered (the manager's stale count), but where two nodes could not agree on epochs: a cut
    pair (no witness), or a node thawed after its lease expired, whose CTI resumes at its old epoch (witness). A
    registration at the epoch the other node registered with before is noted (without a witness, a node that never
    heard from its peer cannot know its last epoch)."""
    r = Result("stale-epoch")
    woke = thaws(w) if w.h.witness else {}
    held: dict[int, str] = {}  # epoch: the first node that registered with it
    for reg in sorted(w.h.registrations, key=lambda x: x.t):
        if reg.kind != "register":
            continue
        r.applied += 1
        first = held.setdefault(reg.epoch, reg.node)
        own = w.last_before(reg.node, reg.t)
        own_epoch = own.epoch if own is not None and own.epoch is not None else -1
        lagging = reg.epoch < own_epoch
        excused = allowed.contains(reg.t) or (reg.node in woke and woke[reg.node].contains(reg.t))
        if first != reg.node and not excused:
            r.notes.append(f"shared: t={reg.t:.2f} s, {reg.node} registered at epoch {reg.epoch}, as {first} had")
        if lagging:  # its own node's epoch: nothing about the peer can excuse it
            r.fail(reg.t, f"{reg.node} registered CTI with epoch {reg.epoch}, below its own epoch {own_epoch}")
            continue
        if not reg.stale:
            continue
        if excused:
            if reg.node in woke and woke[reg.node].contains(reg.t):
                r.notes.append(f"pause: t={reg.t:.2f} s, {reg.node} re-registered at epoch {reg.epoch} as it woke up")
            continue
        r.fail(reg.t, f"{reg.node} registered CTI with epoch {reg.epoch}, below an epoch already seen")
    return r


# -- config ----------------------------------------------------------------------------------------------
Key = tuple[Timestamp, str]


def _key(stamp: tuple[str, str] | None) -> Key | None:
    return None if stamp is None else (Timestamp.parse(stamp[0]), stamp[1])


def check_config(w: World) -> Result:
    """Acknowledged writes are never lost or reverted, and a write that followed another is ordered after it."""
    h = w.h
    r = Result("config")
    acked = [x for x in h.writes if x.acked and x.stamp]
    r.applied = len(acked)
    keys: dict[str, Key] = {"": (ZERO, "")}
    for x in acked:
        k = _key(x.stamp)
        assert k is not None
        keys[x.value] = k
    for value, at, origin in h.final_config.values():
        keys.setdefault(value, (Timestamp.parse(at), origin))
    # Lost: the pair ends on a value older (by the pair's own order, SPEC 5) than an acknowledged write.
    finals = {n: (v, (Timestamp.parse(at), o)) for n, (v, at, o) in h.final_config.items()}
    if len({v for v, _ in finals.values()}) > 1:
        r.fail(h.end, "the nodes disagree on vip_address at the end: " +
               ", ".join(f"{n}={v!r}" for n, (v, _) in sorted(finals.items())))
    for node, (value, fkey) in sorted(finals.items()):
        lost = [x for x in acked if keys[x.value] > fkey]
        if lost:
            r.fail(h.end, f"{node} ends with {value!r}: {len(lost)} acknowledged write(s) lost, the newest "
                          f"#{lost[-1].seq} {lost[-1].value!r} on {lost[-1].node} at t={lost[-1].sent:.2f}")
    # Reverted: a node's value moves to one the pair orders before the one it held.
    for node in NODES:
        prev: str | None = None
        for s in w.samples(node):
            if s.vip is None or s.vip == prev:
                continue
            if prev is not None and prev in keys and s.vip in keys and keys[s.vip] < keys[prev]:
                r.fail(s.recv, f"{node} went back from {prev!r} to the older {s.vip!r}")
            prev = s.vip
    # Reordered: a write made on a node that already held an earlier acknowledged write must be ordered after it.
    for later in acked:
        for earlier in acked:
            if earlier.seq >= later.seq or earlier.done is None or earlier.done > later.sent:
                continue
            if _knew(w, later.node, earlier, later.sent) and keys[later.value] <= keys[earlier.value]:
                r.fail(later.sent, f"write #{later.seq} on {later.node} is ordered before #{earlier.seq} "
                                   f"({earlier.node}), which {later.node} already held")
    return r


def _knew(w: World, node: str, x: Write, t: float) -> bool:
    if x.node == node or x.replicated:
        return True
    return any(s.vip == x.value and s.recv <= t for s in w.samples(node))


# -- the time bounds ---------------------------------------------------------------------------------------
def _only(*faults: Applied) -> Callable[[Applied], bool]:
    ids = {id(f) for f in faults}
    return lambda a: id(a) in ids


def _quiet(w: World, a: float, b: float, allowed: Callable[[Applied], bool] = lambda _: False) -> bool:
    return not w.quiet_except(a, b, allowed) and not w.maintenance().touches(a, b)


def _took(w: World, node: str, t0: float, pred: Callable[[Sample], bool], until: float) -> float | None:
    s = w.first(node, t0, pred, until=until)
    return None if s is None else s.recv - t0


def _judge(r: Result, took: float | None, limit: float, at: float, words: str) -> None:
    if took is None:
        r.applied += 1
        r.fail(at, f"{words}: not within {limit:.2f} s")
        return
    r.measured(took)
    if took > limit:
        r.fail(at, f"{words}: took {took:.2f} s > {limit:.2f} s")


def _is(role: str) -> Callable[[Sample], bool]:
    return lambda s: s.role == role


def check_r1(w: World) -> Result:
    """R1: the ACTIVE dies (kill -9, SIGSTOP) or is cut from its STANDBY; the STANDBY is ACTIVE within the bound,
    when for the whole window the death lasted and nothing else touched the survivor (its process, disk, LAN,
    witness link), no operator acted and maintenance was off. With a witness, a cut counts only when the ACTIVE
    cannot renew its lease either (cut from etcd too)."""
    h, b = w.h, w.h.bounds
    r = Result("R1", bound=b.r1)
    limit = b.r1 + b.margin
    for a in w.applied:
        k, t0 = a.fault.kind, w.strict(a)[0]
        if k in (Kind.KILL, Kind.FREEZE):
            dead = a.node
        elif k in (Kind.PARTITION, Kind.ONEWAY) and pair_edge(a.fault.edges):
            dead = next((n for n in NODES if w.role_at(n, t0) == "ACTIVE"), None)
        else:
            continue
        if dead is None or t0 + limit > h.end:
            continue
        alive = PEER[dead]
        if w.role_at(dead, t0) != "ACTIVE" or w.role_at(alive, t0) != "STANDBY":
            continue
        end = t0 + limit
        if k in (Kind.KILL, Kind.FREEZE):
            lasted = w.strict(a)[1] >= end
        else:
            lasted = w.link_cut(*NODES, strict=True).covers(t0, end)
            if h.witness:
                lasted = lasted and w.link_cut(dead, "etcd", strict=True).covers(t0, end)
        if not lasted:
            continue

        def on_dead_only(x: Applied, dead: str = dead, trigger: Applied = a) -> bool:
            if x is trigger:
                return True
            if x.fault.kind in (Kind.PARTITION, Kind.ONEWAY, Kind.LOSS):
                return all(dead in e for e in x.fault.edges)
            return x.fault.kind in (Kind.KILL, Kind.FREEZE, Kind.DISK, Kind.CTI_CRASH) and x.node == dead

        if not _quiet(w, t0, end, on_dead_only) or _touches_links(w, alive, t0, end):
            continue
        if w.starved.touches(t0, end):
            r.starved += 1
            continue
        _judge(r, _took(w, alive, t0, _is("ACTIVE"), end), limit, t0,
               f"{alive} ACTIVE after {a.fault.describe()}")
    return r


def _touches_links(w: World, node: str, a: float, b: float) -> bool:
    """Whether any cut or loss acted on ``node``'s LAN (its link to the LB) or, with a witness, its link to etcd."""
    others = ("lb", "etcd") if w.h.witness else ("lb",)
    return any(x.fault.kind in (Kind.PARTITION, Kind.ONEWAY, Kind.LOSS)
               and any(touches_link(x, node, o) for o in others) for x in w.around(a, b))


def _unhealthy_server1(w: World, a: Applied) -> float | None:
    """When a fault that kept server1 from being healthy (to its peer) was over: None if it is not one."""
    k = a.fault.kind
    if a.heal is None:
        return None
    if k in (Kind.KILL, Kind.TERM) and a.node == "server1":
        return w.serving_after("server1", a.heal[1])
    if k in (Kind.FREEZE, Kind.DISK) and a.node == "server1":
        return a.heal[1]
    if k in (Kind.PARTITION, Kind.ONEWAY, Kind.LOSS) and any("server1" in e for e in a.fault.edges):
        return a.heal[1]
    return None


def check_r3(w: World) -> Result:
    """R3: server1 healthy again while server2 is ACTIVE (not by a manual switch): server1 ACTIVE within N·I + I,
    when nothing but config writes and clock steps happened in the window and maintenance was off."""
    h, b = w.h, w.h.bounds
    r = Result("R3", bound=b.r3)
    limit = b.r3 + b.margin
    for a in w.applied:
        t0 = _unhealthy_server1(w, a)
        if t0 is None or t0 + limit > h.end:
            continue
        s2 = w.first("server2", t0, lambda s: True, until=t0 + 1)
        s1 = w.first("server1", t0, lambda s: True, until=t0 + 1)
        if s2 is None or s1 is None or s2.role != "ACTIVE" or s2.cause == "manual" or s1.role != "STANDBY":
            continue
        if not _quiet(w, t0, t0 + limit, _only(a)):
            continue
        if w.starved.touches(t0, t0 + limit):
            r.starved += 1
            continue
        _judge(r, _took(w, "server1", t0, _is("ACTIVE"), t0 + limit), limit, t0,
               f"server1 ACTIVE again (failback) after {a.fault.describe()} healed")
    return r


def check_r4(w: World) -> Result:
    """R4: the pair heals with both nodes ACTIVE: one ACTIVE again within 2N·I + I, when the window is quiet."""
    h, b = w.h, w.h.bounds
    r = Result("R4", bound=b.r4)
    limit = b.r4 + b.margin
    for a in w.applied:
        if a.heal is None or not w.pair_disturbed.touches(*w.loose(a)):
            continue
        k = a.fault.kind
        if not (k is Kind.FREEZE or (k in (Kind.PARTITION, Kind.ONEWAY, Kind.LOSS) and pair_edge(a.fault.edges))):
            continue
        t0 = a.heal[1]
        if t0 + limit > h.end:
            continue
        firsts = [w.first(n, t0, lambda s: True, until=t0 + 1) for n in NODES]
        if any(s is None or s.role != "ACTIVE" for s in firsts):
            continue
        if not _quiet(w, t0, t0 + limit, _only(a)):
            continue
        if w.starved.touches(t0, t0 + limit):
            r.starved += 1
            continue
        tooks = [t for n in NODES if (t := _took(w, n, t0, _is("STANDBY"), t0 + limit)) is not None]
        _judge(r, min(tooks) if tooks else None, limit, t0, f"one ACTIVE again after {a.fault.describe()} healed")
    return r


def check_r5(w: World) -> Result:
    """R5: the ACTIVE's link to the LB (its LAN probe target) is cut: it is STANDBY within N·I + T + I, when the
    cut lasted, the node ran unfrozen throughout and maintenance was off (other faults cannot stop R5)."""
    h, b = w.h, w.h.bounds
    r = Result("R5", bound=b.r5)
    limit = b.r5 + b.margin
    for a in w.applied:
        if a.fault.kind not in (Kind.PARTITION, Kind.ONEWAY):
            continue
        t0 = w.strict(a)[0]
        end = t0 + limit
        for node in NODES:
            if not touches_link(a, node, "lb") or end > h.end or w.role_at(node, t0) != "ACTIVE":
                continue
            cut = w.link_cut(node, "lb", strict=True)
            earlier = [x for x in w.applied if x is not a and x.fault.kind in (Kind.PARTITION, Kind.ONEWAY)
                       and touches_link(x, node, "lb") and w.loose(x)[0] <= t0 and w.loose(x)[1] >= t0 - 2 * b.interval]
            if not cut.covers(t0, end) or earlier:
                continue  # the LAN was already lost: the earlier cut is the trigger
            if (w.frozen(node) | w.down(node)).touches(t0, end) or w.maintenance().touches(t0, end):
                continue
            _judge(r, _took(w, node, t0, _is("STANDBY"), end), limit, t0,
                   f"{node} STANDBY after losing its LAN ({a.fault.describe()})")
    return r


def check_r7(w: World) -> Result:
    """R7: a switch answered 200 has its target ACTIVE within one I, when the pair was quiet from N·I + I before the
    request to the end of the window (a 409 is the SPEC's refusal; the summary counts them)."""
    h, b = w.h, w.h.bounds
    r = Result("R7", bound=b.r7)
    limit = b.r7 + b.margin
    lead = b.failures * b.interval + b.interval
    for a in w.applied:
        if a.fault.kind not in (Kind.SWITCH, Kind.FORCE) or a.status != 200 or a.target is None or a.start is None:
            continue
        t0 = a.start[0]
        if t0 + limit > h.end or not _quiet(w, t0 - lead, t0 + limit, _only(a)):
            continue
        if w.starved.touches(t0 - lead, t0 + limit):
            r.starved += 1
            continue
        _judge(r, _took(w, a.target, t0, _is("ACTIVE"), t0 + limit), limit, t0,
               f"{a.target} ACTIVE after {a.fault.describe()}")
    return r


def check_r9(w: World) -> Result:
    """R9: the CTI server killed on the ACTIVE is registered again within one I, when the node stayed ACTIVE and
    nothing else happened in the window."""
    h, b = w.h, w.h.bounds
    r = Result("R9", bound=b.r9_respawn)
    limit = b.r9_respawn + b.margin
    for a in w.applied:
        if a.fault.kind is not Kind.CTI_CRASH or a.node is None or a.result != "ok":
            continue
        t0 = w.strict(a)[0]
        if t0 + limit > h.end or not w.spans(a.node, "ACTIVE").covers(t0, t0 + limit):
            continue
        if not _quiet(w, t0, t0 + limit, _only(a)):
            continue
        again = [x.t for x in h.registrations if x.kind == "register" and x.node == a.node and x.t >= t0]
        _judge(r, min(again) - t0 if again else None, limit, t0, f"CTI registered again on {a.node} after its crash")
    return r


def check_r10(w: World) -> Result:
    """R10: SIGTERM to the ACTIVE: its process is gone within 5 s (always); its STANDBY peer is ACTIVE within 2 s
    when the pair was quiet from N·I + I before the signal to the end of the window."""
    h, b = w.h, w.h.bounds
    r = Result("R10", bound=b.r10_peer)
    lead = b.failures * b.interval + b.interval
    for a in w.applied:
        if a.fault.kind is not Kind.TERM or a.node is None:
            continue
        t0 = w.strict(a)[0]
        node, peer = a.node, PEER[a.node]
        if w.role_at(node, t0) != "ACTIVE":
            continue
        exits = [x.t for x in h.life if x.node == node and x.event == "exit" and x.t >= t0]
        gone = min(exits) - t0 if exits else None
        if gone is None or gone > b.r10_exit + b.margin:
            r.fail(t0, f"{node} still running {b.r10_exit + b.margin:.2f} s after SIGTERM"
                   if gone is None else f"{node} took {gone:.2f} s to exit after SIGTERM (> {b.r10_exit:g} s + margin)")
        limit = b.r10_peer + b.margin
        if t0 + limit > h.end or w.role_at(peer, t0) != "STANDBY":
            continue
        if not _quiet(w, t0 - lead, t0 + limit, _only(a)) or w.down(peer).touches(t0 - lead, t0 + limit):
            continue
        if w.starved.touches(t0 - lead, t0 + limit):
            r.starved += 1
            continue
        _judge(r, _took(w, peer, t0, _is("ACTIVE"), t0 + limit), limit, t0, f"{peer} ACTIVE after SIGTERM to {node}")
    return r


def check_cti_on_standby(w: World) -> Result:
    """R9: CTI runs only on the ACTIVE: a node seen STANDBY while the manager holds its registration, for longer
    than the supervisor's stop grace plus the lapse (plus the margin)."""
    b = w.h.bounds
    limit = CTI_STOP_GRACE_S + CTI_LAPSE_S + b.margin
    r = Result("CTI-on-standby", bound=CTI_STOP_GRACE_S + CTI_LAPSE_S)
    holdings = w.holdings()
    for node in NODES:
        for lo, hi in holdings.get(node, Intervals()) & w.spans(node, "STANDBY"):
            r.measured(hi - lo)
            if hi - lo > limit:
                r.fail(lo, f"{node} held a CTI registration while STANDBY for {hi - lo:.2f} s")
    return r


def check_vip(w: World) -> Result:
    """The VIP never sends a request to a node seen STANDBY throughout the LB's follow time (plus the margin)
    before the request and until its answer."""
    b = w.h.bounds
    limit = b.lb_follow + b.margin
    r = Result("VIP", bound=b.lb_follow)
    standby = {n: w.spans(n, "STANDBY") for n in NODES}
    last_fail = -1e9
    for v in w.h.vip:
        if v.node not in standby:
            continue
        r.applied += 1
        if standby[v.node].covers(v.sent - limit, v.done) and v.sent - last_fail > 5.0:
            last_fail = v.sent
            r.fail(v.sent, f"the VIP sent a request to {v.node}, STANDBY for more than {limit:.2f} s")
    return r


def _storm_heals(w: World) -> list[tuple[float, float, bool]]:
    """(healed, next storm's start, whether the storm came between the nodes) for each storm: healed is when its
    last fault was undone and every node it stopped was serving again."""
    h = w.h
    out = []
    storms = list(h.schedule.storms)
    for i, (first, last) in enumerate(storms):
        faults = [a for a in w.applied if first <= a.fault.at <= last and a.fault.kind is not Kind.CONFIG]
        healed = max((w.loose(a)[1] for a in faults), default=last)
        for a in faults:
            if a.fault.kind in (Kind.KILL, Kind.TERM) and a.heal and a.node:
                serving = w.serving_after(a.node, a.heal[1])
                healed = max(healed, serving if serving is not None else h.end)
        if i + 1 == len(storms):
            healed = max(healed, h.last_heal)
        between = any(w.pair_disturbed.touches(*w.loose(a)) for a in faults)
        out.append((healed, storms[i + 1][0] if i + 1 < len(storms) else h.end, between))
    return out


def check_settle(w: World) -> Result:
    """After every storm: exactly one ACTIVE within R1's bound of the heal (R4's when the storm came between the
    nodes: its heal may find, or make, two ACTIVE), and so until the next storm: never two ACTIVE, never none for
    longer than I (+ margin). A switch in a quiet period is noted, not failed: R2 allows one after N probes slower
    than T, which a starved machine produces without any fault."""
    b = w.h.bounds
    r = Result("settle", bound=b.r1)
    for t0, nxt, between in _storm_heals(w):
        limit = (b.r4 if between else b.r1) + b.margin
        if nxt - t0 < limit or w.maintenance().touches(t0, t0 + limit):
            continue  # a quiet period too short to judge, or the operator paused the pair (R11)
        if w.starved.touches(t0, nxt):
            r.starved += 1
            continue
        deadline = t0 + limit
        gap = b.interval + b.margin  # a handover leaves no node ACTIVE for a moment
        last_bad, none_since = t0, None
        for t, roles in _merged(w, t0, nxt):
            actives = sum(1 for v in roles.values() if v == "ACTIVE")
            if actives == 0:
                none_since = t if none_since is None else none_since
                continue
            if none_since is not None and t - none_since > gap:
                last_bad = t
                if t >= deadline:
                    r.fail(none_since, f"no node ACTIVE for {t - none_since:.2f} s in a quiet period")
            none_since = None
            if actives == 2:
                last_bad = t
                if t >= deadline:
                    r.fail(t, f"both nodes ACTIVE {t - t0:.2f} s after the storm healed (bound {limit:.2f} s)")
                    break
        r.measured(last_bad - t0)
        for node in NODES:
            prev = w.role_at(node, deadline)
            for smp in w.samples(node):
                if deadline <= smp.recv <= nxt and smp.role is not None and smp.role != prev:
                    if prev is not None and smp.cause != "failback":
                        r.notes.append(f"t={smp.recv:.2f} s: {node} went {smp.role} (cause {smp.cause}) in a quiet "
                                       "period")
                    prev = smp.role
    return r


def _merged(w: World, a: float, b: float) -> Iterable[tuple[float, dict[str, str | None]]]:
    """Both nodes' answered polls in [a, b] in the order their answers came, with the latest role of each."""
    rows = sorted((s.recv, n, s.role) for n in NODES for s in w.samples(n) if a <= s.recv <= b and s.role)
    state: dict[str, str | None] = {n: w.role_at(n, a) for n in NODES}
    for t, n, role in rows:
        state[n] = role
        yield t, dict(state)


def check_cti_on_active(w: World) -> Result:
    """R9: the ACTIVE runs CTI: a node seen ACTIVE without a live registration for longer than one I (a respawn's
    bound) plus the margin."""
    b = w.h.bounds
    limit = b.r9_respawn + b.margin
    r = Result("CTI-on-active", bound=b.r9_respawn)
    holdings = w.holdings()
    for node in NODES:
        for lo, hi in w.spans(node, "ACTIVE").minus(holdings.get(node, Intervals())):
            r.measured(hi - lo)
            if hi - lo > limit:
                r.fail(lo, f"{node} ACTIVE without CTI registered for {hi - lo:.2f} s")
    return r


def check_recorder(w: World, overlap: Intervals) -> Result:
    """The recorder's journal agrees with the CTI manager's own counters at the end (else it missed entries and
    the history cannot be judged): overlap seconds within 0.1 s, and the same number of stale registrations."""
    r = Result("recorder")
    m = w.h.manager
    if "overlap_seconds_total" not in m:
        return r
    r.applied = 1
    stale = sum(1 for x in w.h.registrations if x.kind == "register" and x.stale)
    if abs(float(m["overlap_seconds_total"]) - overlap.total) > 0.1 or int(m["stale_epoch_total"]) != stale:
        r.fail(w.h.end, f"the journal says {overlap.total:.2f} s of overlap and {stale} stale registrations, the CTI "
                        f"manager {float(m['overlap_seconds_total']):.2f} s and {m['stale_epoch_total']}")
    return r


def check_exits(w: World) -> Result:
    """A node process exits only when the nemesis killed or stopped it (or refused to start on a full disk), and a
    started node serves within START_S unless stopped again."""
    h = w.h
    r = Result("process")
    for x in h.life:
        if x.event == "start":
            r.applied += 1
            stopped = min((y.t for y in h.life if y.node == x.node and y.event == "exit" and y.t > x.t), default=None)
            deadline = x.t + START_S
            if deadline > h.end or (stopped is not None and stopped < deadline):
                continue
            if w.first(x.node, x.t, lambda s: True, until=deadline) is None:
                r.fail(x.t, f"{x.node} started but did not serve within {START_S:g} s")
            continue
        meant = any(a.node == x.node and a.fault.kind in (Kind.KILL, Kind.TERM) and
                    w.loose(a)[0] - 0.01 <= x.t <= w.loose(a)[1] + WATCH_S for a in w.applied)
        started = max((y.t for y in h.life if y.node == x.node and y.event == "start" and y.t <= x.t), default=0.0)
        disk = any(a.fault.kind is Kind.DISK and a.node == x.node and w.loose(a)[0] <= x.t and w.loose(a)[1] >= started
                   for a in w.applied)  # it started (or was starting) while its disk was full
        if not meant and not (disk and x.detail == "2") and x.detail != "final":
            r.fail(x.t, f"{x.node} exited by itself (status {x.detail})")
    return r
