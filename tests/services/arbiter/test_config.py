"""The arbiter's ConfigBook (SPEC sections 2 and 5): stamped, durable, validated, merged with the peer's.

Real SQLite files in tmp_path and real hybrid clocks over injected wall clocks; two nodes are two
ConfigBooks on two databases, exchanging what ``GET /config`` would carry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotstandby.hlc import ZERO, HybridClock, Timestamp
from hotstandby.replication import Stamped
from hotstandby.settings import CLUSTER_FIELDS, ClusterSettings, SettingsError
from hotstandby.store import Store
from services.arbiter.config import ConfigBook

T0 = 1_795_618_107.734
BOOT = ClusterSettings(server1_address="10.0.0.1", server2_address="10.0.0.2", heartbeat_interval_s=30,
                       heartbeat_timeout_s=10, failures_to_switch=5)


class Wall:
    """A settable wall clock in seconds."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Node:
    """One node's config book on its own database, with its own wall clock."""

    def __init__(self, path: Path, node_id: str, bootstrap: ClusterSettings = BOOT, wall: float = T0) -> None:
        self.path, self.node_id = path, node_id
        self.wall = Wall(wall)
        self.store = Store(path)
        self.book = ConfigBook(self.store, HybridClock(self.wall), node_id, bootstrap)

    def reopen(self, bootstrap: ClusterSettings = BOOT) -> Node:
        self.store.close()
        return Node(self.path, self.node_id, bootstrap, self.wall.t)

    def settings(self) -> dict[str, Any]:
        return self.book.as_json()["settings"]

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    one, two = Node(tmp_path / "s1.db", "server1"), Node(tmp_path / "s2.db", "server2")
    yield one, two
    one.close()
    two.close()


@pytest.fixture
def node(nodes: tuple[Node, Node]) -> Node:
    return nodes[0]


def exchange(a: Node, b: Node) -> tuple[list[str], list[str]]:
    """One heartbeat's worth of replication: each pulls the other's settings."""
    return a.book.merge_remote(b.settings()), b.book.merge_remote(a.settings())


def test_first_start_stores_bootstrap_with_the_zero_stamp(node: Node) -> None:
    """On an empty database every cluster setting is stored from the bootstrap values, stamped zero, origin us."""
    stored = node.store.load_settings()
    assert set(CLUSTER_FIELDS) == set(stored)
    assert {n: Stamped(getattr(BOOT, n), ZERO, "server1") for n in CLUSTER_FIELDS} == stored
    assert node.book.current == BOOT
    assert node.book.repaired is None


def test_second_start_keeps_stored_values_and_ignores_the_environment(node: Node) -> None:
    """A restarted node runs on what its database holds, whatever its bootstrap says now."""
    node.book.put({"failures_to_switch": 3}, origin="server1")
    other_env = BOOT.model_copy(update={"failures_to_switch": 9, "heartbeat_interval_s": 60.0})
    again = node.reopen(other_env)
    try:
        assert (again.book.current.failures_to_switch, again.book.current.heartbeat_interval_s) == (3, 30.0)
        assert node.book.digest() == again.book.digest()
    finally:
        again.close()


def test_restarted_clock_never_issues_below_a_stored_stamp(node: Node) -> None:
    """A node whose wall clock went back an hour across a restart still stamps its next change above the last."""
    node.book.put({"failures_to_switch": 3}, origin="server1")
    before = node.book.table["failures_to_switch"].updated_at
    node.wall.t -= 3600
    again = node.reopen()
    try:
        again.book.put({"failures_to_switch": 4}, origin="server1")
        assert again.book.table["failures_to_switch"].updated_at > before
    finally:
        again.close()


@pytest.mark.parametrize(
    ("patch", "value"),
    [
        ({"failures_to_switch": 3}, 3),
        ({"heartbeat_timeout_s": "2.5"}, 2.5),
        ({"enabled": False}, False),
        ({"vip_address": " 10.0.0.10:8080 "}, "10.0.0.10:8080"),
        ({"lan_probe_addresses": "10.0.0.254:53, 10.0.0.253:80"}, "10.0.0.254:53,10.0.0.253:80"),
    ],
)
def test_put_stores_the_validated_value_stamped_now(node: Node, patch: dict[str, Any], value: Any) -> None:
    """``put`` returns the changed names and stores the normalised value with a fresh stamp and the origin."""
    name = next(iter(patch))
    assert [name] == node.book.put(patch, origin="server1")
    st_ = node.book.table[name]
    assert (value, "server1") == (st_.value, st_.origin)
    assert st_.updated_at > ZERO
    assert value == getattr(node.book.current, name)
    assert st_ == node.store.load_settings()[name]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"failures_to_switch": 0, "auto_failback": False}, "failures_to_switch"),
        ({"heartbeat_timeout_s": 31, "monitor_port": 9090}, "heartbeat_timeout_s"),
        ({"heartbeat_interval_s": 5}, "heartbeat_timeout_s"),  # T = 10 would exceed the new I
        ({"server2_address": "10.0.0.1", "cti_restart_time": "03:00"}, "server2_address"),
        ({"cti_restart_time": "25:00", "failures_to_switch": 3}, "cti_restart_time"),
        ({"vip_address": "vip:0"}, "vip_address"),
        ({"no_such_setting": 1, "failures_to_switch": 3}, "no_such_setting"),
    ],
)
def test_bad_put_refuses_the_whole_request(node: Node, patch: dict[str, Any], field: str) -> None:
    """One bad or unknown field refuses the request with its name; no field changes, in memory or on disk."""
    before, stored = node.book.digest(), node.store.load_settings()
    with pytest.raises(SettingsError) as info:
        node.book.put(patch, origin="server1")
    assert field in [n for n, _ in info.value.errors]
    assert before == node.book.digest()
    assert stored == node.store.load_settings()
    assert node.book.current == BOOT


@pytest.mark.parametrize(
    "patch",
    [{}, {"failures_to_switch": 5}, {"heartbeat_timeout_s": "10"}, {"server1_address": " 10.0.0.1 "},
     {"enabled": True, "auto_failback": True}],
)
def test_no_op_put_changes_nothing(node: Node, patch: dict[str, Any]) -> None:
    """A put of the values already held returns no names and leaves stamps, digest and database alone."""
    before, stored = node.book.digest(), node.store.load_settings()
    assert node.book.put(patch, origin="server1") == []
    assert before == node.book.digest()
    assert stored == node.store.load_settings()


def test_put_is_durable_when_it_returns(node: Node) -> None:
    """After ``put`` returns, a fresh Store and ConfigBook on the same file hold the value and its stamp."""
    node.book.put({"heartbeat_interval_s": 2, "heartbeat_timeout_s": 1, "failures_to_switch": 3}, origin="server1")
    fresh_store = Store(node.path)
    try:
        fresh = ConfigBook(fresh_store, HybridClock(Wall()), "server1", ClusterSettings())
        assert (fresh.current.heartbeat_interval_s, fresh.current.heartbeat_timeout_s,
                                 fresh.current.failures_to_switch) == (2.0, 1.0, 3)
        assert node.book.digest() == fresh.digest()
    finally:
        fresh_store.close()


def test_merge_remote_takes_only_newer_versions(nodes: tuple[Node, Node]) -> None:
    """The peer's newer settings are taken and the changed names returned; older ones are ignored."""
    one, two = nodes
    two.book.put({"failures_to_switch": 7}, origin="server2")
    one.wall.t += 10
    one.book.put({"auto_failback": False}, origin="server1")
    two.wall.t += 5  # two changes auto_failback too, but before one did (by the hybrid clock)
    two.book.put({"auto_failback": True, "monitor_port": 9090}, origin="server2")
    # two's clock is behind one's, but its auto_failback stamp is what counts: older, so ignored.
    assert one.book.merge_remote(two.settings()) == ["failures_to_switch", "monitor_port"]
    assert (one.book.current.failures_to_switch, one.book.current.auto_failback,
                                one.book.current.monitor_port) == (7, False, 9090)
    assert one.book.merge_remote(two.settings()) == []  # a second delivery changes nothing


def test_merge_remote_newer_stamp_same_value_is_stored_silently(nodes: tuple[Node, Node]) -> None:
    """A newer version carrying the value we already have is stored but not reported as a change."""
    one, two = nodes
    two.book.put({"failures_to_switch": 3}, origin="server2")
    two.book.put({"failures_to_switch": 5}, origin="server2")  # back to the bootstrap value, newer stamp
    assert one.book.merge_remote(two.settings()) == []
    assert one.book.digest() == two.book.digest()
    assert two.book.table["failures_to_switch"] == one.store.load_settings()["failures_to_switch"]


def test_merge_remote_ignores_unknown_names(node: Node) -> None:
    """Settings this version does not know (a newer peer's) are skipped."""
    stray = Stamped(1, Timestamp(10**13), "server2").to_json()
    assert node.book.merge_remote({"from_the_future": stray}) == []
    assert "from_the_future" not in node.store.load_settings()


def test_later_change_wins_despite_a_slow_clock(nodes: tuple[Node, Node]) -> None:
    """A change made after receiving the peer's, on a node whose clock is an hour behind, still wins."""
    one, two = nodes
    two.wall.t += 3600
    two.book.put({"failures_to_switch": 9}, origin="server2")
    one.book.merge_remote(two.settings())
    one.book.put({"failures_to_switch": 4}, origin="server1")
    assert two.book.merge_remote(one.settings()) == ["failures_to_switch"]
    assert two.book.current.failures_to_switch == 4


def test_bootstrap_tie_is_broken_the_same_way_on_both_nodes(tmp_path: Path) -> None:
    """Two nodes bootstrapped from different environments converge on one set (the higher origin's)."""
    one = Node(tmp_path / "a.db", "server1", BOOT.model_copy(update={"failures_to_switch": 3}))
    two = Node(tmp_path / "b.db", "server2", BOOT.model_copy(update={"failures_to_switch": 7}))
    try:
        exchange(one, two)
        assert one.book.digest() == two.book.digest()
        assert one.book.current == two.book.current
    finally:
        one.close()
        two.close()


def test_conflicting_t_and_i_are_repaired_identically(nodes: tuple[Node, Node]) -> None:
    """T raised on one node and I lowered on the other, both valid alone, merge into T > I: both nodes
    run with T clipped to I and say so in ``repaired``, while storing the same versions."""
    one, two = nodes
    one.book.put({"heartbeat_timeout_s": 20}, origin="server1")  # T=20 <= I=30
    two.book.put({"heartbeat_interval_s": 15}, origin="server2")  # T=10 <= I=15
    exchange(one, two)
    assert one.book.digest() == two.book.digest()
    for n in (one, two):
        assert (n.book.current.heartbeat_timeout_s, n.book.current.heartbeat_interval_s) == (15.0, 15.0)
        assert n.book.repaired and "heartbeat_timeout_s" in n.book.repaired
        assert n.book.table["heartbeat_timeout_s"].value == 20.0
    assert one.book.current == two.book.current


def test_repair_clears_once_the_conflict_is_fixed(nodes: tuple[Node, Node]) -> None:
    """A later put that makes T <= I again ends the repair on both nodes."""
    one, two = nodes
    one.book.put({"heartbeat_timeout_s": 20}, origin="server1")
    two.book.put({"heartbeat_interval_s": 15}, origin="server2")
    exchange(one, two)
    one.wall.t += 1
    assert one.book.put({"heartbeat_timeout_s": 5}, origin="server1") == ["heartbeat_timeout_s"]
    exchange(one, two)
    for n in (one, two):
        assert n.book.repaired is None
        assert (n.book.current.heartbeat_timeout_s, n.book.current.heartbeat_interval_s) == (5.0, 15.0)


def test_repaired_state_survives_a_restart(nodes: tuple[Node, Node]) -> None:
    """A node restarted on a conflicting stored pair runs the same repair rather than refusing to start."""
    one, two = nodes
    one.book.put({"heartbeat_timeout_s": 20}, origin="server1")
    two.book.put({"heartbeat_interval_s": 15}, origin="server2")
    exchange(one, two)
    again = one.reopen()
    try:
        assert again.book.repaired
        assert two.book.current == again.book.current
    finally:
        again.close()


# One step of a two-node run: a valid put on one node, or an exchange in one direction, or a clock jump.
PATCHES = [
    {"failures_to_switch": 3}, {"failures_to_switch": 8}, {"auto_failback": False}, {"auto_failback": True},
    {"heartbeat_timeout_s": 20}, {"heartbeat_timeout_s": 2}, {"heartbeat_interval_s": 15},
    {"heartbeat_interval_s": 60}, {"monitor_port": 9090, "cti_restart_time": "03:30"}, {"vip_address": "10.0.0.10"},
]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 1), st.sampled_from(PATCHES)),
        st.tuples(st.just("pull"), st.integers(0, 1)),
        st.tuples(st.just("wall"), st.integers(0, 1), st.floats(-120, 120)),
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps)
def test_concurrent_puts_converge(tmp_path_factory: pytest.TempPathFactory, run: list[tuple[Any, ...]]) -> None:
    """Any interleaving of puts on both nodes, partial exchanges and clock steps ends, after one exchange
    each way, with equal digests and equal effective settings; and what each node's database holds
    equals what it serves."""
    base = tmp_path_factory.mktemp("pair")
    pair = [Node(base / "s1.db", "server1"), Node(base / "s2.db", "server2", wall=T0 + 0.5)]
    try:
        for step in run:
            if step[0] == "put":
                with contextlib.suppress(SettingsError):  # refused locally (T > I): nothing changed
                    pair[step[1]].book.put(step[2], origin=pair[step[1]].node_id)
            elif step[0] == "pull":
                me, peer = pair[step[1]], pair[1 - step[1]]
                me.book.merge_remote(peer.settings())
            else:
                pair[step[1]].wall.t += step[2]
        exchange(*pair)
        one, two = pair
        assert one.book.digest() == two.book.digest()
        assert one.book.current == two.book.current
        for n in pair:
            assert dict(n.book.table) == n.store.load_settings()
    finally:
        for n in pair:
            n.close()
