"""SQLite via sqlmodel: the node's role and epoch, the cluster settings, the event log.

The only module that touches the database. Every write is one committed transaction in WAL mode
with ``synchronous=FULL``, so what a caller was told is stored survives a crash or power loss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, create_engine, select

from hotstandby.hlc import ZERO, Timestamp
from hotstandby.replication import Stamped


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
        self.last_error: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._check_file(path)
            self.engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
            event.listen(self.engine, "connect", _pragmas)
            self._create_tables()
        except (OSError, SQLAlchemyError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {path}: {_why(exc)}") from None

    def _create_tables(self) -> None:
        """The arbiter and the monitor may open a new database at the same moment: the loser of
        that race sees 'already exists' once, and the tables are then there."""
        for attempt in range(3):
            try:
                SQLModel.metadata.create_all(self.engine)
                return
            except OperationalError as exc:
                if "already exists" not in str(exc) or attempt == 2:
                    raise

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

    def close(self) -> None:
        self.engine.dispose()


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


