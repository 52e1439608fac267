"""When a node switches, and what happens then: every role change as a plan made by pure functions.

    decide(state, obs, settings)          -> Decision   a tick: R1-R8, R11, R12 (witness), R13 (cannot persist)
    plan_tick(state, obs, settings)       -> Plan       the tick's decision and the steps that carry it out
    plan_switch(state, target, ...)       -> Plan       R7: its refusals, its ordered steps, its rollback
    plan_stop(state, settings)            -> Plan       R10: which peer, which steps
    plan_role_command(state, role, ...)   -> Plan       the peer tells us our role

A plan is refused (the reason is the 409) or a tuple of steps (``hotstandby.model``: Commit, Change,
StopCti, StartCti, ReleaseKey, TendKey, Tell) that ``hotstandby.carry.carry_out`` runs in order for
the arbiter and for the simulator alike: a role is persisted before any effect of it, a promotion
takes the witness key first. ``check_invariants`` checks every decision and ``check_plan`` every
plan, so no role change bypasses them. Nothing here does I/O, reads a clock or sleeps. Each
``reason`` is the sentence that goes verbatim into the fault-tolerant log when the role changes.
"""

from __future__ import annotations

from collections.abc import Callable

from hotstandby.model import (
    Action,
    Cause,
    Change,
    Commit,
    Decision,
    NodeState,
    Observation,
    PeerView,
    Plan,
    Rank,
    ReleaseKey,
    Role,
    StartCti,
    Step,
    StopCti,
    Tell,
    TendKey,
    WitnessView,
    rank_of,
)
from hotstandby.settings import ClusterSettings

TO_ACTIVE = "SWITCH THIS SERVER TO PRIMARY"  # the vendor calls the ACTIVE role "primary"
TO_STANDBY = "SWITCH THIS SERVER TO BACKUP"
PROMOTE_ANSWER_S = 1.0  # the least a "take ACTIVE" command waits for its answer (see tell_timeout)
R10_ANSWER_S = 1.5  # the most R10's handover waits for it: the peer must be ACTIVE within 2 s whatever T is


class InvariantError(AssertionError):
    """A decision broke one of the core's invariants: a bug, never a runtime condition."""


def promote(state: NodeState, *, rule: str, cause: Cause, why: str, demote_peer: bool = True,
            epoch: int | None = None) -> Decision:
    """Become ACTIVE in a new epoch above anything seen; stop the peer's CTI first when it may run."""
    known = max(state.epoch, state.peer.epoch if state.peer else 0)
    new_epoch = max(known + 1, epoch or 0)
    actions = ((Action.DEMOTE_PEER,) if demote_peer else ()) + (Action.START_CTI,)
    new = state.evolve(role=Role.ACTIVE, epoch=new_epoch, cause=cause, dual_active=0, vip_count=0, both_standby=0)
    return Decision(new, f"{TO_ACTIVE}, {rule} {why}", actions, rule, why=why)


def demote(state: NodeState, *, rule: str, cause: Cause, why: str, handover: bool = False) -> Decision:
    """Become STANDBY and stop CTI; with ``handover`` then ask the peer to take ACTIVE."""
    actions = (Action.STOP_CTI,) + ((Action.PROMOTE_PEER,) if handover else ())
    new = state.evolve(role=Role.STANDBY, cause=cause, dual_active=0, vip_count=0, both_standby=0)
    return Decision(new, f"{TO_STANDBY}, {rule} {why}", actions, rule, why=why)


def observe(state: NodeState, obs: Observation) -> tuple[NodeState, tuple[str, ...]]:
    """Fold one tick's observations into the counters; returns the new state and probe log lines."""
    log: list[str] = []
    peer_rank = rank_of(state.peer_id).value if (state.peer_failures or not obs.probe_ok or obs.lan_ok is False
                                                 or (obs.peer and obs.peer.role is Role.ACTIVE)) else ""
    if obs.probe_ok:
        if state.peer_failures:
            log.append(f"Check {peer_rank} server : recovered after {state.peer_failures} failures")
        failures, successes = 0, state.peer_successes + 1
    else:
        failures, successes = state.peer_failures + 1, 0
        log.append(f"Check {peer_rank} server : failure detected, count = {failures}")
    lan_failures = 0
    if obs.lan_ok is False:
        lan_failures = state.lan_failures + 1
        log.append(f"Check LAN : failure detected, count = {lan_failures}")
    peer = obs.peer or state.peer
    both_active = obs.peer is not None and obs.peer.role is Role.ACTIVE and state.role is Role.ACTIVE
    dual = state.dual_active + 1 if both_active else 0
    if both_active:
        log.append(f"Check {peer_rank} server : both servers ACTIVE, count = {dual}")
    both_standby = (
        state.both_standby + 1
        if obs.probe_ok and obs.peer is not None and obs.peer.role is Role.STANDBY and state.role is Role.STANDBY
        else 0
    )
    if obs.vip_node is None:
        vip_node, vip_count = None, 0
    else:
        vip_node = obs.vip_node
        vip_count = state.vip_count + 1 if obs.vip_node == state.vip_node else 1
    epoch = state.epoch
    if obs.peer is not None:
        if state.role is Role.STANDBY:
            epoch = max(epoch, obs.peer.epoch)  # the cluster epoch converges on the exchange
        elif obs.peer.role is Role.STANDBY and (
            obs.peer.epoch > epoch or (obs.peer.epoch == epoch and state.dual_active)
        ):
            # The ACTIVE node holds the highest epoch: after R4 it moves above the one that stepped
            # down. Not on a plain equal epoch: the STANDBY mirrors ours, so that would bump every tick.
            epoch = obs.peer.epoch + 1
    new = state.evolve(
        peer_failures=failures, peer_successes=successes, probed=True, lan_failures=lan_failures,
        peer=peer, dual_active=dual, vip_node=vip_node, vip_count=vip_count, epoch=epoch,
        both_standby=both_standby,
    )
    return new, tuple(log)


def decide(state: NodeState, obs: Observation, settings: ClusterSettings) -> Decision:
    """One tick: fold in what was observed, then apply the first rule that fires."""
    seen, log = observe(state, obs)
    decision = _persist_gate(seen, obs, _witness_gate(seen, obs, settings, _rules(seen, obs, settings)))
    check_invariants(state, decision, settings, obs)
    return decision._replace(log=log) if log else decision


def _rules(s: NodeState, obs: Observation, cfg: ClusterSettings) -> Decision:
    n = cfg.failures_to_switch
    me, peer = s.node_id, s.peer_id
    if not cfg.enabled:
        if s.role is Role.ACTIVE:
            return Decision(s, f"no action: hot standby disabled, {me} runs standalone ACTIVE")
        return promote(s, rule="R0", cause=Cause.STANDALONE, why="hot standby disabled: standalone ACTIVE",
                       demote_peer=False)
    w = obs.witness
    if s.role is Role.ACTIVE and w is not None:
        # R12 first, maintenance or not: it moves ACTIVE nowhere, it stops a node that can no longer show
        # it is the only one (in a partition the nodes may not even agree that maintenance is on).
        if w.reachable and w.holder == peer:
            return demote(s, rule="R12", cause=Cause.WITNESS,
                          why=f"the witness names {peer} ACTIVE: it holds the key, {me} does not")
        if witness_lost(w, cfg, me) and not peer_confirms_standby(obs):
            return demote(s, rule="R12", cause=Cause.WITNESS,
                          why=f"witness lost: {_loss_words(w, cfg, me)}, and {peer} does not confirm STANDBY; "
                              "stepping down before the lease can expire")
    if s.maintenance:
        return Decision(s, f"PAUSE: maintenance on, no automatic switch; {me} stays {s.role}")
    lan_now = obs.lan_ok is not False
    vip_to_me = cfg.test_vip_destination and s.vip_node == me
    vip_to_peer = cfg.test_vip_destination and s.vip_node == peer
    live = obs.peer  # the peer as it answered this tick, if it did

    if s.role is Role.ACTIVE:
        if s.lan_failures >= n:
            return demote(s, rule="R5", cause=Cause.LAN_LOST,
                          why=f"LAN lost: all LAN probes failed {s.lan_failures} consecutive times")
        if s.dual_active >= n and _steps_down_on_dual(s, cfg):
            by = f"the VIP routes to {peer}" if vip_to_peer else f"{me} is the backup"
            return demote(s, rule="R4", cause=Cause.DUAL_ACTIVE,
                          why=f"both servers ACTIVE for {s.dual_active} exchanges; {by}")
        if (
            cfg.auto_failback and s.rank is Rank.BACKUP and s.cause is not Cause.MANUAL
            and live is not None and live.role is Role.STANDBY and live.can_be_active
            and not live.maintenance and s.peer_successes >= n
            and (not cfg.test_vip_destination or vip_to_peer)
        ):
            return demote(s, rule="R3", cause=Cause.FAILBACK, handover=True,
                          why=f"failback: {peer} healthy for {s.peer_successes} consecutive probes")
        if obs.store_problem is not None:
            healthy_peer = s.peer_failures == 0 and s.peer is not None and s.peer.can_be_active
            return demote(s, rule="R13", cause=Cause.CANNOT_PERSIST, handover=healthy_peer,
                          why=f"cannot persist the role ({obs.store_problem}); handing over")
        failsafe = ""
        if w is not None and witness_lost(w, cfg, me):
            failsafe = f"; failsafe: witness lost ({_loss_words(w, cfg, me)}) but {peer} confirms STANDBY"
        return Decision(s, f"no action: {me} is ACTIVE ({s.rank}), epoch {s.epoch}, {_peer_words(s, n)}{failsafe}")

    # STANDBY from here on.
    if not lan_now:
        return Decision(s, f"no action: {me} is STANDBY and its LAN check fails; it cannot take ACTIVE")
    if s.peer_failures >= n:
        return promote(s, rule="R1", cause=Cause.FAILOVER,
                       why=f"failover: maximum heart beat fails, {peer} failed {s.peer_failures} "
                           "consecutive probes")
    if cfg.test_vip_destination and vip_to_me and s.vip_count >= n:
        return promote(s, rule="R8", cause=Cause.VIP,
                       why=f"the VIP routes to {me} for {s.vip_count} consecutive checks")
    if live is not None and live.role is Role.STANDBY and s.peer_failures == 0:
        # A primary the operator switched away from (cause manual) waits N+1 exchanges: the view it
        # holds may predate the target's promotion, which is one message behind the switch. It only
        # takes ACTIVE back if the switch's promotion was lost and the pair stays without an ACTIVE.
        if s.rank is Rank.PRIMARY and (s.cause is not Cause.MANUAL or s.both_standby > n):
            return promote(s, rule="R6", cause=Cause.NO_ACTIVE, demote_peer=False,
                           why=f"no ACTIVE server: {peer} is STANDBY, the primary takes ACTIVE")
        if not live.can_be_active:
            return promote(s, rule="R6", cause=Cause.NO_ACTIVE, demote_peer=False,
                           why=f"no ACTIVE server: {peer} is STANDBY and cannot be ACTIVE")
    return Decision(s, f"no action: {me} is STANDBY ({s.rank}), epoch {s.epoch}, {_peer_words(s, n)}")


def witness_lost(w: WitnessView, cfg: ClusterSettings, me: str) -> bool:
    """R12: the last successful renewal is L − I old (or there never was one): the next tick may be too late.
    Or the witness does not answer and its last read did not name ``me`` as the key's holder: a fresh renewal
    says nothing of the key (ours lapsed in a pause or an outage and a new lease was granted), and the key
    cannot be taken back."""
    if w.renewal_age_s is None or w.lease_ttl_s is None:
        return True
    if not w.reachable and w.holder != me:
        return True
    return w.renewal_age_s >= w.lease_ttl_s - cfg.heartbeat_interval_s


def peer_confirms_standby(obs: Observation) -> bool:
    """The failsafe: the peer said, over the direct link and on this very tick, that it is STANDBY."""
    return obs.peer is not None and obs.peer.role is Role.STANDBY


def _loss_words(w: WitnessView, cfg: ClusterSettings, me: str) -> str:
    if w.renewal_age_s is None or w.lease_ttl_s is None:
        return "no lease renewed yet"
    margin = w.lease_ttl_s - cfg.heartbeat_interval_s
    if w.renewal_age_s < margin and not w.reachable and w.holder != me:
        return f"the key was not {me}'s at the last read and the witness does not answer to take it back"
    return f"last lease renewal {w.renewal_age_s:.2f} s ago, L − I = {margin:g} s"


def _witness_gate(s: NodeState, obs: Observation, cfg: ClusterSettings, d: Decision) -> Decision:
    """R12: a STANDBY promotes only when it may take the key: the witness answers and no peer holds it.

    The take itself is a transaction at the edge (it may still fail there); this spares the tick a
    doomed attempt and says why in the tick's sentence."""
    w = obs.witness
    if w is None or not cfg.enabled or s.role is Role.ACTIVE or d.state.role is not Role.ACTIVE:
        return d
    if not w.reachable:
        why = "the witness is unreachable"
    elif w.holder == s.peer_id:
        why = f"the witness key is held by {s.peer_id} (its lease has not expired)"
    else:
        return d
    return Decision(s, f"no action: {s.node_id} would take ACTIVE ({d.rule}) but {why}: no promotion without the key")


def _persist_gate(s: NodeState, obs: Observation, d: Decision) -> Decision:
    """R13: a node that cannot persist a role does not take one (SPEC 4: a role is durable before it acts)."""
    if obs.store_problem is None or s.role is Role.ACTIVE or d.state.role is not Role.ACTIVE:
        return d
    return Decision(s, f"no action: cannot take ACTIVE, the database is not writable ({obs.store_problem})")


def with_witness_epoch(d: Decision, epoch: int) -> Decision:
    """A promotion whose key was taken: the epoch becomes the fencing token the witness wrote."""
    if epoch < d.state.epoch:
        raise InvariantError(f"witness epoch {epoch} below the promotion's {d.state.epoch}")
    return d._replace(state=d.state.evolve(epoch=epoch))


def not_promoted(kept: NodeState, d: Decision, why: str) -> Decision:
    """A promotion that cannot happen at the edge (no key, no disk): ``kept`` is the state without it (for a
    tick, what it observed: ``observe(before, obs)[0]``, so the failure counts go on)."""
    if kept.role is not Role.STANDBY:
        raise InvariantError("only a STANDBY is refused a promotion")
    return Decision(kept, f"no action: {kept.node_id} would take ACTIVE ({d.rule}) but {why}", (), None, d.log)


def witness_refused(kept: NodeState, d: Decision, why: str) -> Decision:
    """A promotion whose key could not be taken does not happen."""
    return not_promoted(kept, d, f"cannot take the witness key: {why}")


def _steps_down_on_dual(s: NodeState, cfg: ClusterSettings) -> bool:
    """R4: the node the VIP does not route to steps down; without a VIP answer, the backup."""
    if cfg.test_vip_destination and s.vip_node is not None:
        return s.vip_node != s.node_id
    return s.rank is Rank.BACKUP


def _peer_words(s: NodeState, n: int) -> str:
    role = s.peer.role.value if s.peer else "unknown"
    if s.peer_failures:
        return f"peer {s.peer_id} {role}, {s.peer_failures}/{n} consecutive failures"
    return f"peer {s.peer_id} {role}"


def on_role_command(state: NodeState, role: Role, epoch: int, *, cause: Cause, why: str,
                    can_be_active: bool = True) -> Decision:
    """The peer tells us our role (handover, failback, manual switch, or it promoted itself)."""
    if role is Role.STANDBY:
        if epoch < state.epoch:
            raise StaleCommand(f"STANDBY command carries epoch {epoch} below ours ({state.epoch})")
        if state.role is Role.STANDBY:
            return Decision(state.evolve(epoch=max(state.epoch, epoch), cause=cause, both_standby=0),
                            f"no action: already STANDBY ({why})")
        return demote(state.evolve(epoch=max(state.epoch, epoch)), rule="R7" if cause is Cause.MANUAL else "R1",
                      cause=cause, why=why)
    if not can_be_active:
        raise StaleCommand("cannot take ACTIVE: LAN check failing or role cannot be persisted")
    if state.role is Role.ACTIVE:
        # Take the command's cause even so: after a switch to a node that was already ACTIVE (a dual
        # ACTIVE not yet resolved), cause manual is what keeps R3 from undoing the operator's choice.
        return Decision(state.evolve(epoch=max(state.epoch, epoch), cause=cause),
                        f"no action: already ACTIVE ({why})")
    rule = {Cause.MANUAL: "R7", Cause.FAILBACK: "R3", Cause.SHUTDOWN: "R10"}.get(cause, "R7")
    return promote(state, rule=rule, cause=cause, why=why, demote_peer=False, epoch=epoch)


class StaleCommand(ValueError):
    """A role command that cannot be obeyed safely; the reason goes back as a 409."""


def restart_state(node_id: str, stored_epoch: int, maintenance: bool) -> NodeState:
    """A (re)started node: STANDBY whatever it stored, keeping only the epoch (and maintenance)."""
    return NodeState(node_id=node_id, role=Role.STANDBY, epoch=stored_epoch, cause=Cause.START,
                     maintenance=maintenance)


def check_invariants(before: NodeState, d: Decision, cfg: ClusterSettings, obs: Observation | None = None,
                     *, commanded: bool = False) -> None:
    """Raise InvariantError when a decision breaks a rule the core must never break (``commanded``: an
    operator's or the peer's command, which maintenance does not pause)."""
    after = d.state
    w = obs.witness if obs is not None else None
    if (w is not None and obs is not None and cfg.enabled and before.role is Role.ACTIVE
            and after.role is Role.ACTIVE and witness_lost(w, cfg, before.node_id) and not peer_confirms_standby(obs)):
        raise InvariantError("stayed ACTIVE with the witness lost and no STANDBY peer to vouch for it")
    if (w is not None and cfg.enabled and not before.maintenance and before.role is Role.STANDBY
            and after.role is Role.ACTIVE and not w.reachable):
        raise InvariantError("promoted while the witness was unreachable")
    if after.epoch < before.epoch:
        raise InvariantError(f"epoch went back from {before.epoch} to {after.epoch}")
    if Action.START_CTI in d.actions and after.role is not Role.ACTIVE:
        raise InvariantError("CTI started on a node that is not ACTIVE")
    if after.role is Role.STANDBY and Action.STOP_CTI not in d.actions and before.role is Role.ACTIVE:
        raise InvariantError("demoted without stopping CTI")
    if d.rule == "R1" and after.role is Role.ACTIVE and after.peer_failures < cfg.failures_to_switch:
        raise InvariantError(f"promoted on {after.peer_failures} failures, fewer than N")
    if d.switched and before.maintenance and cfg.enabled and not commanded and d.rule != "R12":
        raise InvariantError("automatic switch during maintenance")
    if after.role is Role.ACTIVE and before.role is Role.STANDBY and after.epoch <= before.epoch:
        raise InvariantError("promotion without a new epoch")


# -- plans: what happens when a node switches --------------------------------------------------


def tell_timeout(role: Role, cfg: ClusterSettings) -> float:
    """How long a role command waits for its answer. Telling the peer to stand down stays bounded by T: a
    promotion must not wait on a peer that may be gone. Asking it to take ACTIVE waits at least
    PROMOTE_ANSWER_S: a loaded peer that persists and answers in 0.15 s at T = 0.1 s has taken ACTIVE, and
    reading that as "no" (then taking ACTIVE back) would leave both ACTIVE until R4."""
    t = cfg.heartbeat_timeout_s
    return max(t, PROMOTE_ANSWER_S) if role is Role.ACTIVE else t


def _effects(role: Role, actions: tuple[Action, ...], cause: Cause, cfg: ClusterSettings, *,
             must: str | None = None, timeout: float | None = None) -> tuple[Step, ...]:
    """A role change's actions as steps, in order: CTI, the witness key once CTI is down, the peer.
    ``must``: the peer must take the ACTIVE we hand over, else the plan stops refused (and rolls back)."""
    steps: list[Step] = []
    for a in actions:
        if a is Action.DEMOTE_PEER:
            steps.append(Tell(Role.STANDBY, cause, None, tell_timeout(Role.STANDBY, cfg)))
        elif a is Action.STOP_CTI:
            steps.append(StopCti())
            if role is Role.STANDBY:
                steps.append(ReleaseKey())  # our CTI is down: the peer may take the key (a handover)
        elif a is Action.START_CTI:
            steps.append(StartCti())
        else:  # PROMOTE_PEER
            steps.append(Tell(Role.ACTIVE, cause, None, timeout or tell_timeout(Role.ACTIVE, cfg),
                              refused=must, unreached=must))
    return tuple(steps)


def carry(d: Decision, cfg: ClusterSettings, *, kept: NodeState | None = None, must: str | None = None,
          timeout: float | None = None) -> tuple[Step, ...]:
    """A decision made now: commit it, then its actions."""
    return (Commit(d, kept), *_effects(d.state.role, d.actions, d.state.cause, cfg, must=must, timeout=timeout))


def change(role: Role, rule: str, cause: Cause, why: str, cfg: ClusterSettings, *, peer: bool = False,
           epoch: int = 0) -> tuple[Step, ...]:
    """A role change decided when it runs (after a step that waited): the change, then its actions."""
    if role is Role.ACTIVE:
        actions = ((Action.DEMOTE_PEER,) if peer else ()) + (Action.START_CTI,)
    else:
        actions = (Action.STOP_CTI,) + ((Action.PROMOTE_PEER,) if peer else ())
    return (Change(role, rule, cause, why, peer, epoch), *_effects(role, actions, cause, cfg))


def decide_change(state: NodeState, c: Change, cfg: ClusterSettings, *, why: str) -> Decision:
    """A ``Change`` step made a decision, from the state when it runs; checked like every decision."""
    if c.role is Role.ACTIVE:
        if state.role is Role.ACTIVE:
            return Decision(state, f"no action: already ACTIVE ({why})")
        d = promote(state, rule=c.rule, cause=c.cause, why=why, demote_peer=c.peer, epoch=c.epoch)
    else:
        if state.role is Role.STANDBY:
            return Decision(state, f"no action: already STANDBY ({why})")
        d = demote(state, rule=c.rule, cause=c.cause, why=why, handover=c.peer)
    check_invariants(state, d, cfg, commanded=True)
    return d


def refuse(reason: str) -> Plan:
    return Plan(reason, refused=True)


def plan_tick(state: NodeState, obs: Observation, cfg: ClusterSettings,
              decide_fn: Callable[[NodeState, Observation, ClusterSettings], Decision] = decide) -> Plan:
    """One tick: the decision, committed (a refused promotion keeps what the tick observed, so the failure
    counts go on), its actions, then the witness key tended. (``decide_fn``: a broken rule, in a test.)"""
    d = decide_fn(state, obs, cfg)
    kept = observe(state, obs)[0] if d.state.role is Role.ACTIVE and state.role is Role.STANDBY else None
    w = obs.witness
    # Tend the key after a role change, or when what the witness said asks for it (see carry.py's tend).
    tend = w is not None and (d.state.role is not state.role or (w.reachable and (
        w.holder is None if state.role is Role.ACTIVE else w.holder == state.node_id)))
    return checked(state, Plan(d.reason, carry(d, cfg, kept=kept), always=(TendKey(),) if tend else (),
                               rule=d.rule, log=d.log), cfg)


def plan_role_command(state: NodeState, role: Role, epoch: int, cfg: ClusterSettings, *, cause: Cause, why: str,
                      can_be_active: bool = True) -> Plan:
    """The peer tells us our role (``POST /peer/role``): obey it, or refuse (409) when that is not safe."""
    try:
        d = on_role_command(state, role, epoch, cause=cause, why=why, can_be_active=can_be_active)
    except StaleCommand as exc:
        return refuse(str(exc))
    check_invariants(state, d, cfg, commanded=True)
    return checked(state, Plan(d.reason, carry(d, cfg), rule=d.rule), cfg)


def plan_switch(state: NodeState, target: str, cfg: ClusterSettings, *, force: bool, who: str,
                unfit: str | None = None, view: PeerView | None = None, probe: str | None = None) -> Plan:
    """R7, a manual switch to ``target``; the old ACTIVE's CTI stops before the target's starts.

    ``view`` is the peer as it answered an exchange just now (None: no answer). To this node: ``unfit``
    says why it cannot be ACTIVE (None: it can). The peer is told to go STANDBY first, in an epoch above
    both, and must obey; only ``force`` goes on when it does not answer (the witness still has its say).
    To the peer: ``probe`` says why its monitor failed (None: it answered). An ACTIVE steps down, stops
    CTI, releases the key and hands over; when the peer does not take ACTIVE it takes ACTIVE back (the
    rollback) and the switch is refused."""
    me, peer = state.node_id, state.peer_id
    if target == me:
        if state.role is Role.ACTIVE:
            return Plan(f"no action: {me} is ACTIVE already")
        if unfit is not None:
            return refuse(f"{me} cannot be ACTIVE: {unfit}")
        known = max(state.epoch, state.peer.epoch if state.peer else 0, view.epoch if view else 0)
        why = f"manual switch requested by {who}"
        unreached = None if force else (f"the current ACTIVE {peer} is unreachable ({{detail}}); "
                                        "use force to take ACTIVE anyway")
        steps = (Tell(Role.STANDBY, Cause.MANUAL, why, tell_timeout(Role.STANDBY, cfg), epoch=known + 1,
                      refused=f"{peer} refused to step down: {{detail}}", unreached=unreached,
                      note=f", forced while {peer} is unreachable"),
                 *change(Role.ACTIVE, "R7", Cause.MANUAL, why, cfg, epoch=known + 1))
        return checked(state, Plan(f"manual switch: {peer} goes STANDBY, then {me} takes ACTIVE", steps,
                                   failed="cannot take ACTIVE: {detail}", rule="R7"), cfg)
    if probe is not None or view is None:
        return refuse(f"target {peer} is unreachable or unhealthy ({probe or 'no state exchange'})")
    if not view.can_be_active:
        return refuse(f"target {peer} cannot be ACTIVE (its LAN check fails or it cannot persist)")
    if view.role is Role.ACTIVE and state.role is Role.STANDBY:
        return Plan(f"no action: {peer} is ACTIVE already")
    why = f"manual switch to {peer} requested by {who}"
    must = f"target {peer} did not take ACTIVE: {{detail}}"
    if state.role is Role.ACTIVE:
        d = demote(state, rule="R7", cause=Cause.MANUAL, why=why, handover=True)
        check_invariants(state, d, cfg, commanded=True)
        back = change(Role.ACTIVE, "R7", Cause.MANUAL, f"switch to {peer} failed ({{detail}}); taking ACTIVE back",
                      cfg, peer=True)
        return checked(state, Plan(d.reason, carry(d, cfg, must=must), rollback=back, rule="R7"), cfg)
    tell = Tell(Role.ACTIVE, Cause.MANUAL, why, tell_timeout(Role.ACTIVE, cfg),
                epoch=max(state.epoch, view.epoch) + 1, refused=must, unreached=must)
    return checked(state, Plan(f"manual switch: {peer} takes ACTIVE", (tell,), rule="R7"), cfg)


def plan_stop(state: NodeState, cfg: ClusterSettings) -> Plan:
    """R10, SIGTERM: an ACTIVE steps down and stops CTI, and hands ACTIVE to its peer when that peer answered
    its last probe and can be ACTIVE (the answer is awaited at most R10_ANSWER_S: ACTIVE within 2 s)."""
    if not cfg.enabled or state.role is not Role.ACTIVE:
        return Plan(f"no action: {state.node_id} stops as {state.role}")
    healthy = state.probed and state.peer_failures == 0 and state.peer is not None and state.peer.can_be_active
    d = demote(state, rule="R10", cause=Cause.SHUTDOWN, handover=healthy,
               why=f"graceful stop{f': handing ACTIVE to {state.peer_id}' if healthy else ''}")
    check_invariants(state, d, cfg, commanded=True)
    timeout = min(tell_timeout(Role.ACTIVE, cfg), R10_ANSWER_S)
    return checked(state, Plan(d.reason, carry(d, cfg, timeout=timeout), rule="R10"), cfg)


def checked(state: NodeState, plan: Plan, cfg: ClusterSettings) -> Plan:
    """``check_plan``, then the plan."""
    check_plan(state, plan, cfg)
    return plan


def check_plan(state: NodeState, plan: Plan, cfg: ClusterSettings) -> None:
    """Raise InvariantError when a plan's steps, walked in order, break what every role change must keep:
    a role is committed before CTI follows it; CTI starts only on an ACTIVE; a node that steps down stops CTI
    before it asks its peer to take ACTIVE, and never asks while ACTIVE; the epochs it announces are not below
    its own."""
    steps = plan.steps
    if len(steps) == 1 and not plan.rollback and isinstance(steps[0], Commit) \
            and steps[0].decision.state.role is state.role:
        return  # a tick that changes no role: its decision was checked by check_invariants
    role, cti_may_run = state.role, state.role is Role.ACTIVE
    for steps in (plan.steps, plan.rollback):  # a rollback runs where the steps stopped: after the last one
        for step in steps:
            if isinstance(step, Commit | Change):
                role = step.decision.state.role if isinstance(step, Commit) else step.role
            elif isinstance(step, StartCti):
                if role is not Role.ACTIVE:
                    raise InvariantError("CTI started on a node that is not ACTIVE")
                cti_may_run = True
            elif isinstance(step, StopCti):
                cti_may_run = False
            elif isinstance(step, Tell):
                if step.epoch is not None and step.epoch < state.epoch:
                    raise InvariantError(f"told the peer epoch {step.epoch}, below ours ({state.epoch})")
                if step.role is Role.ACTIVE and (role is Role.ACTIVE or cti_may_run):
                    raise InvariantError("asked the peer to take ACTIVE while ours may still run")
        if role is Role.STANDBY and cti_may_run:
            raise InvariantError("stepped down without stopping CTI")


def expected_failover_delay(cfg: ClusterSettings, *, connect_s: float, ports: int, devices: int) -> float:
    """The vendor's formula: N·I + T + CTI startup (connect + 0.2 s a port + 0.2 s a device)."""
    return cfg.detection_delay_s() + connect_s + 0.2 * ports + 0.2 * devices


__all__ = [
    "TO_ACTIVE",
    "TO_STANDBY",
    "InvariantError",
    "PeerView",
    "StaleCommand",
    "check_invariants",
    "check_plan",
    "decide",
    "decide_change",
    "demote",
    "expected_failover_delay",
    "not_promoted",
    "observe",
    "on_role_command",
    "plan_role_command",
    "plan_stop",
    "plan_switch",
    "plan_tick",
    "promote",
    "restart_state",
    "tell_timeout",
    "with_witness_epoch",
    "witness_lost",
    "witness_refused",
]
