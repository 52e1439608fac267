"""R12, the witness (SPEC 12), in the pure core: no mocks, no sleeps; a clock is a number we advance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.model import Action, Cause, NodeState, Observation, PeerView, Role, WitnessView, other
from hotstandby.rules import (
    InvariantError,
    decide,
    promote,
    with_witness_epoch,
    witness_lost,
    witness_refused,
)
from tests.hotstandby.test_rules import active, cfg, fail, ok, pv, run, standby

L = 2.0  # the TTL etcd grants for max(N·I, 1 s) = 1.5 s at I = 0.5, N = 3 (its minimum is 2 s)
I = 0.5  # noqa: E741 (the SPEC's name for the interval)


def fast(**changes: object):  # type: ignore[no-untyped-def]
    """The integration profile: I = T = 0.5 s, N = 3."""
    return cfg(heartbeat_interval_s=I, heartbeat_timeout_s=I, **changes)


def wv(age: float | None = 0.01, *, reachable: bool = True, holder: str | None = None, holds: bool = False,
       ttl: float | None = L) -> WitnessView:
    return WitnessView(reachable=reachable, renewal_age_s=age, lease_ttl_s=ttl, holder=holder, holds=holds)


def held(node: str, age: float = 0.01) -> WitnessView:
    """A healthy witness on which ``node`` holds the key (renewed ``age`` seconds ago)."""
    return wv(age, holder=node, holds=True)


def lost(age: float = L) -> WitnessView:
    """The witness has not answered since a renewal ``age`` seconds ago; the last read named server1 (the
    ACTIVE in these tests) as the holder (``holds`` is unknown, so False, while it does not answer)."""
    return wv(age, reachable=False, holder="server1")


def with_witness(obs: Observation, w: WitnessView) -> Observation:
    return Observation(obs.probe_ok, obs.peer, obs.lan_ok, obs.vip_node, w)


# The threshold: L − I ------------------------------------------------------------------------------


@pytest.mark.parametrize(("age", "expected"), [(None, True), (0.0, False), (1.49, False), (1.5, True), (9.0, True)])
def test_witness_is_lost_from_l_minus_i(age: float | None, expected: bool) -> None:
    """Lost when the last successful renewal is L − I old, or there never was one."""
    assert witness_lost(wv(age, reachable=age is not None and age < 1, holder="server1"), fast(), "server1") is expected


def test_a_lease_never_granted_counts_as_lost() -> None:
    """No lease at all (etcd never answered): nothing to keep alive, so the witness is lost."""
    assert witness_lost(wv(0.0, ttl=None), fast(), "server1") is True


# The ACTIVE node -----------------------------------------------------------------------------------


@pytest.mark.parametrize("peer_role", [None, Role.ACTIVE])
@pytest.mark.parametrize("node", ["server1", "server2"])
def test_an_active_whose_renewal_is_l_minus_i_old_steps_down_and_stops_cti(node: str, peer_role: Role | None) -> None:
    """R12: no renewal for L − I and no STANDBY peer vouching this tick (silent, or ACTIVE too): STANDBY, CTI
    stopped, no handover."""
    peer = pv(other(node), peer_role) if peer_role else None
    d = decide(active(node), Observation(probe_ok=peer is not None, peer=peer, witness=lost(L - I)), fast())
    assert (d.state.role, d.rule, d.state.cause, d.actions) == (Role.STANDBY, "R12", Cause.WITNESS,
                                                                (Action.STOP_CTI,))
    assert d.reason.startswith("SWITCH THIS SERVER TO BACKUP, R12 witness lost: last lease renewal 1.50 s ago")


def test_an_active_renewed_just_under_l_minus_i_ago_stays() -> None:
    """One missed renewal is not a loss: below L − I the ACTIVE stays, whatever the peer says."""
    d = decide(active("server1"), fail(witness=lost(L - I - 0.01)), fast())
    assert (d.state.role, d.actions) == (Role.ACTIVE, ())


def test_an_active_whose_key_lapsed_steps_down_when_the_witness_stops_answering() -> None:
    """Simulator seed 8751: a frozen ACTIVE thaws after its lease expired, gets a new lease (a fresh renewal)
    but not the key, and then loses the witness; its renewal is young, but the key is not its own and cannot
    be taken back: R12 steps down at once (without this it stayed ACTIVE beside the peer for L − I)."""
    lapsed = wv(0.5, reachable=False, holder=None, holds=False)
    d = decide(active("server1"), fail(witness=lapsed), fast())
    assert (d.state.role, d.rule) == (Role.STANDBY, "R12")
    assert "the key was not server1's at the last read" in d.reason
    kept = decide(active("server1"), ok(pv("server2", Role.STANDBY), witness=lapsed), fast())
    assert kept.state.role is Role.ACTIVE  # the failsafe still holds: the peer is STANDBY this tick
    reachable = decide(active("server1"), fail(witness=wv(0.5, holder=None, holds=False)), fast())
    assert reachable.state.role is Role.ACTIVE  # the witness answers: the tick's end takes the key back


def test_failsafe_a_peer_confirming_standby_this_tick_keeps_the_active() -> None:
    """An etcd outage alone never stops a healthy pair: the peer said STANDBY over the direct link this tick."""
    ds = run(active("server1"), [ok(pv("server2", Role.STANDBY), witness=lost(age)) for age in (1.5, 5, 60, 3600)],
             fast())
    assert all(d.state.role is Role.ACTIVE and d.actions == () for d in ds)
    assert "failsafe: witness lost (last lease renewal 3600.00 s ago" in ds[-1].reason
    assert "server2 confirms STANDBY" in ds[-1].reason


def test_failsafe_needs_the_exchange_not_only_the_probe() -> None:
    """A monitor probe that answers says the peer lives, not that it is STANDBY: no failsafe without the exchange."""
    d = decide(active("server1"), Observation(probe_ok=True, peer=None, witness=lost()), fast())
    assert d.state.role is Role.STANDBY and d.rule == "R12"


def test_an_active_that_sees_the_peer_holding_the_key_steps_down() -> None:
    """The witness names the peer ACTIVE (it took the key): this node is the stale one, it steps down."""
    d = decide(active("server2"), ok(pv("server1", Role.ACTIVE, 5), witness=held("server1")), fast())
    assert (d.state.role, d.rule, d.actions) == (Role.STANDBY, "R12", (Action.STOP_CTI,))
    assert "the witness names server1 ACTIVE" in d.reason


@pytest.mark.parametrize("holder", [None, "server1"])
def test_an_active_with_a_healthy_witness_stays(holder: str | None) -> None:
    """Renewed this tick, the key ours (or momentarily absent: the edge re-asserts it): nothing happens."""
    d = decide(active("server1"), fail(witness=wv(0.02, holder=holder, holds=holder is not None)), fast())
    assert (d.state.role, d.actions, d.rule) == (Role.ACTIVE, (), None)


def test_maintenance_does_not_pause_r12() -> None:
    """R12 moves ACTIVE nowhere: an ACTIVE cut from the witness and its peer steps down in maintenance too (cut
    apart, the nodes may not even agree that maintenance is on: the simulator found the dual ACTIVE it let
    through), while a STANDBY in maintenance still promotes by no rule."""
    d = decide(active("server1", maintenance=True), fail(witness=lost(60)), fast())
    assert (d.state.role, d.rule) == (Role.STANDBY, "R12")
    d = decide(standby("server2", maintenance=True, peer_failures=5), fail(witness=wv()), fast())
    assert d.state.role is Role.STANDBY and d.reason.startswith("PAUSE")


def test_standalone_ignores_the_witness() -> None:
    """enabled = false: the node is standalone ACTIVE; there is no pair to protect."""
    d = decide(standby("server2"), fail(witness=lost(60)), fast(enabled=False))
    assert d.state.role is Role.ACTIVE and d.rule == "R0"


# The STANDBY node ----------------------------------------------------------------------------------


def test_r1_without_a_reachable_witness_does_not_promote() -> None:
    """R1 with a witness: N failures are not enough when the witness does not answer; it says why."""
    ds = run(standby("server2"), [fail(witness=lost(5))] * 4, fast())
    assert all(d.state.role is Role.STANDBY and d.actions == () for d in ds)
    assert ds[-1].state.peer_failures == 4
    assert ds[-1].reason == ("no action: server2 would take ACTIVE (R1) but the witness is unreachable: "
                             "no promotion without the key")


def test_r1_does_not_promote_while_the_peer_holds_the_key() -> None:
    """The dead-looking peer's lease still lives (it may only be cut off from us): wait for it to expire."""
    ds = run(standby("server2"), [fail(witness=wv(holder="server1"))] * 3, fast())
    assert ds[-1].state.role is Role.STANDBY
    assert "the witness key is held by server1" in ds[-1].reason


@pytest.mark.parametrize("holder", [None, "server2"])
def test_r1_promotes_when_the_key_is_free_or_names_this_node(holder: str | None) -> None:
    """The key absent (the peer's lease expired) or naming us: R1 goes ahead (the edge then takes it)."""
    d = run(standby("server2"), [fail(witness=wv(holder=holder))] * 3, fast())[-1]
    assert (d.state.role, d.rule) == (Role.ACTIVE, "R1")


def test_r6_start_takes_active_only_with_the_witness() -> None:
    """Both starting: the primary's R6 promotion also waits for a witness that answers."""
    d = decide(standby("server1", epoch=0), ok(pv("server2", Role.STANDBY, 0), witness=lost(None)), fast())  # type: ignore[arg-type]
    assert d.state.role is Role.STANDBY and "(R6)" in d.reason
    d = decide(standby("server1", epoch=0), ok(pv("server2", Role.STANDBY, 0), witness=wv()), fast())
    assert d.state.role is Role.ACTIVE and d.rule == "R6"


# What the edge feeds back --------------------------------------------------------------------------


def test_the_taken_keys_revision_becomes_the_epoch() -> None:
    """Promotion with the key taken at revision 41: the committed epoch is 41 (a fencing token)."""
    d = promote(standby("server2", epoch=3), rule="R1", cause=Cause.FAILOVER, why="test")
    assert with_witness_epoch(d, 41).state.epoch == 41
    with pytest.raises(InvariantError):
        with_witness_epoch(d, 2)


def test_a_refused_take_keeps_the_observed_counters_and_explains() -> None:
    """A refused take is no promotion: the node stays STANDBY with the failures it counted, and says why."""
    before = standby("server2", peer_failures=2)
    d = decide(before, fail(witness=wv()), fast())
    assert d.state.role is Role.ACTIVE
    kept = before.evolve(peer_failures=3)
    r = witness_refused(kept, d, "the witness key changed while we took it")
    assert (r.state, r.actions, r.rule) == (kept, (), None)
    assert r.reason == ("no action: server2 would take ACTIVE (R1) but cannot take the witness key: "
                        "the witness key changed while we took it")


# Properties ----------------------------------------------------------------------------------------

peer_views = st.one_of(st.none(), st.builds(PeerView, node_id=st.just("server2"),
                                            role=st.sampled_from(Role), epoch=st.integers(0, 5)))
witnesses = st.builds(WitnessView, reachable=st.booleans(),
                      renewal_age_s=st.one_of(st.none(), st.floats(0, 10)),
                      lease_ttl_s=st.one_of(st.none(), st.sampled_from([2.0, 3.0, 150.0])),
                      holder=st.sampled_from([None, "server1", "server2"]), holds=st.booleans())
observations = st.builds(Observation, probe_ok=st.booleans(), peer=peer_views,
                         lan_ok=st.sampled_from([None, True, False]), vip_node=st.none(), witness=witnesses)


@settings(max_examples=300, deadline=None)
@given(st.lists(observations, min_size=1, max_size=30), st.sampled_from([Role.ACTIVE, Role.STANDBY]))
def test_property_never_active_past_the_witness_without_a_standby_peer(obs: list[Observation], role: Role) -> None:
    """After any tick, an ACTIVE node either renewed within L − I or heard its peer say STANDBY on that tick,
    and a node never promotes on a tick the witness did not answer (decide() also checks it itself)."""
    state = NodeState(node_id="server1", role=role, epoch=1)
    for o in obs:
        d = decide(state, o, fast())
        assert o.witness is not None
        if d.state.role is Role.ACTIVE and state.role is Role.ACTIVE:
            vouched = o.peer is not None and o.peer.role is Role.STANDBY
            assert not witness_lost(o.witness, fast(), "server1") or vouched
        if d.state.role is Role.ACTIVE and state.role is Role.STANDBY:
            assert o.witness.reachable and o.witness.holder != "server2"
        state = d.state


@settings(max_examples=300, deadline=None)
@given(st.lists(observations, min_size=1, max_size=30), st.sampled_from([Role.ACTIVE, Role.STANDBY]))
def test_property_a_healthy_witness_changes_nothing(obs: list[Observation], role: Role) -> None:
    """With the witness answering and the key ours or free, every decision is exactly what it is without one."""
    plain = with_w = NodeState(node_id="server1", role=role, epoch=1)
    for o in obs:
        healthy = wv(0.01, holder="server1" if with_w.role is Role.ACTIVE else None)
        a, b = decide(plain, Observation(o.probe_ok, o.peer, o.lan_ok, o.vip_node, None), fast()), \
            decide(with_w, with_witness(o, healthy), fast())
        assert (a.state, a.actions, a.rule, a.reason) == (b.state, b.actions, b.rule, b.reason)
        plain, with_w = a.state, b.state


@settings(max_examples=300, deadline=None)
@given(cut=st.floats(0, 20), gaps=st.lists(st.floats(0.9 * I, I), min_size=60, max_size=60),
       ttl=st.sampled_from([2.0, 3.0, 5.0]))
def test_property_an_isolated_active_is_down_before_its_lease_can_expire(cut: float, gaps: list[float],
                                                                         ttl: float) -> None:
    """With a clock: renewals succeed each tick until ``cut``, then the ACTIVE hears neither etcd nor its peer.
    Deciding every ≤ I, it steps down at a renewal age in [L − I, L): before etcd can expire its lease."""
    now, last_renewal, state = 0.0, 0.0, active("server1")
    for gap in gaps:
        now += gap
        if now < cut:
            last_renewal = now
            w = wv(0.0, holder="server1", holds=True, ttl=ttl)
        else:
            w = wv(now - last_renewal, reachable=False, holder="server1", ttl=ttl)
        d = decide(state, fail(witness=w), fast())
        state = d.state
        if state.role is Role.STANDBY:
            age = now - last_renewal
            assert ttl - I <= age < ttl
            assert d.rule == "R12" and Action.STOP_CTI in d.actions
            return
    assert now - last_renewal < ttl - I  # the run ended before the witness could count as lost

