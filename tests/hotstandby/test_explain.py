"""`explain` is the core's own decision, replayed: the next tick is decide(), a scenario is decide() tick by tick."""

from __future__ import annotations

from hypothesis import given

from hotstandby.explain import explain, play
from hotstandby.model import Cause, NodeState, Observation, PeerView, Role, WitnessView
from hotstandby.rules import decide
from hotstandby.settings import ClusterSettings
from tests.hotstandby.test_rules import fix_peer, observations, settings_st, states

CFG = ClusterSettings(heartbeat_interval_s=0.5, heartbeat_timeout_s=0.5, failures_to_switch=3)


def standby(node: str = "server2", epoch: int = 7) -> NodeState:
    return NodeState(node, Role.STANDBY, epoch, peer=PeerView("server1", Role.ACTIVE, epoch), probed=True)


def active(node: str = "server1", epoch: int = 7) -> NodeState:
    peer = "server2" if node == "server1" else "server1"
    return NodeState(node, Role.ACTIVE, epoch, Cause.FAILOVER, peer=PeerView(peer, Role.STANDBY, epoch), probed=True)


def healthy(peer: str, role: Role, epoch: int = 7, lan_ok: bool | None = True) -> Observation:
    return Observation(probe_ok=True, peer=PeerView(peer, role, epoch), lan_ok=lan_ok)


@given(states, observations, settings_st)
def test_the_next_tick_is_what_decide_says(state: NodeState, obs: Observation, cfg: ClusterSettings) -> None:
    """For any state and observation, explain's next tick is exactly rules.decide's decision."""
    obs = fix_peer(state, obs)
    d = decide(state, obs, cfg)
    got = explain(state, obs, cfg)["next_tick"]
    assert (got["reason"], got["rule"], got["role"], got["epoch"]) == (d.reason, d.rule, d.state.role.value,
                                                                     d.state.epoch)


def test_peer_dead_standby_fails_over_on_the_nth_tick() -> None:
    """A STANDBY whose ACTIVE dies: no action for N-1 ticks, R1 on tick N (N·I from now) in the next epoch."""
    sc = explain(standby(), healthy("server1", Role.ACTIVE), CFG, scenario="peer-dead")["scenario"]
    ticks = sc["ticks"]
    assert [t["rule"] for t in ticks] == [None, None, "R1"]
    assert ticks[0]["reason"].endswith("1/3 consecutive failures")
    assert (ticks[-1]["after_s"], ticks[-1]["role"], ticks[-1]["epoch"]) == (1.5, "ACTIVE", 8)
    assert ticks[-1]["actions"] == ["demote_peer", "start_cti"]
    assert sc["outcome"].startswith("server2 becomes ACTIVE on tick 3 (about 1.5 s from now), epoch 8 (R1)")


def test_peer_dead_active_stays_active() -> None:
    """An ACTIVE whose STANDBY dies stays ACTIVE (an ACTIVE never demotes because its peer died)."""
    sc = explain(active(), healthy("server2", Role.STANDBY), CFG, scenario="peer-dead")["scenario"]
    assert all(t["role"] == "ACTIVE" and t["rule"] is None for t in sc["ticks"])
    assert sc["outcome"].startswith("server1 stays ACTIVE")


def test_lan_lost_with_probes_steps_down_and_without_them_nothing_notices() -> None:
    """R5 on tick N when LAN probes are configured; with none (lan_ok None) the assumption says nothing notices."""
    sc = explain(active(), healthy("server2", Role.STANDBY), CFG, scenario="lan-lost")["scenario"]
    assert (sc["ticks"][-1]["rule"], sc["ticks"][-1]["role"], len(sc["ticks"])) == ("R5", "STANDBY", 3)
    off = explain(active(), healthy("server2", Role.STANDBY, lan_ok=None), CFG, scenario="lan-lost")["scenario"]
    assert "LAN check is off" in off["assumes"] and off["outcome"].startswith("server1 stays ACTIVE")


def test_vip_to_this_standby_promotes_only_when_the_pair_follows_the_vip() -> None:
    """R8 after N checks with test_vip_destination; without it the VIP is not even looked at."""
    follow = CFG.model_copy(update={"test_vip_destination": True})
    sc = explain(standby(), healthy("server1", Role.ACTIVE), follow, scenario="vip-to", target="server2")["scenario"]
    assert sc["ticks"][-1]["rule"] == "R8" and sc["ticks"][-1]["role"] == "ACTIVE"
    plain = explain(standby(), healthy("server1", Role.ACTIVE), CFG, scenario="vip-to", target="server2")
    assert "test_vip_destination is off" in plain["scenario"]["assumes"]
    assert all(t["rule"] is None for t in plain["scenario"]["ticks"])


def test_peer_dead_waits_for_the_dead_peers_witness_lease() -> None:
    """With the key held by the dead ACTIVE, the STANDBY promotes only once its lease (L) can have expired."""
    w = WitnessView(reachable=True, renewal_age_s=0.1, lease_ttl_s=2.0, holder="server1")
    obs = healthy("server1", Role.ACTIVE)._replace(witness=w)
    steps = play(standby(), obs._replace(probe_ok=False, peer=None), CFG, peer_dies=True, most=10)
    assert steps[-1].decision.rule == "R1"
    assert steps[-1].after_s >= 2.0
    assert "witness key is held by server1" in steps[-2].decision.reason


def test_nothing_observed_yet() -> None:
    """Before the first tick there is no observation: explain says so and decides nothing."""
    out = explain(standby(), None, CFG, scenario="peer-dead")
    assert out["next_tick"]["reason"].startswith("no tick completed yet") and out["scenario"] is None


def test_switch_from_the_active_is_the_cores_plan_in_words_with_its_rollback() -> None:
    """--switch server2 asked of the ACTIVE server1: R7's plan (step down, stop CTI, release the key, tell
    server2 ACTIVE) and the rollback that takes ACTIVE back when server2 does not take it."""
    sc = explain(active(), healthy("server2", Role.STANDBY), CFG, scenario="switch", target="server2")["scenario"]
    assert (sc["name"], sc["target"], sc["ticks"]) == ("switch", "server2", [])
    steps = sc["steps"]
    assert steps[0].startswith("server1 commits STANDBY at epoch 7")
    assert "server1 stops its CTI server" in steps
    told = [i for i, s in enumerate(steps) if s.startswith("server2 is told to go ACTIVE")]
    assert told and told[0] > steps.index("server1 stops its CTI server")  # CTI down before the peer is asked
    assert steps[-1].startswith("if that fails: server1 takes ACTIVE (R7")
    assert "R7" in sc["outcome"] and not sc["outcome"].startswith("refused")


def test_switch_to_an_unreachable_peer_and_stop_of_a_standby_change_nothing() -> None:
    """The refusals and no-ops are the core's own: a switch to a peer whose probe failed is refused with the
    409's reason; SIGTERM of a STANDBY does nothing to the pair."""
    obs = Observation(probe_ok=False, peer=None, lan_ok=True)
    sc = explain(active(), obs, CFG, scenario="switch", target="server2")["scenario"]
    assert sc["outcome"].startswith("refused: target server2 is unreachable or unhealthy") and sc["steps"] == []
    sc = explain(standby(), healthy("server1", Role.ACTIVE), CFG, scenario="stop")["scenario"]
    assert (sc["outcome"], sc["steps"]) == ("no action: server2 stops as STANDBY", [])


def test_stop_of_the_active_hands_over_to_a_healthy_peer() -> None:
    """SIGTERM of the ACTIVE with a healthy peer: R10 steps down, stops CTI and tells the peer ACTIVE."""
    sc = explain(active(), healthy("server2", Role.STANDBY), CFG, scenario="stop")["scenario"]
    assert "handing ACTIVE to server2" in sc["outcome"]
    assert any(s.startswith("server2 is told to go ACTIVE") for s in sc["steps"])
