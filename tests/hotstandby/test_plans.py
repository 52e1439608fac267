"""Every role change as a plan: what the core plans for a switch, a graceful stop, a role command and a
tick, and what carrying a plan out does in order (``hotstandby.carry``), driven here by a scripted world.

The runner is a generator of effects; the script answers them the way the edges would (a peer that
obeys or not, a witness that grants the key or not, a disk that takes the write or not) and records
them, so each test reads as "these effects, in this order".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.carry import Adopt, Answer, Ask, Heard, KeyNow, Outcome, Persist, Reassert, Say, TakeKey, carry_out
from hotstandby.model import (
    Cause,
    Change,
    Commit,
    NodeState,
    Observation,
    PeerView,
    Plan,
    ReleaseKey,
    Role,
    StartCti,
    StopCti,
    Tell,
    TendKey,
    WitnessView,
)
from hotstandby.rules import (
    InvariantError,
    check_plan,
    plan_role_command,
    plan_stop,
    plan_switch,
    plan_tick,
)
from hotstandby.settings import ClusterSettings
from hotstandby.witness import Taken
from tests.hotstandby.test_rules import active, cfg, pv, standby

OBEY = Answer(True, True, "ok")
SILENT = Answer(False, False, "ConnectTimeout")
REFUSES = Answer(False, True, "409: STANDBY command carries epoch 3 below ours (5)")


@dataclass
class Script:
    """The world a plan runs against: how the peer, the witness and the disk answer; what was asked, in order."""

    state: NodeState
    peer: Callable[[Ask], Answer] = lambda ask: Answer(True, True, "ok", ask.role, ask.epoch)
    taken: Taken | None = None  # None: no witness
    disk: str | None = None  # the store's error, or None
    key: WitnessView | None = None
    effects: list[Any] = field(default_factory=list)

    def run(self, plan: Plan, settings: ClusterSettings | None = None) -> Outcome:
        gen = carry_out(plan, settings or cfg(), lambda: self.state)
        result: Any = None
        while True:
            try:
                effect = gen.send(result)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            self.effects.append(effect)
            result = self.answer(effect)

    def answer(self, e: Any) -> Any:
        if isinstance(e, Adopt):
            self.state = e.decision.state
        elif isinstance(e, Heard):
            self.state = e.state
        elif isinstance(e, Persist):
            return self.disk
        elif isinstance(e, TakeKey):
            return self.taken
        elif isinstance(e, Ask):
            return self.peer(e)
        elif isinstance(e, ReleaseKey):
            return True
        elif isinstance(e, KeyNow):
            return self.key
        elif isinstance(e, Reassert):
            return Taken(True, e.epoch, "reasserted")
        return None

    def kinds(self) -> list[str]:
        """The effects as short words, Say lines left out: the order is what the tests check."""
        out = []
        for e in self.effects:
            if isinstance(e, Adopt):
                out.append(f"adopt {e.decision.state.role.value}")
            elif isinstance(e, Persist):
                out.append(f"persist {e.state.role.value}")
            elif isinstance(e, Ask):
                out.append(f"ask {e.role.value}")
            elif not isinstance(e, Say | Heard):
                out.append(type(e).__name__)
        return out

    def said(self) -> str:
        return "\n".join(e.line for e in self.effects if isinstance(e, Say))


def seen(state: NodeState, peer: PeerView, probed: bool = True) -> NodeState:
    return state.evolve(peer=peer, probed=probed)


# R7: the manual switch -----------------------------------------------------------------------------


def test_switch_to_this_node_tells_the_peer_first_then_promotes() -> None:
    """Switch to the STANDBY it lands on: the ACTIVE peer is told STANDBY (epoch above both), then this node
    persists ACTIVE and starts CTI, in that order."""
    s = seen(standby("server2", 4), pv("server1", Role.ACTIVE, 5))
    plan = plan_switch(s, "server2", cfg(), force=False, who="CLI")
    tell = plan.steps[0]
    assert isinstance(tell, Tell) and (tell.role, tell.epoch) == (Role.STANDBY, 6)
    script = Script(s)
    out = script.run(plan)
    assert not out.refused and script.state.role is Role.ACTIVE and script.state.cause is Cause.MANUAL
    assert script.kinds() == ["ask STANDBY", "TakeKey", "persist ACTIVE", "adopt ACTIVE", "StartCti"]
    assert "R7 manual switch requested by CLI" in script.said()


@pytest.mark.parametrize(("answer", "force", "refusal"), [
    (REFUSES, False, "server1 refused to step down: 409"),
    (REFUSES, True, "server1 refused to step down: 409"),
    (SILENT, False, "the current ACTIVE server1 is unreachable (ConnectTimeout); use force to take ACTIVE anyway"),
])
def test_switch_to_this_node_is_refused_unless_the_peer_steps_down(answer: Answer, force: bool, refusal: str) -> None:
    """A peer that refuses to step down stops the switch even with force; a silent one stops it without force.
    Nothing is persisted and CTI does not start."""
    s = seen(standby("server2", 4), pv("server1", Role.ACTIVE, 5))
    script = Script(s, peer=lambda _: answer)
    out = script.run(plan_switch(s, "server2", cfg(), force=force, who="CLI"))
    assert out.refused and out.reason.startswith(refusal)
    assert script.kinds() == ["ask STANDBY"] and script.state == s


def test_forced_switch_goes_on_without_an_answer_and_says_so() -> None:
    """With force, a peer that does not answer does not stop the switch; the reason says it was forced."""
    s = seen(standby("server2", 4), pv("server1", Role.ACTIVE, 5))
    script = Script(s, peer=lambda _: SILENT)
    out = script.run(plan_switch(s, "server2", cfg(), force=True, who="CLI"))
    assert not out.refused and script.state.role is Role.ACTIVE
    assert "manual switch requested by CLI, forced while server1 is unreachable" in out.reason


def test_switch_to_this_node_refused_when_it_cannot_be_active() -> None:
    """A node that cannot be ACTIVE (its LAN, its disk, the witness) refuses the switch with the reason."""
    plan = plan_switch(standby("server2"), "server2", cfg(), force=False, who="CLI", unfit="disk full")
    assert plan.refused and plan.reason == "server2 cannot be ACTIVE: disk full" and plan.steps == ()


def test_switch_away_from_the_active_stops_cti_before_the_handover() -> None:
    """Switch to the peer on the ACTIVE: persist STANDBY, stop CTI, release the key, then ask the peer."""
    s = seen(active("server1", 5), pv("server2", Role.STANDBY, 5))
    script = Script(s)
    out = script.run(plan_switch(s, "server2", cfg(), force=False, who="console", view=s.peer))
    assert not out.refused
    assert script.kinds() == ["persist STANDBY", "adopt STANDBY", "StopCti", "ReleaseKey", "ask ACTIVE"]
    asks = [e for e in script.effects if isinstance(e, Ask)]
    assert asks[0].epoch == 6 and asks[0].timeout >= 1.0  # a take-ACTIVE waits at least 1 s for its answer
    assert script.state.peer is not None and script.state.peer.role is Role.ACTIVE  # the answer is heard


def test_a_switch_the_target_does_not_take_is_rolled_back() -> None:
    """The target does not take ACTIVE: the old ACTIVE takes it back (telling the peer STANDBY first, then CTI),
    and the switch is refused with the target's answer."""
    s = seen(active("server1", 5), pv("server2", Role.STANDBY, 5))
    script = Script(s, peer=lambda ask: SILENT if ask.role is Role.ACTIVE else OBEY)
    out = script.run(plan_switch(s, "server2", cfg(), force=False, who="console", view=s.peer))
    assert out.refused and out.reason == "target server2 did not take ACTIVE: ConnectTimeout"
    assert script.kinds() == ["persist STANDBY", "adopt STANDBY", "StopCti", "ReleaseKey", "ask ACTIVE",
                              "TakeKey", "persist ACTIVE", "adopt ACTIVE", "ask STANDBY", "StartCti"]
    assert script.state.role is Role.ACTIVE and script.state.epoch > 5
    assert "switch to server2 failed (ConnectTimeout); taking ACTIVE back" in script.said()


@pytest.mark.parametrize(("view", "probe", "refusal"), [
    (None, "ConnectError", "target server2 is unreachable or unhealthy (ConnectError)"),
    (pv("server2", Role.STANDBY), "503 IPSWS=ERROR", "target server2 is unreachable or unhealthy (503 IPSWS=ERROR)"),
    (None, None, "target server2 is unreachable or unhealthy (no state exchange)"),
    (pv("server2", Role.STANDBY, can_be_active=False), None, "target server2 cannot be ACTIVE"),
])
def test_switch_to_an_unfit_peer_is_refused_before_anything(view: PeerView | None, probe: str | None,
                                                            refusal: str) -> None:
    """R7's 409: a target that did not answer just now, or cannot be ACTIVE, is refused with nothing done."""
    plan = plan_switch(active("server1"), "server2", cfg(), force=False, who="API", view=view, probe=probe)
    assert plan.refused and plan.reason.startswith(refusal) and plan.steps == ()


def test_switch_between_two_standby_nodes_asks_the_target() -> None:
    """Both STANDBY: the target is asked to take ACTIVE with an epoch above both; its refusal is the 409."""
    s = standby("server1", 3)
    plan = plan_switch(s, "server2", cfg(), force=False, who="API", view=pv("server2", Role.STANDBY, 7))
    assert [type(x) for x in plan.steps] == [Tell] and plan.steps[0].epoch == 8  # type: ignore[union-attr]
    out = Script(s, peer=lambda _: REFUSES).run(plan)
    assert out.refused and out.reason.startswith("target server2 did not take ACTIVE: 409")


@pytest.mark.parametrize(("state", "target", "view"), [
    (active("server1"), "server1", None),
    (standby("server1"), "server2", pv("server2", Role.ACTIVE)),
])
def test_switch_to_the_node_already_active_does_nothing(state: NodeState, target: str, view: PeerView | None) -> None:
    """A switch to the node that is already ACTIVE is answered without a step."""
    plan = plan_switch(state, target, cfg(), force=False, who="API", view=view)
    assert not plan.refused and plan.steps == ()


# R10: the graceful stop ----------------------------------------------------------------------------


@pytest.mark.parametrize(("peer", "probed", "failures", "hands_over"), [
    (pv("server2", Role.STANDBY), True, 0, True),
    (pv("server2", Role.STANDBY), True, 1, False),
    (pv("server2", Role.STANDBY), False, 0, False),
    (pv("server2", Role.STANDBY, can_be_active=False), True, 0, False),
    (None, True, 0, False),
])
def test_graceful_stop_hands_over_only_to_a_healthy_peer(peer: PeerView | None, probed: bool, failures: int,
                                                         hands_over: bool) -> None:
    """R10: the ACTIVE steps down and stops CTI; it asks the peer to take ACTIVE only when that peer answered
    its last probe and can be ACTIVE, and waits at most 1.5 s for the answer (ACTIVE within 2 s)."""
    s = active("server1", 4).evolve(peer=peer, probed=probed, peer_failures=failures)
    plan = plan_stop(s, cfg(heartbeat_interval_s=5, heartbeat_timeout_s=5))
    tells = [x for x in plan.steps if isinstance(x, Tell)]
    assert [type(x) for x in plan.steps[:3]] == [Commit, StopCti, ReleaseKey]
    assert bool(tells) is hands_over
    if tells:
        assert tells[0].role is Role.ACTIVE and tells[0].timeout == 1.5
    assert ("handing ACTIVE to server2" in plan.reason) is hands_over


@pytest.mark.parametrize(("state", "enabled"), [(standby("server1"), True), (active("server1"), False)])
def test_graceful_stop_of_a_standby_or_standalone_node_changes_no_role(state: NodeState, enabled: bool) -> None:
    """Nothing to hand over: a STANDBY, or a standalone ACTIVE (hot standby disabled), stops as it is."""
    plan = plan_stop(state, cfg(enabled=enabled))
    assert plan.steps == () and not plan.refused


# Role commands and ticks ---------------------------------------------------------------------------


def test_a_stale_role_command_is_refused() -> None:
    """A STANDBY command below our epoch is refused (409) with the reason, and changes nothing."""
    plan = plan_role_command(active("server1", 5), Role.STANDBY, 3, cfg(), cause=Cause.PEER, why="old")
    assert plan.refused and "below ours" in plan.reason


def test_a_take_active_command_refused_by_the_witness_is_refused() -> None:
    """Told to take ACTIVE while the witness key is the peer's: no promotion, and the command is refused."""
    s = standby("server2", 3)
    script = Script(s, taken=Taken(False, 0, "the witness key is held by server1 (epoch 4)"))
    out = script.run(plan_role_command(s, Role.ACTIVE, 5, cfg(), cause=Cause.SHUTDOWN, why="graceful stop"))
    assert out.refused and "cannot take the witness key: the witness key is held by server1" in out.reason
    assert script.state.role is Role.STANDBY and "StartCti" not in script.kinds()


def test_a_failover_takes_the_key_persists_tells_the_peer_then_starts_cti() -> None:
    """R1 with a witness: key, then disk, then the peer told STANDBY, then CTI; the epoch is the key's revision."""
    s = standby("server2", 3, peer_failures=2, probed=True)
    script = Script(s, taken=Taken(True, 41, "took the witness key at revision 41"))
    w = WitnessView(reachable=True, renewal_age_s=0.1, lease_ttl_s=3.0)
    out = script.run(plan_tick(s, Observation(probe_ok=False, witness=w), cfg()))
    assert script.kinds() == ["TakeKey", "persist ACTIVE", "adopt ACTIVE", "ask STANDBY", "StartCti", "KeyNow"]
    assert script.state.epoch == 41 and out.applied is not None and out.applied.state.epoch == 41
    asks = [e for e in script.effects if isinstance(e, Ask)]
    assert asks[0].epoch == 41 and asks[0].cause is Cause.FAILOVER and asks[0].why.startswith("failover")


def test_a_promotion_the_witness_refuses_keeps_the_count_and_still_tends_the_key() -> None:
    """The key is not granted: no promotion (nothing persisted as ACTIVE, no CTI), the failure count kept,
    and the tick still tends the key afterwards (a take that timed out after writing is undone)."""
    s = standby("server2", 3, peer_failures=2, probed=True)
    held = WitnessView(reachable=True, renewal_age_s=0.1, lease_ttl_s=3.0, holder="server2")
    script = Script(s, taken=Taken(False, 0, "the witness key changed while we took it"), key=held)
    out = script.run(plan_tick(s, Observation(probe_ok=False, witness=held), cfg()))
    assert out.refused and out.reason.startswith("no action: server2 would take ACTIVE (R1) but cannot take")
    assert script.kinds() == ["TakeKey", "adopt STANDBY", "KeyNow", "ReleaseKey"]
    assert script.state.role is Role.STANDBY and script.state.peer_failures == 3


def test_a_promotion_that_cannot_be_persisted_does_not_happen() -> None:
    """The disk refuses the write: the node stays STANDBY, CTI does not start, and the log says why."""
    s = standby("server2", 3, peer_failures=2, probed=True)
    script = Script(s, disk="database or disk is full")
    out = script.run(plan_tick(s, Observation(probe_ok=False), cfg()))
    assert out.refused and "the role cannot be persisted (database or disk is full)" in out.reason
    assert script.state.role is Role.STANDBY and "StartCti" not in script.kinds()
    assert "Not taking ACTIVE: the role cannot be persisted" in script.said()


def test_a_demotion_that_cannot_be_persisted_still_stops_cti() -> None:
    """Stepping down is safe unpersisted (a restarted node is STANDBY whatever it stored): CTI stops anyway."""
    s = active("server1", 3)
    script = Script(s, disk="attempt to write a readonly database")
    out = script.run(plan_role_command(s, Role.STANDBY, 4, cfg(), cause=Cause.MANUAL, why="switch"))
    assert not out.refused and script.state.role is Role.STANDBY
    assert script.kinds() == ["persist STANDBY", "adopt STANDBY", "StopCti", "ReleaseKey"]
    assert "Role change not persisted (attempt to write a readonly database); stepping down anyway" in script.said()


def test_an_active_whose_key_vanished_takes_it_back_after_the_tick() -> None:
    """TendKey: an ACTIVE that sees nobody holding the key reasserts it with its epoch."""
    s = active("server1", 9, peer=pv("server2", Role.STANDBY, 9), probed=True)
    free = WitnessView(reachable=True, renewal_age_s=0.1, lease_ttl_s=3.0, holder=None)
    script = Script(s, key=free)
    script.run(plan_tick(s, Observation(probe_ok=True, peer=pv("server2", Role.STANDBY, 9), witness=free), cfg()))
    assert script.kinds()[-2:] == ["KeyNow", "Reassert"] and "re-taken while ACTIVE (epoch 9)" in script.said()


def test_the_maintenance_flag_set_while_a_plan_waited_is_kept() -> None:
    """Maintenance is the exchange's to change: a flag set while the plan waited on the peer is not undone."""
    s = seen(standby("server2", 4), pv("server1", Role.ACTIVE, 5))
    script = Script(s)

    def peer(ask: Ask) -> Answer:
        script.state = script.state.evolve(maintenance=True)  # replicated in while we waited
        return OBEY

    script.peer = peer
    script.run(plan_switch(s, "server2", cfg(), force=False, who="CLI"))
    assert script.state.role is Role.ACTIVE and script.state.maintenance is True


# The plan invariants -------------------------------------------------------------------------------


@pytest.mark.parametrize(("state", "steps", "broken"), [
    (active("server1"), (Change(Role.STANDBY, "R7", Cause.MANUAL, "x"), StartCti()), "not ACTIVE"),
    (active("server1"), (Change(Role.STANDBY, "R7", Cause.MANUAL, "x"),), "without stopping CTI"),
    (active("server1"), (Tell(Role.ACTIVE, Cause.MANUAL, "x", 1.0),), "while ours may still run"),
    (active("server1", 5), (Tell(Role.STANDBY, Cause.MANUAL, "x", 1.0, epoch=4),), "below ours"),
    (standby("server1"), (StartCti(),), "not ACTIVE"),
])
def test_check_plan_rejects_a_plan_that_breaks_an_invariant(state: NodeState, steps: tuple[Any, ...],
                                                            broken: str) -> None:
    """A plan whose steps start CTI off ACTIVE, hand over while ours runs, or announce an old epoch is a bug."""
    with pytest.raises(InvariantError, match=broken):
        check_plan(state, Plan("test", steps), cfg())


@settings(max_examples=200, deadline=None)
@given(role=st.sampled_from(Role), epoch=st.integers(0, 5), peer_role=st.sampled_from(Role),
       peer_epoch=st.integers(0, 5), target=st.sampled_from(["server1", "server2"]), force=st.booleans(),
       answers=st.lists(st.sampled_from([OBEY, SILENT, REFUSES]), min_size=3, max_size=3),
       disk=st.sampled_from([None, "disk full"]), key=st.sampled_from([None, True, False]))
def test_property_carrying_out_any_switch_keeps_cti_behind_a_durable_active(
        role: Role, epoch: int, peer_role: Role, peer_epoch: int, target: str, force: bool,
        answers: list[Answer], disk: str | None, key: bool | None) -> None:
    """Whatever the peer, the disk and the witness answer: CTI starts only on a node whose ACTIVE was persisted
    (and whose key was taken), CTI stops before the peer is asked to take ACTIVE, and the epoch never goes back."""
    s = NodeState(node_id="server1", role=role, epoch=epoch, peer=pv("server2", peer_role, peer_epoch), probed=True)
    replies = iter(answers)
    taken = None if key is None else Taken(key, epoch + 10, "test")
    script = Script(s, peer=lambda _: next(replies, SILENT), taken=taken, disk=disk)
    script.run(plan_switch(s, target, cfg(), force=force, who="test", view=s.peer))
    persisted_active = cti_runs = False
    last_epoch = epoch
    for e in script.effects:
        if isinstance(e, Persist):
            persisted_active = e.state.role is Role.ACTIVE
        elif isinstance(e, Adopt):
            assert e.decision.state.epoch >= last_epoch
            last_epoch = e.decision.state.epoch
        elif isinstance(e, StartCti):
            assert persisted_active and disk is None and key is not False
            cti_runs = True
        elif isinstance(e, StopCti):
            cti_runs = False
        elif isinstance(e, Ask) and e.role is Role.ACTIVE:
            assert not cti_runs and (role is Role.STANDBY or persisted_active is False)


def test_every_step_kind_is_handled_by_the_runner() -> None:
    """Each step kind of the model is one the runner knows (a new kind must be taught to it)."""
    kinds = {Commit, Change, StopCti, StartCti, ReleaseKey, TendKey, Tell}
    import hotstandby.model as model
    assert set(model.Step.__args__) == kinds  # type: ignore[attr-defined]
