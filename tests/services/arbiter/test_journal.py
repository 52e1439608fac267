"""Who asked for a role change, read from its sentence; and the history line and hook event a change makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotstandby.ftlog import FaultTolerantLog
from hotstandby.model import Cause, NodeState, PeerView, Role
from hotstandby.rules import demote, on_role_command, promote
from hotstandby.settings import NodeSettings
from hotstandby.store import Store
from services.arbiter.journal import Journal, asked_by
from services.hooks import Hooks

S1 = NodeState("server1", Role.STANDBY, 4, peer=PeerView("server2", Role.ACTIVE, 4))


@pytest.mark.parametrize(("reason", "who"), [
    (promote(S1, rule="R7", cause=Cause.MANUAL, why="manual switch requested by CLI from 10.0.0.5").reason,
     "CLI from 10.0.0.5"),
    (promote(S1, rule="R7", cause=Cause.MANUAL,
             why="manual switch requested by console from 10.0.0.7, forced while server2 is unreachable").reason,
     "console from 10.0.0.7"),
    (on_role_command(S1, Role.ACTIVE, 5, cause=Cause.MANUAL,
                     why="manual switch to server1 requested by API from 10.0.0.9 (asked by server2)").reason,
     "API from 10.0.0.9"),
    (on_role_command(S1, Role.ACTIVE, 5, cause=Cause.FAILBACK,
                     why="failback: server1 healthy for 3 consecutive probes (asked by server2)").reason, "server2"),
    (promote(S1, rule="R1", cause=Cause.FAILOVER, why="failover: maximum heart beat fails").reason, None),
])
def test_asked_by_names_the_operator_else_the_peer_else_nobody(reason: str, who: str | None) -> None:
    """An operator's switch names its tool and address; a peer's command names the peer; the node's own, None."""
    assert asked_by(reason) == who


def test_a_role_change_is_one_history_line_and_one_event(tmp_path: Path) -> None:
    """old -> new role gives a history line (with rule, cause, epoch, reason) and, with a hook, its event; an epoch
    change alone gives neither."""
    store = Store(tmp_path / "hotstandby.db")
    node = NodeSettings(node_id="server1", data_dir=tmp_path, notify_command="/bin/true")
    hooks = Hooks(node=node, store=store, ftlog=FaultTolerantLog(tmp_path / "logs", node_id="server1"))
    journal = Journal("server1", store, hooks)
    d = promote(S1, rule="R1", cause=Cause.FAILOVER, why="failover: maximum heart beat fails")
    seqs = store.save_role(node_id="server1", role=d.state.role, epoch=d.state.epoch, cause=d.state.cause,
                           **journal.role_change(S1, d, 1_795_618_107.734))
    assert seqs == [1]
    (entry,) = store.history()
    assert (entry.at, entry.from_role, entry.to_role, entry.rule, entry.cause, entry.epoch, entry.asked_by) == \
        ("2026-11-25T14:48:27.734Z", "STANDBY", "ACTIVE", "R1", "failover", 5, None)
    event = store.next_event()
    assert event is not None and event.env["HS_EVENT"] == "role_change" and event.env["HS_PREVIOUS_ROLE"] == "STANDBY"
    assert event.env["HS_REASON"] == d.reason and event.env["HS_PEER_ROLE"] == "ACTIVE"
    again = demote(d.state, rule="R7", cause=Cause.MANUAL, why="x")
    assert journal.role_change(again.state, again, 0.0) == {}
    store.close()
