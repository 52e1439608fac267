"""The decision core, rule by rule and bound edge by bound edge (SPEC section 4).

No mocks, no sleeps, no clock: a tick is one call to ``decide``; a run is a fold over observations.
"""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.model import Action, Cause, Decision, NodeState, Observation, PeerView, Role, other
from hotstandby.rules import (
    TO_ACTIVE,
    TO_STANDBY,
    StaleCommand,
    decide,
    on_role_command,
    restart_state,
)
from hotstandby.settings import ClusterSettings

NODES = ("server1", "server2")
NS = (1, 2, 3, 5, 10)


def cfg(**changes: object) -> ClusterSettings:
    """Fast-profile settings (I = T = 1 s, N = 3) with some fields changed."""
    base: dict[str, object] = {"heartbeat_interval_s": 1.0, "heartbeat_timeout_s": 1.0,
                               "failures_to_switch": 3}
    return ClusterSettings.model_validate({**base, **changes})


def pv(node_id: str, role: Role, epoch: int = 1, **kw: bool) -> PeerView:
    return PeerView(node_id=node_id, role=role, epoch=epoch, **kw)


def ok(peer: PeerView | None, **kw: object) -> Observation:
    """A tick where the peer's monitor answered and (when ``peer``) the exchange succeeded."""
    return Observation(probe_ok=True, peer=peer, **kw)  # type: ignore[arg-type]


def fail(**kw: object) -> Observation:
    """A tick where the peer answered nothing: probe and exchange failed."""
    return Observation(probe_ok=False, peer=None, **kw)  # type: ignore[arg-type]


def run(state: NodeState, observations: Iterable[Observation], settings: ClusterSettings) -> list[Decision]:
    """Fold ``decide`` over the observations, as the arbiter's loop does, returning every decision."""
    out: list[Decision] = []
    for obs in observations:
        d = decide(state, obs, settings)
        out.append(d)
        state = d.state
    return out


def standby(node_id: str, epoch: int = 1, **kw: object) -> NodeState:
    return NodeState(node_id=node_id, role=Role.STANDBY, epoch=epoch, **kw)  # type: ignore[arg-type]


def active(node_id: str, epoch: int = 1, cause: Cause = Cause.FAILOVER, **kw: object) -> NodeState:
    return NodeState(node_id=node_id, role=Role.ACTIVE, epoch=epoch, cause=cause, **kw)  # type: ignore[arg-type]


# R1 failover / R2 no false switch ------------------------------------------------------------------


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("n", [n for n in NS if n > 1])  # N = 1: no failure is too few (see the R2 tests)
def test_r1_n_minus_one_failures_do_nothing(node: str, n: int) -> None:
    """N-1 consecutive failed probes leave a STANDBY node STANDBY with no action, the count at N − 1."""
    ds = run(standby(node), [fail()] * (n - 1), cfg(failures_to_switch=n))
    assert len(ds) == n - 1 and ds[-1].state.peer_failures == n - 1
    assert all(d.state.role is Role.STANDBY and d.actions == () and d.rule is None for d in ds)


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("n", NS)
def test_r1_nth_failure_promotes_and_demotes_peer_first(node: str, n: int) -> None:
    """The N-th consecutive failure makes the STANDBY ACTIVE: demote the peer, then start CTI."""
    d = run(standby(node), [fail()] * n, cfg(failures_to_switch=n))[-1]
    assert (d.state.role, d.rule, d.state.cause) == (Role.ACTIVE, "R1", Cause.FAILOVER)
    assert d.actions == (Action.DEMOTE_PEER, Action.START_CTI)
    assert d.reason.startswith(f"{TO_ACTIVE}, R1 failover: maximum heart beat fails")


@pytest.mark.parametrize("n", [n for n in NS if n > 1])
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_r2_one_success_resets_the_count(n: int, where: int) -> None:
    """One success after k < N failures starts the count from zero: N − 1 more failures do not promote (k + N − 1
    failures in all would have, without the reset), and the N-th after the success does."""
    k = {"first": 1, "middle": max(1, n // 2), "last": n - 1}[where]
    ds = run(standby("server2"), [*[fail()] * k, ok(None), *[fail()] * n], cfg(failures_to_switch=n))
    roles = [d.state.role for d in ds]
    assert roles == [Role.STANDBY] * (k + n) + [Role.ACTIVE]
    assert ds[-1].rule == "R1" and ds[-1].state.peer_failures == n


def test_r2_with_n_1_a_success_never_switches_and_a_failure_does() -> None:
    """N = 1 has no run to interrupt: a successful probe leaves the STANDBY alone, the first failure promotes."""
    ds = run(standby("server2"), [ok(None), ok(None), fail()], cfg(failures_to_switch=1))
    assert [d.state.role for d in ds] == [Role.STANDBY, Role.STANDBY, Role.ACTIVE]


def test_r1_failure_count_appears_in_the_log() -> None:
    """Every failed probe writes `failure detected, count = k` for the fault-tolerant log."""
    ds = run(standby("server2"), [fail()] * 2, cfg())
    assert list(ds[0].log) == ["Check primary server : failure detected, count = 1"]
    assert list(ds[1].log) == ["Check primary server : failure detected, count = 2"]


@pytest.mark.parametrize("n", NS)
@pytest.mark.parametrize("extra", [0, 1, 20])
def test_r1_lan_failing_standby_never_promotes(n: int, extra: int) -> None:
    """A STANDBY whose LAN probes all fail never takes ACTIVE, however long the peer is silent."""
    ds = run(standby("server2"), [fail(lan_ok=False)] * (n + extra), cfg(failures_to_switch=n))
    assert all(d.state.role is Role.STANDBY and d.rule is None for d in ds)


@pytest.mark.parametrize("lan_ok", [None, True])
def test_r1_lan_ok_or_unchecked_allows_failover(lan_ok: bool | None) -> None:
    """With the LAN check off (None) or passing, the N-th failure fails over."""
    d = run(standby("server2"), [fail(lan_ok=lan_ok)] * 3, cfg())[-1]
    assert d.state.role == Role.ACTIVE


def test_r1_lan_back_on_the_nth_tick_fails_over_at_once() -> None:
    """Failures counted while the LAN was down still count: LAN back with N failures → ACTIVE."""
    ds = run(standby("server2"), [fail(lan_ok=False)] * 3 + [fail(lan_ok=True)], cfg())
    assert [d.state.role for d in ds] == [Role.STANDBY] * 3 + [Role.ACTIVE]


def test_r1_application_error_counts_even_when_the_exchange_answers() -> None:
    """A failed health probe counts even if the arbiter answered the exchange (switch on app error)."""
    obs = Observation(probe_ok=False, peer=pv("server1", Role.ACTIVE, 4))
    d = run(standby("server2", 4), [obs] * 3, cfg(switch_on_application_error=True))[-1]
    assert (d.rule, d.actions) == ("R1", (Action.DEMOTE_PEER, Action.START_CTI))


@pytest.mark.parametrize("own,peer_epoch,expected", [(1, 1, 2), (5, 3, 6), (3, 9, 10), (0, 0, 1)])
def test_r1_new_epoch_is_above_anything_seen(own: int, peer_epoch: int, expected: int) -> None:
    """A promotion takes max(own epoch, peer's last known) + 1."""
    state = standby("server2", own, peer=pv("server1", Role.ACTIVE, peer_epoch))
    d = run(state, [fail()] * 3, cfg())[-1]
    assert expected == d.state.epoch


@pytest.mark.parametrize("n", NS)
def test_r1_active_node_never_demotes_because_its_peer_died(n: int) -> None:
    """An ACTIVE node whose peer is silent stays ACTIVE (the peer is not a LAN probe)."""
    ds = run(active("server2"), [fail()] * (3 * n), cfg(failures_to_switch=n))
    assert all(d.state.role is Role.ACTIVE and d.actions == () for d in ds)


# R3 failback -------------------------------------------------------------------------------------


def failback_ticks(k: int, epoch: int = 2, **peer: bool) -> list[Observation]:
    return [ok(pv("server1", Role.STANDBY, epoch, **peer))] * k


@pytest.mark.parametrize("n", NS)
def test_r3_backup_hands_back_after_n_healthy_probes(n: int) -> None:
    """With auto_failback, the ACTIVE backup hands over once server1 is healthy N times in a row."""
    ds = run(active("server2", 2), failback_ticks(n), cfg(failures_to_switch=n))
    assert all(d.state.role is Role.ACTIVE for d in ds[:-1])
    last = ds[-1]
    assert (last.state.role, last.rule, last.state.cause) == (Role.STANDBY, "R3", Cause.FAILBACK)
    assert last.actions == (Action.STOP_CTI, Action.PROMOTE_PEER)
    assert last.reason.startswith(f"{TO_STANDBY}, R3 failback")


def test_r3_not_without_auto_failback() -> None:
    """Without auto_failback server2 stays ACTIVE however healthy server1 is."""
    ds = run(active("server2", 2), failback_ticks(30), cfg(auto_failback=False))
    assert all(d.state.role is Role.ACTIVE and d.rule is None for d in ds)


def test_r3_not_after_a_manual_switch() -> None:
    """A backup made ACTIVE by a manual switch keeps ACTIVE: the operator chose it."""
    ds = run(active("server2", 2, cause=Cause.MANUAL), failback_ticks(30), cfg())
    assert all(d.state.role is Role.ACTIVE for d in ds)


@pytest.mark.parametrize("vip,fires", [("server1", True), ("server2", False), (None, False)])
def test_r3_with_test_vip_destination_only_when_the_vip_routes_to_server1(
    vip: str | None, fires: bool
) -> None:
    """With test_vip_destination, failback needs the VIP to route to server1."""
    obs = [ok(pv("server1", Role.STANDBY, 2), vip_node=vip)] * 3
    ds = run(active("server2", 2), obs, cfg(test_vip_destination=True))
    assert fires == any(d.rule == "R3" for d in ds)


@pytest.mark.parametrize("peer", [{"can_be_active": False}, {"maintenance": True}])
def test_r3_not_to_a_server1_that_cannot_take_it(peer: dict[str, bool]) -> None:
    """No failback to a server1 whose LAN fails or that is in maintenance."""
    ds = run(active("server2", 2), failback_ticks(10, **peer), cfg())
    assert all(d.state.role is Role.ACTIVE for d in ds)


def test_r3_needs_consecutive_successes() -> None:
    """A failed probe restarts the failback count."""
    obs = [*failback_ticks(2), fail(), *failback_ticks(2)]
    ds = run(active("server2", 2), obs, cfg())
    assert all(d.state.role is Role.ACTIVE for d in ds)


def test_r3_primary_never_hands_over() -> None:
    """server1 ACTIVE with a healthy STANDBY server2 keeps ACTIVE."""
    ds = run(active("server1", 2), [ok(pv("server2", Role.STANDBY, 2))] * 20, cfg())
    assert all(d.state.role is Role.ACTIVE for d in ds)


# R4 dual active ----------------------------------------------------------------------------------


def both_active(k: int, peer: str, epoch: int = 3, vip: str | None = None) -> list[Observation]:
    return [ok(pv(peer, Role.ACTIVE, epoch), vip_node=vip)] * k


@pytest.mark.parametrize("n", NS)
def test_r4_backup_steps_down_after_n_dual_exchanges(n: int) -> None:
    """Both ACTIVE for N exchanges: the backup goes STANDBY and stops CTI; N-1 do nothing."""
    ds = run(active("server2", 3), both_active(n, "server1"), cfg(failures_to_switch=n))
    assert all(d.state.role is Role.ACTIVE for d in ds[:-1])
    assert (ds[-1].state.role, ds[-1].rule, ds[-1].actions) == (Role.STANDBY, "R4", (Action.STOP_CTI,))


@pytest.mark.parametrize("n", NS)
def test_r4_primary_stays_without_vip(n: int) -> None:
    """Without test_vip_destination the primary keeps ACTIVE in a dual-active pair."""
    ds = run(active("server1", 3), both_active(3 * n, "server2"), cfg(failures_to_switch=n))
    assert all(d.state.role is Role.ACTIVE for d in ds)


@pytest.mark.parametrize(
    "node,vip,steps_down",
    [
        ("server1", "server2", True),
        ("server2", "server2", False),
        ("server1", "server1", False),
        ("server2", "server1", True),
        ("server1", None, False),  # the VIP does not answer: the backup steps down
        ("server2", None, True),
    ],
)
def test_r4_with_vip_the_node_the_vip_does_not_route_to_steps_down(
    node: str, vip: str | None, steps_down: bool
) -> None:
    """With test_vip_destination the node the VIP does not route to steps down; no VIP answer: the backup."""
    ds = run(active(node, 3), both_active(3, other(node), vip=vip), cfg(test_vip_destination=True))
    assert steps_down == (ds[-1].state.role is Role.STANDBY)


def test_r4_a_failed_exchange_restarts_the_dual_count() -> None:
    """Dual ACTIVE must be seen on N consecutive exchanges."""
    obs = [*both_active(2, "server1"), fail(), *both_active(2, "server1")]
    ds = run(active("server2", 3), obs, cfg())
    assert all(d.state.role is Role.ACTIVE for d in ds)


# R5 LAN lost -------------------------------------------------------------------------------------


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("n", NS)
def test_r5_active_steps_down_on_the_nth_lan_failure(node: str, n: int) -> None:
    """An ACTIVE node whose LAN probes fail N consecutive times goes STANDBY and stops CTI."""
    obs = [ok(pv(other(node), Role.STANDBY), lan_ok=False)] * n
    ds = run(active(node), obs, cfg(failures_to_switch=n))
    assert all(d.state.role is Role.ACTIVE for d in ds[:-1])
    assert (
        ds[-1].state.role, ds[-1].rule, ds[-1].actions, ds[-1].state.cause,
    ) == (Role.STANDBY, "R5", (Action.STOP_CTI,), Cause.LAN_LOST)


@pytest.mark.parametrize("between", [True, None])
def test_r5_one_lan_success_or_no_check_resets(between: bool | None) -> None:
    """One LAN success (or the check turned off) restarts the LAN failure count."""
    peer = pv("server2", Role.STANDBY)
    obs = [ok(peer, lan_ok=False)] * 2 + [ok(peer, lan_ok=between)] + [ok(peer, lan_ok=False)] * 2
    ds = run(active("server1"), obs, cfg())
    assert all(d.state.role is Role.ACTIVE for d in ds)


# R13 cannot persist ------------------------------------------------------------------------------

DISK = "database or disk is full"


@pytest.mark.parametrize(("peer", "failures", "hands_over"), [
    (pv("server2", Role.STANDBY), 0, True),
    (pv("server2", Role.STANDBY, can_be_active=False), 0, False),
    (None, 1, False),
])
def test_r13_active_that_cannot_persist_steps_down_with_a_cause_of_its_own(peer: PeerView | None, failures: int,
                                                                          hands_over: bool) -> None:
    """An ACTIVE whose database refuses writes steps down by R13 (cause cannot_persist, not lan_lost) and hands
    ACTIVE to a peer that answered and can be ACTIVE."""
    obs = ok(peer, store_problem=DISK) if failures == 0 else fail(store_problem=DISK)
    d = decide(active("server1", peer=peer), obs, cfg())
    assert (d.state.role, d.rule, d.state.cause) == (Role.STANDBY, "R13", Cause.CANNOT_PERSIST)
    assert d.actions == ((Action.STOP_CTI, Action.PROMOTE_PEER) if hands_over else (Action.STOP_CTI,))
    assert d.reason == f"{TO_STANDBY}, R13 cannot persist the role ({DISK}); handing over"


@pytest.mark.parametrize("failures", [3, 10])
def test_r13_standby_that_cannot_persist_never_takes_active(failures: int) -> None:
    """A STANDBY whose database refuses writes does not promote, however dead its peer: it says why."""
    d = run(standby("server2"), [fail(store_problem=DISK)] * failures, cfg())[-1]
    assert d.state.role is Role.STANDBY and d.state.peer_failures == failures
    assert d.reason == f"no action: cannot take ACTIVE, the database is not writable ({DISK})"


@pytest.mark.parametrize(("settings", "maintenance"), [(cfg(), True), (cfg(enabled=False), False)])
def test_r13_is_paused_by_maintenance_and_off_when_standalone(settings: ClusterSettings, maintenance: bool) -> None:
    """Maintenance pauses R13 like every automatic switch (R11); a standalone node has no one to hand over to."""
    d = decide(active("server1", maintenance=maintenance), ok(pv("server2", Role.STANDBY), store_problem=DISK),
               settings)
    assert d.state.role is Role.ACTIVE and d.rule is None


# R6 start ----------------------------------------------------------------------------------------


def test_r6_both_standby_primary_promotes_at_once() -> None:
    """Both STANDBY: server1 takes ACTIVE on the first good exchange, without demoting its peer."""
    d = decide(standby("server1", 0), ok(pv("server2", Role.STANDBY, 0)), cfg())
    assert (d.state.role, d.rule, d.actions, d.state.epoch) == (Role.ACTIVE, "R6", (Action.START_CTI,), 1)


@pytest.mark.parametrize("can_be_active,promotes", [(True, False), (False, True)])
def test_r6_backup_promotes_only_when_the_primary_cannot_be_active(
    can_be_active: bool, promotes: bool
) -> None:
    """Both STANDBY: server2 waits for server1 unless server1 says it cannot be ACTIVE."""
    obs = ok(pv("server1", Role.STANDBY, 0, can_be_active=can_be_active))
    ds = run(standby("server2", 0), [obs] * 10, cfg())
    assert promotes == (ds[0].state.role is Role.ACTIVE)
    assert all(promotes == (d.state.role is Role.ACTIVE) for d in ds)


@pytest.mark.parametrize("node", NODES)
def test_r6_node_starting_while_peer_active_stays_standby(node: str) -> None:
    """A (re)started node that finds its peer ACTIVE stays STANDBY and adopts the cluster epoch."""
    ds = run(restart_state(node, 0, False), [ok(pv(other(node), Role.ACTIVE, 7))] * 20, cfg())
    assert all(d.state.role is Role.STANDBY for d in ds)
    assert ds[-1].state.epoch == 7


def test_r6_primary_waits_when_its_lan_fails() -> None:
    """A primary with a failing LAN does not take ACTIVE from a standby backup."""
    d = decide(standby("server1", 0), ok(pv("server2", Role.STANDBY, 0), lan_ok=False), cfg())
    assert d.state.role == Role.STANDBY


def test_r6_primary_needs_a_good_probe_this_tick() -> None:
    """R6 acts only on a tick where the peer's probe succeeded (no stale 'STANDBY')."""
    obs = Observation(probe_ok=False, peer=pv("server2", Role.STANDBY, 0))
    assert decide(standby("server1", 0), obs, cfg()).state.role == Role.STANDBY


def test_r6_node_starting_alone_becomes_active_by_r1() -> None:
    """Alone, a node takes ACTIVE after N failures by R1."""
    ds = run(restart_state("server2", 0, False), [fail()] * 3, cfg())
    assert [d.rule for d in ds if d.rule] == ["R1"]


# R7 manual switch / role commands ----------------------------------------------------------------


def test_r7_standby_command_demotes_and_stops_cti() -> None:
    """A STANDBY command with a newer epoch demotes the ACTIVE node and stops its CTI."""
    d = on_role_command(active("server1", 3), Role.STANDBY, 4, cause=Cause.MANUAL, why="switch to server2")
    assert (d.state.role, d.state.epoch, d.actions, d.rule) == (Role.STANDBY, 4, (Action.STOP_CTI,), "R7")
    assert d.reason.startswith(TO_STANDBY)


@pytest.mark.parametrize(
    "cause,rule", [(Cause.MANUAL, "R7"), (Cause.FAILBACK, "R3"), (Cause.SHUTDOWN, "R10")]
)
def test_r7_active_command_promotes_with_at_least_the_given_epoch(cause: Cause, rule: str) -> None:
    """An ACTIVE command promotes, starts CTI (no demote: the sender already stopped) in epoch ≥ given."""
    d = on_role_command(standby("server2", 3), Role.ACTIVE, 9, cause=cause, why="handover")
    assert (Role.ACTIVE, 9, (Action.START_CTI,), rule) == (d.state.role, d.state.epoch, d.actions, d.rule)


def test_r7_stale_standby_command_is_refused() -> None:
    """A STANDBY command from an older epoch cannot demote us."""
    with pytest.raises(StaleCommand):
        on_role_command(active("server1", 5), Role.STANDBY, 4, cause=Cause.PEER, why="old")


def test_r7_active_command_refused_when_the_node_cannot_be_active() -> None:
    """A node whose LAN fails refuses to take ACTIVE."""
    with pytest.raises(StaleCommand):
        on_role_command(standby("server2"), Role.ACTIVE, 2, cause=Cause.MANUAL, why="x", can_be_active=False)


def test_r7_manual_switch_works_in_maintenance() -> None:
    """Maintenance pauses automatic switching only; role commands still apply."""
    d = on_role_command(standby("server2", 1, maintenance=True), Role.ACTIVE, 2, cause=Cause.MANUAL, why="op")
    assert d.state.role == Role.ACTIVE


@pytest.mark.parametrize("role", [Role.ACTIVE, Role.STANDBY])
def test_r7_command_for_the_current_role_does_nothing(role: Role) -> None:
    """A command for the role already held changes nothing but the epoch."""
    state = NodeState(node_id="server2", role=role, epoch=3)
    d = on_role_command(state, role, 5, cause=Cause.MANUAL, why="again")
    assert (role, (), None, 5) == (d.state.role, d.actions, d.rule, d.state.epoch)


# R8 follow the VIP -------------------------------------------------------------------------------


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("n", NS)
def test_r8_vip_routing_to_a_standby_n_times_promotes_it(node: str, n: int) -> None:
    """The VIP routing to this STANDBY for N consecutive checks makes it ACTIVE (after demoting the peer)."""
    obs = [ok(pv(other(node), Role.ACTIVE, 2), vip_node=node)] * n
    ds = run(standby(node, 2), obs, cfg(test_vip_destination=True, failures_to_switch=n))
    assert all(d.state.role is Role.STANDBY for d in ds[:-1])
    assert (ds[-1].rule, ds[-1].actions) == ("R8", (Action.DEMOTE_PEER, Action.START_CTI))


@pytest.mark.parametrize("gap", [None, "server1"])
def test_r8_needs_consecutive_checks(gap: str | None) -> None:
    """A check where the VIP did not answer, or routed elsewhere, restarts the count."""
    peer = pv("server1", Role.ACTIVE, 2)
    obs = [ok(peer, vip_node="server2")] * 2 + [ok(peer, vip_node=gap)] + [ok(peer, vip_node="server2")] * 2
    ds = run(standby("server2", 2), obs, cfg(test_vip_destination=True))
    assert all(d.state.role is Role.STANDBY for d in ds)


def test_r8_not_without_test_vip_destination() -> None:
    """The VIP is only followed with test_vip_destination on."""
    obs = [ok(pv("server1", Role.ACTIVE, 2), vip_node="server2")] * 20
    ds = run(standby("server2", 2), obs, cfg())
    assert all(d.state.role is Role.STANDBY for d in ds)


# R11 maintenance ---------------------------------------------------------------------------------

PAUSED_SCENARIOS = {
    "R1": (standby("server2", maintenance=True), fail()),
    "R3": (active("server2", maintenance=True), ok(pv("server1", Role.STANDBY))),
    "R4": (active("server2", maintenance=True), ok(pv("server1", Role.ACTIVE))),
    "R5": (active("server1", maintenance=True), ok(pv("server2", Role.STANDBY), lan_ok=False)),
    "R6": (standby("server1", maintenance=True), ok(pv("server2", Role.STANDBY))),
    "R8": (standby("server2", maintenance=True), ok(pv("server1", Role.ACTIVE), vip_node="server2")),
}


@pytest.mark.parametrize("rule", sorted(PAUSED_SCENARIOS))
def test_r11_maintenance_pauses_every_automatic_switch(rule: str) -> None:
    """While maintenance is on, the situation of each rule switches nothing, however long it lasts."""
    state, obs = PAUSED_SCENARIOS[rule]
    ds = run(state, [obs] * 30, cfg(test_vip_destination=rule == "R8"))
    assert all(d.state.role is state.role and d.actions == () and d.rule is None for d in ds)
    assert ds[-1].reason.startswith("PAUSE: ")


def test_r11_counts_keep_running_in_maintenance() -> None:
    """Probe failures are still counted and logged during maintenance (so status stays truthful)."""
    ds = run(standby("server2", maintenance=True), [fail()] * 4, cfg())
    assert ds[-1].state.peer_failures == 4


# R0 disabled -------------------------------------------------------------------------------------


@pytest.mark.parametrize("node", NODES)
def test_disabled_runs_standalone_active(node: str) -> None:
    """enabled=false: the node takes ACTIVE alone at once and never demotes its (absent) peer."""
    ds = run(standby(node), [fail()] * 3, cfg(enabled=False))
    assert (ds[0].state.role, ds[0].actions) == (Role.ACTIVE, (Action.START_CTI,))
    assert all(d.state.role is Role.ACTIVE and d.actions == () for d in ds[1:])


# Epochs and restarts -----------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("epoch", [0, 1, 99])
@pytest.mark.parametrize("maintenance", [False, True])
def test_restart_is_standby_whatever_was_stored(role: Role, epoch: int, maintenance: bool) -> None:
    """A restarted node is STANDBY, keeps its stored epoch and maintenance, and counts from zero."""
    state = restart_state("server1", epoch, maintenance)
    assert (Role.STANDBY, epoch, maintenance, 0, Cause.START) == (
        state.role, state.epoch, state.maintenance, state.peer_failures, state.cause,
    )


def test_standby_adopts_a_higher_cluster_epoch() -> None:
    """The exchange carries the epoch: a STANDBY converges on the ACTIVE's."""
    assert decide(standby("server2", 3), ok(pv("server1", Role.ACTIVE, 8)), cfg()).state.epoch == 8


# Property tests ----------------------------------------------------------------------------------

peer_views = st.builds(
    PeerView,
    node_id=st.just("?"),
    role=st.sampled_from(list(Role)),
    epoch=st.integers(0, 30),
    lan_ok=st.booleans(),
    maintenance=st.booleans(),
    can_be_active=st.booleans(),
)
observations = st.builds(
    Observation,
    probe_ok=st.booleans(),
    peer=st.none() | peer_views,
    lan_ok=st.sampled_from([None, True, False]),
    vip_node=st.sampled_from([None, "server1", "server2"]),
)
settings_st = st.builds(
    cfg,
    failures_to_switch=st.integers(1, 6),
    auto_failback=st.booleans(),
    test_vip_destination=st.booleans(),
)
states = st.builds(
    NodeState,
    node_id=st.sampled_from(NODES),
    role=st.sampled_from(list(Role)),
    epoch=st.integers(0, 30),
    cause=st.sampled_from(list(Cause)),
    maintenance=st.booleans(),
)
#: A step is either a tick's observation or a role command from the peer (role, epoch delta).
commands = st.tuples(st.sampled_from(list(Role)), st.integers(-2, 3), st.sampled_from(list(Cause)))
steps = st.lists(observations | commands, min_size=1, max_size=40)


def fix_peer(state: NodeState, obs: Observation) -> Observation:
    """Observations carry the peer's own id."""
    if obs.peer is None:
        return obs
    return Observation(obs.probe_ok, PeerView(state.peer_id, obs.peer.role, obs.peer.epoch, obs.peer.lan_ok,
                                               obs.peer.maintenance, obs.peer.can_be_active),
                       obs.lan_ok, obs.vip_node)


def walk(state: NodeState, seq: list[object], settings: ClusterSettings
         ) -> list[tuple[NodeState, Observation | None, Decision, int]]:
    """Apply ticks and role commands in order; returns (before, obs, decision, trailing failures)."""
    out = []
    trailing = 0
    for step in seq:
        if isinstance(step, Observation):
            obs = fix_peer(state, step)
            trailing = 0 if obs.probe_ok else trailing + 1
            d = decide(state, obs, settings)
            out.append((state, obs, d, trailing))
        else:
            role, delta, cause = step  # type: ignore[misc]
            try:
                d = on_role_command(state, role, max(0, state.epoch + delta), cause=cause, why="peer")
            except StaleCommand:
                continue
            out.append((state, None, d, trailing))
        state = d.state
    return out


@settings(max_examples=300, deadline=None)
@given(states, steps, settings_st)
def test_property_never_promote_on_fewer_than_n_consecutive_failures(
    state: NodeState, seq: list[object], settings: ClusterSettings
) -> None:
    """A promotion on fewer than N trailing failures came from a live STANDBY peer (R6) or the VIP (R8)."""
    n = settings.failures_to_switch
    for before, obs, d, trailing in walk(state, seq, settings):
        if obs is None or before.role is not Role.STANDBY or d.state.role is not Role.ACTIVE:
            continue
        if d.rule == "R1":
            assert trailing >= n
        elif trailing < n:
            assert d.rule in ("R6", "R8", "R0")
            if d.rule == "R6":
                assert obs.probe_ok and obs.peer is not None and obs.peer.role is Role.STANDBY
            if d.rule == "R8":
                assert settings.test_vip_destination and obs.vip_node == before.node_id


@settings(max_examples=300, deadline=None)
@given(states, steps, settings_st)
def test_property_cti_started_only_when_active(
    state: NodeState, seq: list[object], settings: ClusterSettings
) -> None:
    """START_CTI only comes with an ACTIVE result, STOP_CTI only with a STANDBY one."""
    for _before, _obs, d, _ in walk(state, seq, settings):
        if Action.START_CTI in d.actions:
            assert d.state.role == Role.ACTIVE
        if Action.STOP_CTI in d.actions:
            assert d.state.role == Role.STANDBY


@settings(max_examples=300, deadline=None)
@given(states, steps, settings_st)
def test_property_epochs_only_increase(
    state: NodeState, seq: list[object], settings: ClusterSettings
) -> None:
    """No decision or role command lowers the epoch, and every promotion raises it."""
    for before, _obs, d, _ in walk(state, seq, settings):
        assert d.state.epoch >= before.epoch
        if before.role is Role.STANDBY and d.state.role is Role.ACTIVE:
            assert d.state.epoch > before.epoch


@settings(max_examples=300, deadline=None)
@given(states, steps, settings_st)
def test_property_switch_reason_names_direction_and_rule(
    state: NodeState, seq: list[object], settings: ClusterSettings
) -> None:
    """A role change's reason starts with the vendor's SWITCH sentence for its direction, then the rule."""
    for before, _obs, d, _ in walk(state, seq, settings):
        if d.state.role is before.role:
            assert d.rule is None
            continue
        assert d.rule is not None
        head = TO_ACTIVE if d.state.role is Role.ACTIVE else TO_STANDBY
        assert d.reason.startswith(f"{head}, {d.rule} ")


@settings(max_examples=300, deadline=None)
@given(states, st.lists(observations, min_size=1, max_size=40), settings_st)
def test_property_maintenance_means_no_automatic_switch(
    state: NodeState, seq: list[Observation], settings: ClusterSettings
) -> None:
    """With maintenance on, no tick changes the role or acts, but R12: an ACTIVE that can no longer show it is
    the only one (the witness lost, its peer silent) steps down and stops CTI all the same."""
    state = state.evolve(maintenance=True)
    for before, obs, d, _ in walk(state, list(seq), settings):
        if d.rule == "R12":
            assert obs.witness is not None and (before.role, d.state.role, d.actions) == (
                Role.ACTIVE, Role.STANDBY, (Action.STOP_CTI,))
        else:
            assert (before.role, ()) == (d.state.role, d.actions)


@settings(max_examples=300, deadline=None)
@given(states, st.integers(0, 1000), st.booleans(), st.lists(observations, max_size=5))
def test_property_restarted_node_is_standby_and_never_active_by_itself(
    stored: NodeState, epoch: int, maintenance: bool, seq: list[Observation]
) -> None:
    """Whatever it stored, a restarted node is STANDBY and takes ACTIVE only through a rule that fired."""
    state = restart_state(stored.node_id, epoch, maintenance)
    assert state.role == Role.STANDBY
    assert epoch == state.epoch
    for before, _obs, d, _ in walk(state, list(seq), cfg()):
        if d.state.role is Role.ACTIVE and before.role is Role.STANDBY:
            assert d.rule in ("R1", "R6", "R8")


def test_epoch_is_steady_while_nothing_changes() -> None:
    """A healthy ACTIVE/STANDBY pair exchanging states keeps one epoch: epochs move only on role changes."""
    a, b = active("server1", 5), standby("server2", 5)
    for _ in range(10):
        a = decide(a, ok(pv("server2", b.role, b.epoch)), cfg()).state
        b = decide(b, ok(pv("server1", a.role, a.epoch)), cfg()).state
    assert (a.epoch, b.epoch) == (5, 5)


@pytest.mark.parametrize("stepped_down_epoch,expected", [(4, 5), (6, 7), (9, 10)])
def test_epoch_after_dual_active_the_remaining_active_moves_above(
    stepped_down_epoch: int, expected: int
) -> None:
    """After R4 the node that stays ACTIVE moves above the one that stepped down, even at an equal epoch."""
    a = active("server1", 4, dual_active=1)
    d = decide(a, ok(pv("server2", Role.STANDBY, stepped_down_epoch)), cfg())
    assert d.state.epoch == expected


@pytest.mark.parametrize("n", NS)
def test_r6_primary_switched_away_waits_n_plus_one_exchanges(n: int) -> None:
    """A primary demoted by a manual switch does not grab ACTIVE back on a view older than the target's
    promotion: it waits N+1 exchanges with both STANDBY (the switch's promotion was lost)."""
    state = standby("server1", 8, cause=Cause.MANUAL)
    ds = run(state, [ok(pv("server2", Role.STANDBY, 7))] * (n + 1), cfg(failures_to_switch=n))
    assert [d.state.role for d in ds] == [Role.STANDBY] * n + [Role.ACTIVE]
    assert ds[-1].rule == "R6"


def test_r6_switch_race_from_the_simulator_is_gone() -> None:
    """Seed 34 of the simulator: switch to server2, server1's in-flight exchange still saw server2
    STANDBY and R6 made server1 ACTIVE again at once, so both ran CTI. Replayed here as ticks."""
    after_switch = on_role_command(active("server1", 7), Role.STANDBY, 8, cause=Cause.MANUAL, why="switch").state
    d = decide(after_switch, ok(pv("server2", Role.STANDBY, 7)), cfg(failures_to_switch=2))
    assert (d.state.role, d.rule) == (Role.STANDBY, None)


def test_r7_switch_to_a_node_already_active_sticks() -> None:
    """Simulator seeds 3089, 5771: a switch to server2 during a not yet resolved dual ACTIVE found it
    already ACTIVE; it kept cause failover, so R3 handed ACTIVE straight back to server1."""
    d = on_role_command(active("server2", 8, cause=Cause.FAILOVER), Role.ACTIVE, 8, cause=Cause.MANUAL, why="switch")
    assert (d.state.role, d.state.cause, d.actions) == (Role.ACTIVE, Cause.MANUAL, ())
    ds = run(d.state, failback_ticks(10, epoch=8), cfg())
    assert all(x.state.role is Role.ACTIVE for x in ds)
