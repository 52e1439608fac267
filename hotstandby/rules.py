"""The failover rules R1-R8, R11 and the witness's R12 as pure functions of state, observations and settings.

Nothing here does I/O, reads a clock or sleeps: the arbiter's tick and the simulator call the same
code. Each function returns a ``Decision`` whose ``reason`` is the sentence that goes verbatim into
the fault-tolerant log when the role changes.
"""

from __future__ import annotations

from hotstandby.model import (
    Action,
    Cause,
    Decision,
    NodeState,
    Observation,
    PeerView,
    Rank,
    Role,
    WitnessView,
    rank_of,
)
from hotstandby.settings import ClusterSettings

TO_ACTIVE = "SWITCH THIS SERVER TO PRIMARY"  # the vendor calls the ACTIVE role "primary"
TO_STANDBY = "SWITCH THIS SERVER TO BACKUP"


class InvariantError(AssertionError):
    """A decision broke one of the core's invariants: a bug, never a runtime condition."""


def promote(state: NodeState, *, rule: str, cause: Cause, why: str, demote_peer: bool = True,
            epoch: int | None = None) -> Decision:
    """Become ACTIVE in a new epoch above anything seen; stop the peer's CTI first when it may run."""
    known = max(state.epoch, state.peer.epoch if state.peer else 0)
    new_epoch = max(known + 1, epoch or 0)
    actions = ((Action.DEMOTE_PEER,) if demote_peer else ()) + (Action.START_CTI,)
    new = state.evolve(role=Role.ACTIVE, epoch=new_epoch, cause=cause, dual_active=0, vip_count=0, both_standby=0)
    return Decision(new, f"{TO_ACTIVE}, {rule} {why}", actions, rule)


def demote(state: NodeState, *, rule: str, cause: Cause, why: str, handover: bool = False) -> Decision:
    """Become STANDBY and stop CTI; with ``handover`` then ask the peer to take ACTIVE."""
    actions = (Action.STOP_CTI,) + ((Action.PROMOTE_PEER,) if handover else ())
    new = state.evolve(role=Role.STANDBY, cause=cause, dual_active=0, vip_count=0, both_standby=0)
    return Decision(new, f"{TO_STANDBY}, {rule} {why}", actions, rule)


def observe(state: NodeState, obs: Observation) -> tuple[NodeState, tuple[str, ...]]:
    """Fold one tick's observations into the counters; returns the new state and probe log lines."""
    log: list[str] = []
    peer_rank = rank_of(state.peer_id).value
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
    decision = _witness_gate(seen, obs, settings, _rules(seen, obs, settings))
    check_invariants(state, decision, settings, obs)
    return Decision(decision.state, decision.reason, decision.actions, decision.rule, log)


def _rules(s: NodeState, obs: Observation, cfg: ClusterSettings) -> Decision:
    n = cfg.failures_to_switch
    me, peer = s.node_id, s.peer_id
    if not cfg.enabled:
        if s.role is Role.ACTIVE:
            return Decision(s, f"no action: hot standby disabled, {me} runs standalone ACTIVE")
        return promote(s, rule="R0", cause=Cause.STANDALONE, why="hot standby disabled: standalone ACTIVE",
                       demote_peer=False)
    if s.maintenance:
        return Decision(s, f"PAUSE: maintenance on, no automatic switch; {me} stays {s.role}")
    lan_now = obs.lan_ok is not False
    vip_to_me = cfg.test_vip_destination and s.vip_node == me
    vip_to_peer = cfg.test_vip_destination and s.vip_node == peer
    live = obs.peer  # the peer as it answered this tick, if it did

    if s.role is Role.ACTIVE:
        w = obs.witness
        if w is not None and w.reachable and w.holder == peer:
            return demote(s, rule="R12", cause=Cause.WITNESS,
                          why=f"the witness names {peer} ACTIVE: it holds the key, {me} does not")
        if w is not None and witness_lost(w, cfg) and not peer_confirms_standby(obs):
            return demote(s, rule="R12", cause=Cause.WITNESS,
                          why=f"witness lost: {_renewal_words(w, cfg)}, and {peer} does not confirm STANDBY; "
                              "stepping down before the lease can expire")
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
        failsafe = ""
        if w is not None and witness_lost(w, cfg):
            failsafe = f"; failsafe: witness lost ({_renewal_words(w, cfg)}) but {peer} confirms STANDBY"
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


def witness_lost(w: WitnessView, cfg: ClusterSettings) -> bool:
    """R12: the last successful renewal is L − I old (or there never was one): the next tick may be too late."""
    if w.renewal_age_s is None or w.lease_ttl_s is None:
        return True
    return w.renewal_age_s >= w.lease_ttl_s - cfg.heartbeat_interval_s


def peer_confirms_standby(obs: Observation) -> bool:
    """The failsafe: the peer said, over the direct link and on this very tick, that it is STANDBY."""
    return obs.peer is not None and obs.peer.role is Role.STANDBY


def _renewal_words(w: WitnessView, cfg: ClusterSettings) -> str:
    if w.renewal_age_s is None or w.lease_ttl_s is None:
        return "no lease renewed yet"
    return (f"last lease renewal {w.renewal_age_s:.2f} s ago, L − I = "
            f"{w.lease_ttl_s - cfg.heartbeat_interval_s:g} s")


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


def with_witness_epoch(d: Decision, epoch: int) -> Decision:
    """A promotion whose key was taken: the epoch becomes the fencing token the witness wrote."""
    if epoch < d.state.epoch:
        raise InvariantError(f"witness epoch {epoch} below the promotion's {d.state.epoch}")
    return Decision(d.state.evolve(epoch=epoch), d.reason, d.actions, d.rule, d.log)


def witness_refused(kept: NodeState, d: Decision, why: str) -> Decision:
    """A promotion whose key could not be taken does not happen: ``kept`` is the state without it (for a
    tick, what it observed: ``observe(before, obs)[0]``, so the failure counts go on)."""
    if kept.role is not Role.STANDBY:
        raise InvariantError("only a STANDBY is refused a promotion")
    return Decision(kept, f"no action: {kept.node_id} would take ACTIVE ({d.rule}) but cannot take the witness "
                          f"key: {why}", (), None, d.log)


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
        d = demote(state.evolve(epoch=max(state.epoch, epoch)), rule="R7" if cause is Cause.MANUAL else "R1",
                   cause=cause, why=why)
        return d
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


def check_invariants(before: NodeState, d: Decision, cfg: ClusterSettings, obs: Observation | None = None) -> None:
    """Raise InvariantError when a decision breaks a rule the core must never break."""
    after = d.state
    w = obs.witness if obs is not None else None
    paused = before.maintenance or not cfg.enabled  # R11 and standalone: no automatic switch at all
    if (w is not None and obs is not None and not paused and before.role is Role.ACTIVE
            and after.role is Role.ACTIVE and witness_lost(w, cfg) and not peer_confirms_standby(obs)):
        raise InvariantError("stayed ACTIVE with the witness lost and no STANDBY peer to vouch for it")
    if w is not None and not paused and before.role is Role.STANDBY and after.role is Role.ACTIVE and not w.reachable:
        raise InvariantError("promoted while the witness was unreachable")
    if after.epoch < before.epoch:
        raise InvariantError(f"epoch went back from {before.epoch} to {after.epoch}")
    if Action.START_CTI in d.actions and after.role is not Role.ACTIVE:
        raise InvariantError("CTI started on a node that is not ACTIVE")
    if after.role is Role.STANDBY and Action.STOP_CTI not in d.actions and before.role is Role.ACTIVE:
        raise InvariantError("demoted without stopping CTI")
    if d.rule == "R1" and after.peer_failures < cfg.failures_to_switch:
        raise InvariantError(f"promoted on {after.peer_failures} failures, fewer than N")
    if d.switched and before.maintenance and cfg.enabled:
        raise InvariantError("automatic switch during maintenance")
    if after.role is Role.ACTIVE and before.role is Role.STANDBY and after.epoch <= before.epoch:
        raise InvariantError("promotion without a new epoch")


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
    "decide",
    "demote",
    "expected_failover_delay",
    "observe",
    "on_role_command",
    "promote",
    "restart_state",
    "with_witness_epoch",
    "witness_lost",
    "witness_refused",
]
