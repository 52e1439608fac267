"""SQLite via sqlmodel: the node's role and epoch, the cluster settings, the role history, the hook outbox.

The only module that touches the database. Every write is one committed transaction in WAL mode
with ``synchronous=FULL``, so what a caller was told is stored survives a crash or power loss.

Upgrades keep the data: the schema has a version (``PRAGMA user_version``), and opening a database
written by an older release migrates it in one transaction, after a copy of the file is kept beside
it (``hotstandby.db.schema<N>.bak``). A database from a newer release is refused, not touched.

    schema 1  node, setting, event            the first release (it wrote no version: 0 reads as 1)
    schema 2  + history, hook_event           role changes (GET /history); the hooks' outbox (SPEC 13)
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import Field, Session, SQLModel, col, create_engine, delete, func, select

from hotstandby.hlc import ZERO, Timestamp
from hotstandby.replication import Stamped

PROBE_EVERY_S = 5.0  # how often an idle node proves its database writable (WriteCheck)
WRITABLE_PROBE = ".writable"  # opened for writing each tick, never written (Store.file_system_problem)


class NodeRow(SQLModel, table=True):
    __tablename__ = "node"
    id: int = Field(default=1, primary_key=True)
    node_id: str
    role: str = "STANDBY"
    epoch: int = 0
    cause: str = "start"
    maintenance: bool = False
    maintenance_at: str = str(ZERO)
    maintenance_origin: str = ""


class SettingRow(SQLModel, table=True):
    __tablename__ = "setting"
    name: str = Field(primary_key=True)
    value: str  # JSON
    updated_at: str
    origin: str


class EventRow(SQLModel, table=True):
    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    at: str = Field(index=True)
    component: str
    message: str


class HistoryRow(SQLModel, table=True):
    """One role change of this node (schema 2): what GET /history and `hotstandby history` show."""

    __tablename__ = "history"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused: they page the history
    id: int | None = Field(default=None, primary_key=True)
    at: str  # ISO 8601 UTC with milliseconds
    node_id: str
    from_role: str
    to_role: str
    rule: str | None = None
    cause: str
    epoch: int
    asked_by: str | None = None  # who asked (an operator, the peer); None: this node decided by itself
    reason: str = ""  # the decision's sentence


class HookEventRow(SQLModel, table=True):
    """The hooks' outbox (schema 2): an event waits here until HS_NOTIFY_COMMAND has exited 0 for it."""

    __tablename__ = "hook_event"
    __table_args__ = {"sqlite_autoincrement": True}  # HS_SEQUENCE: strictly increasing, across restarts too
    sequence: int | None = Field(default=None, primary_key=True)
    at: str
    event: str
    env: str  # JSON: the HS_* variables the hook gets
    attempts: int = 0
    next_try_at: float = 0.0  # wall clock (time.time()): when the next attempt is due
    last_error: str = ""


SCHEMA_VERSION = 2
SCHEMA_TABLES = {1: ("node", "setting", "event"), 2: ("history", "hook_event")}


class StoreError(RuntimeError):
    """The database cannot be read or written: the caller must not act on a role it cannot persist."""


@dataclass(frozen=True)
class HistoryEntry:
    """A role change as the history keeps it; ``id`` orders them (and pages GET /history)."""

    at: str
    node_id: str
    from_role: str
    to_role: str
    rule: str | None
    cause: str
    epoch: int
    asked_by: str | None = None
    reason: str = ""
    id: int | None = None


@dataclass(frozen=True)
class OutboxEvent:
    """An event waiting for its hook: ``sequence`` is HS_SEQUENCE, ``env`` the HS_* variables."""

    sequence: int
    at: str
    event: str
    env: dict[str, str]
    attempts: int = 0
    next_try_at: float = 0.0
    last_error: str = ""


@dataclass(frozen=True)
class NodeRecord:
    node_id: str
    role: str
    epoch: int
    cause: str
    maintenance: bool
    maintenance_at: Timestamp
    maintenance_origin: str


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.last_error: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._check_file(path)
            self.migrated_from = migrate(path)
            self.engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
            event.listen(self.engine, "connect", _pragmas)
        except (OSError, SQLAlchemyError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {path}: {_why(exc)}") from None

    @staticmethod
    def _check_file(path: Path) -> None:
        """Refuse a corrupt file up front rather than deciding a role on top of it."""
        if not path.exists() or path.stat().st_size == 0:
            return
        conn = sqlite3.connect(path)
        try:
            row = conn.execute("PRAGMA quick_check").fetchone()
        except sqlite3.OperationalError as exc:  # a full disk or an I/O error: the file itself may be sound
            raise StoreError(f"cannot read database {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"database {path} is corrupt: {exc}; move it away to rebuild from the peer") from None
        finally:
            conn.close()
        if not row or row[0] != "ok":
            raise StoreError(f"database {path} is corrupt: {row and row[0]}; move it away to rebuild from the peer")

    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._lock:
            try:
                with Session(self.engine, expire_on_commit=False) as session:
                    yield session
                self.last_error = None
            except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
                self.last_error = _why(exc)
                raise StoreError(f"database write failed: {self.last_error}") from None

    # -- node record -------------------------------------------------------------------------
    def load_node(self) -> NodeRecord | None:
        with self._session() as s:
            row = s.get(NodeRow, 1)
            return _record(row) if row else None

    def save_node(self, *, node_id: str, role: str, epoch: int, cause: str) -> None:
        with self._session() as s:
            row = s.get(NodeRow, 1) or NodeRow(node_id=node_id)
            row.node_id, row.role, row.epoch, row.cause = node_id, role, epoch, cause
            s.add(row)
            s.commit()

    def save_maintenance(self, *, node_id: str, enabled: bool, at: Timestamp, origin: str) -> None:
        with self._session() as s:
            row = s.get(NodeRow, 1) or NodeRow(node_id=node_id)
            row.maintenance, row.maintenance_at, row.maintenance_origin = enabled, str(at), origin
            s.add(row)
            s.commit()

    # -- settings ----------------------------------------------------------------------------
    def load_settings(self) -> dict[str, Stamped]:
        with self._session() as s:
            rows = s.exec(select(SettingRow)).all()
            return {
                r.name: Stamped(json.loads(r.value), Timestamp.parse(r.updated_at), r.origin) for r in rows
            }

    def save_settings(self, changes: Mapping[str, Stamped]) -> None:
        """All of ``changes`` in one transaction: a crash leaves all of them or none."""
        with self._session() as s:
            for name, st in changes.items():
                row = s.get(SettingRow, name) or SettingRow(name=name, value="", updated_at="", origin="")
                row.value, row.updated_at, row.origin = json.dumps(st.value), str(st.updated_at), st.origin
                s.add(row)
            s.commit()

    def save_role(self, *, node_id: str, role: str, epoch: int, cause: str, change: HistoryEntry | None = None,
                  events: tuple[tuple[str, str, dict[str, str]], ...] = ()) -> list[int]:
        """A role change in one transaction: the node's role, its line of history, and the hook events it
        raises (``(event, at, env)``), so none of them exists without the others, even after a crash.
        Returns the events' sequence numbers."""
        with self._session() as s:
            row = s.get(NodeRow, 1) or NodeRow(node_id=node_id)
            row.node_id, row.role, row.epoch, row.cause = node_id, role, epoch, cause
            s.add(row)
            if change is not None:
                s.add(_history_row(change))
            rows = [HookEventRow(event=name, at=at, env=json.dumps(env)) for name, at, env in events]
            s.add_all(rows)
            s.commit()
            return [int(r.sequence) for r in rows if r.sequence is not None]

    # -- history -------------------------------------------------------------------------------
    def add_history(self, change: HistoryEntry) -> int:
        with self._session() as s:
            row = _history_row(change)
            s.add(row)
            s.commit()
            assert row.id is not None
            return row.id

    def history(self, *, limit: int = 50, before: int | None = None) -> list[HistoryEntry]:
        """Role changes, newest first: ``limit`` of them with an id below ``before`` (a page's cursor)."""
        with self._session() as s:
            q = select(HistoryRow).order_by(col(HistoryRow.id).desc()).limit(limit)
            if before is not None:
                q = q.where(col(HistoryRow.id) < before)
            return [HistoryEntry(r.at, r.node_id, r.from_role, r.to_role, r.rule, r.cause, r.epoch, r.asked_by,
                                 r.reason, r.id) for r in s.exec(q).all()]

    # -- the hooks' outbox ---------------------------------------------------------------------
    def enqueue(self, event_name: str, at: str, env: dict[str, str]) -> int:
        """One event for the hook, committed: its sequence number (HS_SEQUENCE)."""
        with self._session() as s:
            row = HookEventRow(event=event_name, at=at, env=json.dumps(env))
            s.add(row)
            s.commit()
            assert row.sequence is not None
            return row.sequence

    def next_event(self) -> OutboxEvent | None:
        """The oldest event not yet delivered (delivery is in order: it blocks the ones after it)."""
        with self._session() as s:
            r = s.exec(select(HookEventRow).order_by(col(HookEventRow.sequence)).limit(1)).first()
            if r is None or r.sequence is None:
                return None
            return OutboxEvent(r.sequence, r.at, r.event, json.loads(r.env), r.attempts, r.next_try_at,
                               r.last_error)

    def delivered(self, sequence: int) -> None:
        with self._session() as s:
            s.exec(delete(HookEventRow).where(col(HookEventRow.sequence) == sequence))
            s.commit()

    def retry_later(self, sequence: int, *, attempts: int, next_try_at: float, error: str) -> None:
        with self._session() as s:
            row = s.get(HookEventRow, sequence)
            if row is not None:
                row.attempts, row.next_try_at, row.last_error = attempts, next_try_at, error[:2000]
                s.add(row)
                s.commit()

    def pending_events(self) -> int:
        with self._session() as s:
            return int(s.exec(select(func.count()).select_from(HookEventRow)).one())

    # -- events ------------------------------------------------------------------------------
    def add_event(self, at: str, component: str, message: str) -> None:
        with self._session() as s:
            s.add(EventRow(at=at, component=component, message=message))
            s.commit()

    def probe_writable(self) -> None:
        """A tiny committed write: raises StoreError when the data dir is full or read-only."""
        with self._session() as s:
            s.connection().exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
            s.connection().exec_driver_sql("DELETE FROM probe")
            s.connection().exec_driver_sql("INSERT INTO probe VALUES (1)")
            s.commit()

    def file_system_problem(self) -> str | None:
        """Why the data dir's file system cannot take a write, as far as the kernel tells without one
        (read-only, or no block left for us), or None. Three system calls, no write: cheap enough for
        every tick; only a write (``probe_writable``) proves the database writable.

        statvfs sees a read-only mount and a full disk. A disk that failed under ext4 (errors=remount-ro)
        is read-only for writes at once, but on recent kernels only by ext4's own "emergency_ro" state,
        which statvfs does not report: opening a file of ours for writing does (EROFS), and writes nothing.
        That file is not the database: closing a descriptor of it would drop SQLite's POSIX locks."""
        try:
            st = os.statvfs(self.path.parent)
        except OSError as exc:
            return f"data dir unusable: {exc.strerror}"
        if st.f_flag & os.ST_RDONLY:
            return "file system is read-only"
        free = st.f_bfree if os.geteuid() == 0 else st.f_bavail  # root may use the reserved blocks
        if free == 0:
            return "file system is full"
        try:
            os.close(os.open(self.path.parent / WRITABLE_PROBE, os.O_WRONLY | os.O_CREAT, 0o600))
        except OSError as exc:
            return "file system is read-only" if exc.errno == errno.EROFS else f"data dir unusable: {exc.strerror}"
        return None

    def close(self) -> None:
        self.engine.dispose()


class WriteCheck:
    """When a tick proves the database writable with a real write (``Store.probe_writable``: a committed,
    fsynced transaction, in a worker thread): on the first tick, whenever statvfs says the file system is
    read-only or full, while the last probe failed (to see the repair at once), and otherwise every
    ``every_s``. So a full or read-only data dir is seen within one tick, any other failure to write
    within ``every_s`` plus a tick, and a failed role write at once; an idle node writes nothing else."""

    def __init__(self, store: Store, every_s: float = PROBE_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.every_s, self.clock = store, every_s, clock
        self._last: float | None = None

    def due(self, failing: bool) -> bool:
        now = self.clock()
        if (failing or self._last is None or now - self._last >= self.every_s
                or self.store.file_system_problem() is not None):
            self._last = now
            return True
        return False


def _history_row(c: HistoryEntry) -> HistoryRow:
    return HistoryRow(at=c.at, node_id=c.node_id, from_role=c.from_role, to_role=c.to_role, rule=c.rule,
                      cause=c.cause, epoch=c.epoch, asked_by=c.asked_by, reason=c.reason)


def migrate(path: Path) -> int | None:
    """Bring the database at ``path`` to SCHEMA_VERSION: create what is missing, in one transaction that
    ends by recording the version. Returns the version it migrated from (None: nothing to do).

    A database written by an older release is first copied to ``<name>.schema<N>.bak`` (once), so an
    upgrade can always be undone by hand. The arbiter and a separate monitor may open the same new
    database at once: BEGIN IMMEDIATE makes one of them migrate and the other find it done."""
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    try:
        version, tables = _schema(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(f"database {path} has schema {version}, newer than this release knows "
                             f"({SCHEMA_VERSION}): run the release that wrote it, or move the file away")
        if version == SCHEMA_VERSION:
            return None
        if tables:
            _backup(conn, path, version)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version, tables = _schema(conn)  # again, under the write lock: another process may have won
            if version == SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                return None
            dialect = sqlite_dialect.dialect()
            for table in SQLModel.metadata.sorted_tables:
                if table.name not in tables:
                    conn.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
                    for index in table.indexes:
                        conn.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
            # Changes to tables that exist go here, one step a version (none yet: schema 2 only adds tables).
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return version
    finally:
        conn.close()


def _schema(conn: sqlite3.Connection) -> tuple[int, set[str]]:
    """The schema version and the tables of a database; an unversioned one with tables is schema 1."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 0 and set(SCHEMA_TABLES[1]) & tables:
        version = 1
    return version, tables


def _backup(conn: sqlite3.Connection, path: Path, version: int) -> None:
    copy = path.with_name(f"{path.name}.schema{version}.bak")
    if copy.exists():
        return
    target = sqlite3.connect(copy)
    try:
        conn.backup(target)
    finally:
        target.close()


def open_readonly(path: Path) -> sqlite3.Connection:
    """A connection that writes nothing at all: read-only, and when no node has the database open (no -wal
    beside it) immutable too, so that not even SQLite's -wal and -shm files are created."""
    live = path.with_name(path.name + "-wal").exists()
    return sqlite3.connect(f"file:{path}?mode=ro{'' if live else '&immutable=1'}", uri=True, timeout=2.0)


def read_settings(path: Path) -> dict[str, Stamped]:
    """The cluster settings a node's database holds, read without writing anything (no table made, no
    migration, no lock kept): for `hotstandby check` and `install-unit`. Empty when it holds none."""
    try:
        conn = open_readonly(path)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read database {path}: {exc}") from None
    try:
        rows = conn.execute("SELECT name, value, updated_at, origin FROM setting").fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return {}
        raise StoreError(f"cannot read database {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"database {path} is corrupt: {exc}") from None
    finally:
        conn.close()
    return {name: Stamped(json.loads(value), Timestamp.parse(at), origin) for name, value, at, origin in rows}


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=2000")
    cur.close()


def _record(row: NodeRow) -> NodeRecord:
    return NodeRecord(row.node_id, row.role, row.epoch, row.cause, row.maintenance,
                      Timestamp.parse(row.maintenance_at), row.maintenance_origin)


def _why(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig or exc).splitlines()[0]


