"""SQLite: the node's role and epoch, the cluster settings, the event log.

The only module that touches the database, on the standard library's ``sqlite3`` (an ORM would cost
every node some 17 MB of resident memory for four small tables). Every write is one committed
transaction in WAL mode with ``synchronous=FULL``, so what a caller was told is stored survives a
crash or power loss. One connection, guarded by a lock (the loop and a worker thread share it); a
connection that failed is closed and opened afresh on next use, so a repaired disk is seen again.

The schema is the one earlier releases created (their tables, columns and index), so a database
moves freely between releases during a rolling upgrade.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hotstandby.hlc import ZERO, Timestamp
from hotstandby.replication import Stamped

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS node (id INTEGER NOT NULL, node_id VARCHAR NOT NULL, role VARCHAR NOT NULL, "
    "epoch INTEGER NOT NULL, cause VARCHAR NOT NULL, maintenance BOOLEAN NOT NULL, "
    "maintenance_at VARCHAR NOT NULL, maintenance_origin VARCHAR NOT NULL, PRIMARY KEY (id))",
    "CREATE TABLE IF NOT EXISTS setting (name VARCHAR NOT NULL, value VARCHAR NOT NULL, "
    "updated_at VARCHAR NOT NULL, origin VARCHAR NOT NULL, PRIMARY KEY (name))",
    "CREATE TABLE IF NOT EXISTS event (id INTEGER NOT NULL, at VARCHAR NOT NULL, component VARCHAR NOT NULL, "
    "message VARCHAR NOT NULL, PRIMARY KEY (id))",
    "CREATE INDEX IF NOT EXISTS ix_event_at ON event (at)",
)
PRAGMAS = ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL", "PRAGMA busy_timeout=2000")
# A real write proves the database writable at least this often; statvfs is asked every tick (WriteCheck).
PROBE_EVERY_S = 5.0
NODE_COLUMNS = "node_id, role, epoch, cause, maintenance, maintenance_at, maintenance_origin"


class StoreError(RuntimeError):
    """The database cannot be read or written: the caller must not act on a role it cannot persist."""


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
        self._conn: sqlite3.Connection | None = None
        self._dir = str(path.parent)  # statvfs'd every tick
        self.pragmas = list(PRAGMAS)  # run on every new connection (a test may add ``PRAGMA query_only = ON``)
        self.last_error: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._check_file(path)
            with self._lock:
                conn = self._connection()
                # The arbiter and the monitor may create a new database at the same moment: IF NOT EXISTS
                # makes that race harmless, and busy_timeout makes the loser wait for the winner's lock.
                for ddl in SCHEMA:
                    conn.execute(ddl)
        except (OSError, sqlite3.Error) as exc:
            self._drop()
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

    def _connection(self) -> sqlite3.Connection:
        """The open connection, or a new one (autocommit: each write below is its own explicit transaction)."""
        if self._conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                for pragma in self.pragmas:
                    conn.execute(pragma)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def pragma(self, name: str) -> Any:
        """The value of ``PRAGMA name`` on the store's connection (journal_mode, synchronous, ...)."""
        with self._read() as conn:
            row = conn.execute(f"PRAGMA {name}").fetchone()
        return row[0] if row else None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except (sqlite3.Error, OSError) as exc:
                self._drop()
                raise StoreError(f"database read failed: {_why(exc)}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction: all of the block's statements, or (on any error) none of them."""
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                self.last_error = None
            except (sqlite3.Error, OSError) as exc:
                self.last_error = _why(exc)
                self._drop()  # a connection in an unknown state is never reused
                raise StoreError(f"database write failed: {self.last_error}") from None

    # -- node record -------------------------------------------------------------------------
    def load_node(self) -> NodeRecord | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {NODE_COLUMNS} FROM node WHERE id = 1").fetchone()
        if row is None:
            return None
        node_id, role, epoch, cause, maintenance, at, origin = row
        return NodeRecord(node_id, role, int(epoch), cause, bool(maintenance), Timestamp.parse(at), origin)

    def _node_row(self, conn: sqlite3.Connection, node_id: str) -> None:
        """Make sure row 1 exists (with the defaults earlier releases wrote), so an UPDATE can follow."""
        conn.execute(f"INSERT OR IGNORE INTO node (id, {NODE_COLUMNS}) VALUES (1, ?, 'STANDBY', 0, 'start', 0, ?, '')",
                     (node_id, str(ZERO)))

    def save_node(self, *, node_id: str, role: str, epoch: int, cause: str) -> None:
        with self._write() as conn:
            self._node_row(conn, node_id)
            conn.execute("UPDATE node SET node_id = ?, role = ?, epoch = ?, cause = ? WHERE id = 1",
                         (node_id, str(role), epoch, str(cause)))

    def save_maintenance(self, *, node_id: str, enabled: bool, at: Timestamp, origin: str) -> None:
        with self._write() as conn:
            self._node_row(conn, node_id)
            conn.execute("UPDATE node SET maintenance = ?, maintenance_at = ?, maintenance_origin = ? WHERE id = 1",
                         (1 if enabled else 0, str(at), origin))

    # -- settings ----------------------------------------------------------------------------
    def load_settings(self) -> dict[str, Stamped]:
        with self._read() as conn:
            rows = conn.execute("SELECT name, value, updated_at, origin FROM setting").fetchall()
        return {name: Stamped(json.loads(value), Timestamp.parse(at), origin) for name, value, at, origin in rows}

    def save_settings(self, changes: Mapping[str, Stamped]) -> None:
        """All of ``changes`` in one transaction: a crash leaves all of them or none."""
        with self._write() as conn:
            for name, st in changes.items():
                conn.execute("INSERT OR REPLACE INTO setting (name, value, updated_at, origin) VALUES (?, ?, ?, ?)",
                             (name, json.dumps(st.value), str(st.updated_at), st.origin))

    # -- events ------------------------------------------------------------------------------
    def add_event(self, at: str, component: str, message: str) -> None:
        with self._write() as conn:
            conn.execute("INSERT INTO event (at, component, message) VALUES (?, ?, ?)", (at, component, message))

    # -- can we still write? -----------------------------------------------------------------
    def probe_writable(self) -> None:
        """A tiny committed write: raises StoreError when the data dir is full or read-only."""
        with self._write() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
            conn.execute("DELETE FROM probe")
            conn.execute("INSERT INTO probe VALUES (1)")

    def file_system_problem(self) -> str | None:
        """Why the data dir's file system cannot take a write, as far as statvfs tells (read-only, or no
        block left for us), or None. One system call, no write: cheap enough for every tick; only a
        write (``probe_writable``) proves the database writable."""
        try:
            st = os.statvfs(self._dir)
        except OSError as exc:
            return f"data dir unusable: {exc.strerror}"
        if st.f_flag & os.ST_RDONLY:
            return "file system is read-only"
        free = st.f_bfree if os.geteuid() == 0 else st.f_bavail  # root may use the reserved blocks
        return "file system is full" if free == 0 else None

    def close(self) -> None:
        """Close the connection; a later call opens a new one (with ``pragmas``)."""
        with self._lock:
            self._drop()


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


def _why(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
