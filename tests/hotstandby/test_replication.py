"""Per-setting last-writer-wins merge (SPEC section 5): pure functions, two replicas in memory.

Replicas here are dicts driven by real ``HybridClock`` instances over injected wall clocks.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotstandby.hlc import ZERO, HybridClock, Timestamp
from hotstandby.replication import Stamped, digest, merge, newest


def s(value: Any, wall_ms: int, origin: str = "server1", counter: int = 0) -> Stamped:
    return Stamped(value, Timestamp(wall_ms, counter), origin)


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [
        ({}, {"a": s(1, 10)}, {"a": s(1, 10)}),  # unknown locally: taken
        ({"a": s(1, 10)}, {"a": s(2, 20)}, {"a": s(2, 20)}),  # newer wall: taken
        ({"a": s(1, 20)}, {"a": s(2, 10)}, {}),  # older: ignored
        ({"a": s(1, 10)}, {"a": s(1, 10)}, {}),  # same version: ignored
        ({"a": s(1, 10, counter=1)}, {"a": s(2, 10, counter=2)}, {"a": s(2, 10, counter=2)}),  # counter
        ({"a": s(1, 10, "server1")}, {"a": s(2, 10, "server2")}, {"a": s(2, 10, "server2")}),  # origin tie-break
        ({"a": s(1, 10, "server2")}, {"a": s(2, 10, "server1")}, {}),  # origin tie-break, other way
        ({"a": s(1, 10), "b": s(1, 30)}, {"a": s(2, 20), "b": s(2, 20)}, {"a": s(2, 20)}),  # per setting
        ({"a": s(1, 10)}, {}, {}),  # nothing offered
    ],
    ids=["new-name", "newer", "older", "same", "counter", "origin-wins", "origin-loses", "per-setting", "empty"],
)
def test_merge_takes_only_newer_versions(local: dict[str, Stamped], remote: dict[str, Stamped],
                                         expected: dict[str, Stamped]) -> None:
    """``merge`` returns exactly the remote entries whose (updated_at, origin) beats ours."""
    assert expected == merge(local, remote)


def test_merge_does_not_modify_its_inputs() -> None:
    """``merge`` is pure: neither table changes."""
    local, remote = {"a": s(1, 10)}, {"a": s(2, 20)}
    merge(local, remote)
    assert ({"a": s(1, 10)}, {"a": s(2, 20)}) == (local, remote)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        ({}, {}, True),
        ({"x": s(1, 10)}, {"x": s(1, 10)}, True),
        ({"x": s(1, 10), "y": s("v", 5)}, {"y": s("v", 5), "x": s(1, 10)}, True),  # insertion order
        ({"x": s(1, 10)}, {"x": s(1, 11)}, False),
        ({"x": s(1, 10)}, {"x": s(1, 10, counter=1)}, False),
        ({"x": s(1, 10, "server1")}, {"x": s(1, 10, "server2")}, False),
        ({"x": s(1, 10)}, {"y": s(1, 10)}, False),
        ({"x": s(1, 10)}, {}, False),
    ],
)
def test_digest_equal_iff_same_versions(a: dict[str, Stamped], b: dict[str, Stamped], equal: bool) -> None:
    """Digests match exactly when both tables hold the same versions of the same settings."""
    assert equal == (digest(a) == digest(b))


@pytest.mark.parametrize("value", [None, True, 0, 1.5, "text", [1, "a"], {"k": [None]}])
def test_stamped_json_round_trip(value: Any) -> None:
    """``Stamped.from_json(x.to_json())`` gives back the same value, stamp and origin."""
    st_ = Stamped(value, Timestamp(1_795_618_107_734, 3), "server2")
    assert st_ == Stamped.from_json(st_.to_json())
    assert st_.to_json()["updated_at"] == "2026-11-25T14:48:27.734Z#3"


def test_newest() -> None:
    """``newest`` is the highest stamp of a table, None for an empty one."""
    assert newest({}) is None
    assert Timestamp(20, 1) == newest({"a": s(1, 20, counter=1), "b": s(1, 20), "c": s(1, 5)})


# -- two replicas ------------------------------------------------------------------------------

NAMES = ("a", "b", "c")


class Replica:
    """A node's table of settings: local writes stamped by its own HLC, messages merged in."""

    def __init__(self, node: str, start: dict[str, Stamped]) -> None:
        self.node = node
        self.wall = 0.0
        self.clock = HybridClock(lambda: self.wall)
        self.table = dict(start)

    def update(self, name: str, value: int) -> Stamped:
        stamped = Stamped(value, self.clock.now(), self.node)
        self.table[name] = stamped
        return stamped

    def receive(self, message: dict[str, Stamped]) -> None:
        newer = merge(self.table, message)
        for st_ in newer.values():
            self.clock.receive(st_.updated_at)
        self.table.update(newer)


ops = st.lists(
    st.one_of(
        # ("update", node, name, value, wall seconds): a local write on one replica
        st.tuples(st.just("update"), st.integers(0, 1), st.sampled_from(NAMES), st.integers(0, 9),
                  st.floats(0, 1000, allow_nan=False)),
        # ("send", node): that replica sends a full snapshot to the other (queued)
        st.tuples(st.just("send"), st.integers(0, 1)),
        # ("deliver", index, duplicate): deliver one queued message, maybe keeping it for redelivery
        st.tuples(st.just("deliver"), st.integers(0, 100), st.booleans()),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_replicas_converge_and_keep_the_winning_update(run: list[tuple[Any, ...]]) -> None:
    """Any interleaving of writes and snapshots (reordered, duplicated) ends, once both exchange their
    state, with identical tables and digests; and each setting holds the newest write made to it,
    so no acknowledged write is lost unless a newer one for the same setting won."""
    start = {n: Stamped(0, ZERO, "server1") for n in NAMES}
    replicas = [Replica("server1", start), Replica("server2", start)]
    queue: list[tuple[int, dict[str, Stamped]]] = []
    writes: list[tuple[str, Stamped]] = []
    for op in run:
        if op[0] == "update":
            _, who, name, value, wall = op
            replicas[who].wall = wall
            writes.append((name, replicas[who].update(name, value)))
        elif op[0] == "send":
            queue.append((1 - op[1], dict(replicas[op[1]].table)))
        elif queue:
            index = op[1] % len(queue)
            dest, message = queue[index] if op[2] else queue.pop(index)
            replicas[dest].receive(message)
    for dest, message in queue:  # the rest arrive late, in order
        replicas[dest].receive(message)
    replicas[1].receive(dict(replicas[0].table))
    replicas[0].receive(dict(replicas[1].table))

    one, two = replicas
    assert one.table == two.table
    assert digest(one.table) == digest(two.table)
    for name in NAMES:
        mine = [w for n, w in writes if n == name]
        if mine:
            assert max(mine, key=lambda w: w.version) == one.table[name]
        else:
            assert start[name] == one.table[name]


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 9)), max_size=20))
def test_causally_later_write_wins_even_with_a_slow_clock(edits: list[tuple[str, int]]) -> None:
    """A write made after seeing the peer's writes beats them, although its node's wall clock is an hour behind."""
    fast, slow = Replica("server2", {}), Replica("server1", {})
    fast.wall, slow.wall = 3600.0, 0.0
    for name, value in edits:
        fast.update(name, value)
    slow.receive(dict(fast.table))
    for name in NAMES:
        slow.update(name, 100)
    fast.receive(dict(slow.table))
    assert {n: 100 for n in NAMES} == {n: st_.value for n, st_ in fast.table.items()}
