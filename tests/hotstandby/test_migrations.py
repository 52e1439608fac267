"""Upgrades keep the data: a database the previous release wrote (tests/fixtures/release1-server2.db, made by
tests/fixtures/make_release1_db.py from main at 21094b3) opens, migrates once, and loses nothing."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hotstandby.hlc import Timestamp
from hotstandby.store import SCHEMA_TABLES, SCHEMA_VERSION, HistoryEntry, Store, StoreError, read_settings

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release1-server2.db"
ROOT = Path(__file__).resolve().parents[2]


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table the first release had, read with plain sqlite3."""
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in SCHEMA_TABLES[1]}


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "hotstandby.db"
    path.parent.mkdir()
    shutil.copyfile(FIXTURE, path)
    return path


def test_the_fixture_is_what_the_previous_release_wrote() -> None:
    """The fixture has no schema version and only the first release's tables, with a node that was ACTIVE."""
    assert user_version(FIXTURE) == 0
    with sqlite3.connect(FIXTURE) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert set(SCHEMA_TABLES[1]) <= tables and not set(SCHEMA_TABLES[2]) & tables
    node = rows(FIXTURE)["node"]
    assert [(r[1], r[2], r[3], r[4]) for r in node] == [("server2", "ACTIVE", 2, "manual")]
    assert len(rows(FIXTURE)["setting"]) == 15


def test_an_old_database_migrates_on_open_with_nothing_lost(old_db: Path) -> None:
    """Opening it adds the history and the hook outbox, records schema 2, keeps every old row as it was,
    and leaves a copy of the file as it was beside it."""
    before = rows(old_db)
    store = Store(old_db)
    try:
        assert store.migrated_from == 1
        assert user_version(old_db) == SCHEMA_VERSION
        assert rows(old_db) == before
        assert store.history() == [] and store.pending_events() == 0
        # What the node reads comes back as the old release wrote it.
        rec = store.load_node()
        assert rec is not None and (rec.node_id, rec.role, rec.epoch, rec.cause) == ("server2", "ACTIVE", 2, "manual")
        assert rec.maintenance is False and rec.maintenance_origin == "server1"
        settings = store.load_settings()
        assert settings["failures_to_switch"].value == 4 and settings["failures_to_switch"].origin == "server1"
        assert settings["cti_restart_time"].value == "03:30"
        assert settings["heartbeat_interval_s"].updated_at == Timestamp(0, 0)
        # And the new tables work.
        store.add_history(HistoryEntry("2026-12-01T00:00:00.000Z", "server2", "ACTIVE", "STANDBY", "R6", "start", 2))
        assert store.enqueue("role_change", "2026-12-01T00:00:00.000Z", {"HS_EVENT": "role_change"}) == 1
    finally:
        store.close()
    backup = old_db.with_name("hotstandby.db.schema1.bak")
    assert rows(backup) == before and user_version(backup) == 0


def test_a_second_open_migrates_nothing(old_db: Path) -> None:
    """Once migrated, opening again changes nothing: no second migration, the first backup kept as it was."""
    Store(old_db).close()
    backup = old_db.with_name("hotstandby.db.schema1.bak")
    first = hashlib.sha256(backup.read_bytes()).hexdigest()
    again = Store(old_db)
    assert again.migrated_from is None
    again.close()
    assert hashlib.sha256(backup.read_bytes()).hexdigest() == first


def test_a_database_from_a_newer_release_is_refused_untouched(old_db: Path) -> None:
    """A schema above ours: a StoreError naming both versions, and the file is not changed (no downgrade)."""
    with sqlite3.connect(old_db) as conn:
        conn.execute("PRAGMA user_version = 99")
    digest = hashlib.sha256(old_db.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match=r"schema 99, newer than this release knows \(2\)"):
        Store(old_db)
    assert hashlib.sha256(old_db.read_bytes()).hexdigest() == digest


def test_reading_settings_changes_nothing(old_db: Path) -> None:
    """read_settings (check, install-unit) reads an old database without migrating or writing it."""
    digest = hashlib.sha256(old_db.read_bytes()).hexdigest()
    assert read_settings(old_db)["failures_to_switch"].value == 4
    assert hashlib.sha256(old_db.read_bytes()).hexdigest() == digest
    assert user_version(old_db) == 0


def test_two_processes_opening_an_old_database_at_once_migrate_it_once(old_db: Path) -> None:
    """The arbiter and a separate monitor may open it together: one migrates, the other finds it done."""
    code = ("import sys; from pathlib import Path; from hotstandby.store import Store; "
            "s = Store(Path(sys.argv[1])); print(s.migrated_from); s.close()")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(old_db)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(out.strip() for out, _ in outs) == ["1", "None"]
    assert user_version(old_db) == SCHEMA_VERSION
