"""The two databases the store runs on: SQLite (the embedded default, one file under the home) and PostgreSQL
(a group's shared server, `WORKBENCH_DATABASE_URL=postgresql://…`).

The store writes one SQL dialect, the subset both understand (`INSERT … ON CONFLICT DO NOTHING`, `?` parameters);
each database here translates what differs: parameter style, the float type, column migrations, and how
connections are opened.
"""
from __future__ import annotations

import re
import sqlite3
import threading
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import BadInput

POSTGRES_URL = re.compile(r"^postgres(ql)?(\+psycopg)?://", re.IGNORECASE)


class SQLiteDatabase:
    """One file; each call opens its own short-lived connection (the Streamlit server's threads and the job
    workers share the file, and SQLite in WAL mode handles that without a server)."""

    name = "sqlite"
    FLOAT = "REAL"  # SQLite's REAL is an 8-byte float

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def describe(self) -> str:
        return f"SQLite at {self.path}"

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    def create(self, schema: str, added_columns) -> None:
        with self.connect() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(schema)
            for table, column, declaration in added_columns:
                if column not in {r["name"] for r in c.execute(f"PRAGMA table_info({table})")}:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    @staticmethod
    def sql(statement: str) -> str:
        return statement


class PostgresDatabase:
    """A PostgreSQL server shared by every workbench process of a group (servers, job workers, cluster tasks).

    Each thread keeps one connection in autocommit mode (opening one costs milliseconds, and the pages ask the
    store many times per rerun); a connection the server dropped is reopened once, transparently."""

    name = "postgresql"
    FLOAT = "DOUBLE PRECISION"  # PostgreSQL's REAL is 4 bytes: timestamps would lose their seconds
    _SCHEMA_LOCK = 0x776f726b  # an advisory lock id: concurrent first starts create the schema one at a time

    def __init__(self, url: str):
        try:
            import psycopg  # noqa: F401
        except ImportError:  # pragma: no cover - psycopg is in the lock
            raise BadInput("WORKBENCH_DATABASE_URL names PostgreSQL but psycopg is not installed") from None
        self.url = POSTGRES_URL.sub("postgresql://", url)
        self._local = threading.local()

    def describe(self) -> str:
        return f"PostgreSQL at {_without_password(self.url)}"

    def _open(self):
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)
        except psycopg.OperationalError as e:
            raise BadInput(f"cannot reach the database named by WORKBENCH_DATABASE_URL "
                           f"({_without_password(self.url)}): {str(e).strip().splitlines()[0]}") from None

    def _connection(self, fresh: bool = False):
        conn = getattr(self._local, "conn", None)
        if fresh or conn is None or conn.closed or getattr(self._local, "pid", None) != os.getpid():
            if conn is not None and not conn.closed:
                conn.close()
            conn = self._local.conn = self._open()
            self._local.pid = os.getpid()
        return conn

    @contextmanager
    def connect(self):
        yield _PostgresConnection(self)

    def create(self, schema: str, added_columns) -> None:
        with self.connect() as c:
            with c.transaction():
                c.execute("SELECT pg_advisory_xact_lock(?)", (self._SCHEMA_LOCK,))
                without_comments = re.sub(r"--[^\n]*", "", schema)  # comments may hold ';'
                for statement in (s.strip() for s in without_comments.split(";")):
                    if statement:
                        c.execute(statement)
                for table, column, declaration in added_columns:
                    c.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {declaration}")

    @staticmethod
    def sql(statement: str) -> str:
        return statement.replace("?", "%s")


class _PostgresConnection:
    """The thread's psycopg connection, taking the store's `?` parameters as sqlite3 does. A connection the server
    dropped (restart, idle timeout) fails its next statement: the first statement of a checkout is then retried
    once on a fresh connection (the server had not run it)."""

    def __init__(self, db: PostgresDatabase):
        self._db = db
        self._first = True

    def execute(self, statement: str, params=()):
        import psycopg

        conn = self._db._connection()
        first, self._first = self._first, False
        try:
            return conn.execute(PostgresDatabase.sql(statement), params)
        except psycopg.OperationalError:
            if not first or not conn.broken:
                raise
            return self._db._connection(fresh=True).execute(PostgresDatabase.sql(statement), params)

    def transaction(self):
        self._first = False
        return self._db._connection().transaction()


def _without_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def open_database(target: str | Path):
    """A PostgreSQL URL, or a path to an SQLite file."""
    if isinstance(target, str) and POSTGRES_URL.match(target):
        return PostgresDatabase(target)
    if isinstance(target, str) and "://" in target:
        raise BadInput(f"WORKBENCH_DATABASE_URL must be a postgresql:// URL (unset it for the embedded SQLite "
                       f"store), not '{_without_password(target)}'")
    return SQLiteDatabase(Path(target))
