"""The SQLite store: real database files in tmp_path, durable settings, clear errors on bad files."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from hotstandby.hlc import ZERO, Timestamp
from hotstandby.replication import Stamped
from hotstandby.store import WRITABLE_PROBE, NodeRecord, Store, StoreError, WriteCheck

T1 = Timestamp(1_795_618_107_734, 3)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "hotstandby.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


def reopen(path: Path) -> Store:
    return Store(path)


def test_creates_the_file_and_tables(store: Store, db: Path) -> None:
    """A new Store creates its parent directory, the file and the node, setting and event tables."""
    assert db.is_file()
    with sqlite3.connect(db) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"node", "setting", "event"} <= tables
    assert store.load_node() is None
    assert store.load_settings() == {}


def test_wal_and_synchronous_full(store: Store) -> None:
    """Connections run in WAL mode with synchronous=FULL (2), so a commit survives power loss."""
    with store.engine.connect() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert (journal, synchronous) == ("wal", 2)


@pytest.mark.parametrize(
    ("role", "epoch", "cause"),
    [("STANDBY", 0, "start"), ("ACTIVE", 1, "R1 failover"), ("STANDBY", 2**40, "R7 manual switch by admin")],
)
def test_node_round_trip_and_overwrite(store: Store, db: Path, role: str, epoch: int, cause: str) -> None:
    """``save_node`` then ``load_node`` (also from a fresh Store) gives the record back; a second save replaces it."""
    store.save_node(node_id="server2", role="ACTIVE", epoch=0, cause="first")
    store.save_node(node_id="server2", role=role, epoch=epoch, cause=cause)
    expected = NodeRecord("server2", role, epoch, cause, False, ZERO, "")
    assert expected == store.load_node()
    fresh = reopen(db)
    assert expected == fresh.load_node()
    fresh.close()


def test_maintenance_round_trip(store: Store) -> None:
    """``save_maintenance`` keeps the role and stores the flag with its stamp and origin."""
    store.save_node(node_id="server1", role="ACTIVE", epoch=3, cause="R1")
    store.save_maintenance(node_id="server1", enabled=True, at=T1, origin="server2")
    assert NodeRecord("server1", "ACTIVE", 3, "R1", True, T1, "server2") == store.load_node()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -7, 2**53, 0.05, 10.0, "", "127.0.0.11", "héllo\n", [], [1, "a", None],
     {"k": {"nested": [1.5, False]}}],
)
def test_settings_round_trip_each_json_type(store: Store, db: Path, value: Any) -> None:
    """Values of every JSON type come back equal and of the same type, also from a fresh Store."""
    store.save_settings({"x": Stamped(value, T1, "server1")})
    fresh = reopen(db)
    for s in (store, fresh):
        got = s.load_settings()["x"]
        assert Stamped(value, T1, "server1") == got
        assert type(value) is type(got.value)
    fresh.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(min_size=1, max_size=10), json_values, min_size=1, max_size=5))
def test_settings_round_trip_property(store: Store, table: dict[str, Any]) -> None:
    """Any table of JSON values saved in one call loads back equal (later saves overwrite by name)."""
    stamped = {k: Stamped(v, T1, "server2") for k, v in table.items()}
    store.save_settings(stamped)
    loaded = store.load_settings()
    assert stamped == {k: loaded[k] for k in stamped}


def test_save_settings_overwrites_by_name(store: Store) -> None:
    """A second save of a name replaces value, stamp and origin; other names stay."""
    store.save_settings({"a": Stamped(1, ZERO, "server1"), "b": Stamped(2, ZERO, "server1")})
    store.save_settings({"a": Stamped(3, T1, "server2")})
    assert {"a": Stamped(3, T1, "server2"), "b": Stamped(2, ZERO, "server1")} == store.load_settings()


def test_multi_setting_save_is_atomic(store: Store, db: Path) -> None:
    """A save that fails part-way stores none of its settings (one transaction), and the store stays usable."""
    store.save_settings({"a": Stamped(1, ZERO, "server1")})
    with pytest.raises((StoreError, TypeError)):
        store.save_settings({"a": Stamped(2, T1, "server1"), "b": Stamped(2, T1, "server1"),
                             "c": Stamped(object(), T1, "server1")})
    assert {"a": Stamped(1, ZERO, "server1")} == store.load_settings()
    fresh = reopen(db)
    assert {"a": Stamped(1, ZERO, "server1")} == fresh.load_settings()
    fresh.close()
    store.save_settings({"b": Stamped(5, T1, "server1")})
    assert store.load_settings()["b"].value == 5


def test_committed_save_is_visible_to_another_connection(store: Store, db: Path) -> None:
    """Once ``save_settings`` returns, a separate sqlite3 connection reads the row (committed, not buffered)."""
    store.save_settings({"heartbeat_interval_s": Stamped(2.5, T1, "server1")})
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, value, updated_at, origin FROM setting").fetchall()
    assert [("heartbeat_interval_s", "2.5", str(T1), "server1")] == rows


def test_events_are_stored(store: Store, db: Path) -> None:
    """``add_event`` commits a row."""
    store.add_event("2026-11-25T14:48:27.734", "Arbiter", "SWITCH THIS SERVER TO PRIMARY")
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT at, component, message FROM event").fetchall()
    assert rows == [("2026-11-25T14:48:27.734", "Arbiter", "SWITCH THIS SERVER TO PRIMARY")]


def _real_db(path: Path) -> None:
    s = Store(path)
    s.save_node(node_id="server1", role="ACTIVE", epoch=1, cause="R1")
    s.save_settings({f"k{i}": Stamped("v" * 500, T1, "server1") for i in range(50)})
    s.close()
    with sqlite3.connect(path) as conn:  # fold the WAL into the main file, as after a clean stop
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        extra.unlink(missing_ok=True)


@pytest.mark.parametrize("damage", ["random-bytes", "header-overwritten", "truncated-half", "text-file"])
def test_corrupt_file_refused_with_a_message_naming_it(db: Path, damage: str) -> None:
    """A damaged database raises StoreError naming the file, rather than opening on top of it."""
    db.parent.mkdir(parents=True)
    if damage == "random-bytes":
        db.write_bytes(os.urandom(8192))
    elif damage == "text-file":
        db.write_text("HS_PEER_SECRET=oops\n" * 100)
    else:
        _real_db(db)
        data = bytearray(db.read_bytes())
        if damage == "header-overwritten":
            data[:100] = os.urandom(100)
        else:
            data = data[: len(data) // 2]
        db.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        Store(db)
    assert str(db) in str(info.value)
    assert "corrupt" in str(info.value) or "cannot open" in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small filesystem needs root")
def test_a_full_disk_at_start_is_not_called_corruption(tmp_path: Path) -> None:
    """A sound database on a full disk is refused as unreadable, without the advice to move it away (found by the
    nemesis, seed 1 without a witness: a node restarted while its disk was full said its database was corrupt)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "hs-test-full", str(disk)], check=True)
    try:
        db = disk / "hotstandby.db"
        first = Store(db)
        first.save_node(node_id="server1", role="ACTIVE", epoch=1, cause="R1")
        first.close()  # a clean stop: the WAL is folded in and removed, a new open must create it again
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        with pytest.raises(StoreError) as info:
            Store(db)
        assert (str(db) in str(info.value), "corrupt" in str(info.value)) == (True, False)
        (disk / "filler").unlink()
        assert Store(db).load_node() is not None  # the same file, once there is room again
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.parametrize("where", ["parent-is-a-file", "path-is-a-directory"])
def test_unusable_location_raises_store_error(tmp_path: Path, where: str) -> None:
    """A path that cannot hold a database raises StoreError naming it (never an OSError or sqlite error)."""
    if where == "parent-is-a-file":
        (tmp_path / "plain").write_text("")
        path = tmp_path / "plain" / "hotstandby.db"
    else:
        path = tmp_path / "hotstandby.db"
        path.mkdir()
        (path / "something").write_text("x")
    with pytest.raises(StoreError) as info:
        Store(path)
    assert str(path) in str(info.value)


def test_empty_file_is_initialised(db: Path) -> None:
    """A zero-length file (created but never written) is taken as a new database."""
    db.parent.mkdir(parents=True)
    db.touch()
    s = Store(db)
    assert s.load_node() is None
    s.close()


def test_probe_writable_passes_on_a_healthy_database(store: Store) -> None:
    """``probe_writable`` commits a tiny write and returns on a writable database; ``last_error`` stays clear."""
    store.probe_writable()
    store.probe_writable()
    assert store.last_error is None


def test_probe_writable_raises_when_writes_are_refused(store: Store) -> None:
    """When SQLite refuses writes, ``probe_writable`` and every save raise StoreError and ``last_error`` says why;
    reads still work."""
    store.save_node(node_id="server1", role="STANDBY", epoch=1, cause="start")
    # Every new connection is opened read-only, as SQLite does for a read-only file or mount.
    event.listen(store.engine, "connect", lambda conn, _rec: conn.execute("PRAGMA query_only = ON"))
    store.engine.dispose()
    with pytest.raises(StoreError, match="database write failed"):
        store.probe_writable()
    assert store.last_error
    with pytest.raises(StoreError):
        store.save_node(node_id="server1", role="ACTIVE", epoch=2, cause="R1")
    assert store.load_node().role == "STANDBY"  # type: ignore[union-attr]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; the fault lab uses a read-only mount")
def test_probe_writable_raises_on_a_read_only_file(store: Store, db: Path) -> None:
    """A database file made read-only under a running Store makes ``probe_writable`` raise StoreError."""
    store.engine.dispose()
    for p in db.parent.iterdir():
        p.chmod(0o444)
    db.parent.chmod(0o555)
    try:
        with pytest.raises(StoreError):
            store.probe_writable()
    finally:
        db.parent.chmod(0o755)
        for p in db.parent.iterdir():
            p.chmod(0o644)


def test_file_system_problem_is_none_on_a_healthy_data_dir(store: Store) -> None:
    """A writable data dir with free space reports no problem; the check opens a file of its own for writing
    (never the database, whose POSIX locks a close would drop) and writes nothing to it."""
    assert store.file_system_problem() is None
    probe = store.path.parent / WRITABLE_PROBE
    assert probe.exists() and probe.stat().st_size == 0
    mtime = probe.stat().st_mtime_ns
    assert store.file_system_problem() is None and probe.stat().st_mtime_ns == mtime


def test_write_check_proves_writability_first_then_every_period_and_while_failing(store: Store) -> None:
    """A tick writes to prove the database writable on the first tick, then once a period, and on every tick
    while the last proof failed; a healthy idle node writes nothing in between."""
    expected = [True, False, False, True, True, True, False, False, True]
    now = [100.0]
    check = WriteCheck(store, every_s=5.0, clock=lambda: now[0])
    seen = []
    for t, failing in [(100.0, False), (101.0, False), (104.9, False), (105.0, False), (105.5, True),
                       (105.6, True), (106.0, False), (110.4, False), (110.6, False)]:
        now[0] = t
        seen.append(check.due(failing))
    assert expected == seen
