"""The SQLite store behind share links and jobs.

Each call opens its own short-lived connection: the store is shared by the Streamlit server's
threads and by job worker processes, and SQLite in WAL mode handles that without a server.
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .specs import canonical_json, spec_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS specs (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    json TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec_hash TEXT NOT NULL REFERENCES specs(hash),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,            -- queued | running | done | failed | cancelled
    progress REAL NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    pid INTEGER,
    cancel_requested REAL NOT NULL DEFAULT 0,  -- when the user asked; 0: not asked
    result_key TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
"""

ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class JobRecord:
    id: str
    spec_hash: str
    kind: str
    title: str
    status: str
    progress: float
    message: str
    error: str | None
    pid: int | None
    cancel_requested: float
    result_key: str | None
    created: float
    started: float | None
    finished: float | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class Store:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as c:
            c.execute("PRAGMA journal_mode=WAL")
            c.executescript(SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            yield conn
        finally:
            conn.close()

    # --- specs (what a share link points at) ---
    def put_spec(self, spec: dict) -> str:
        h = spec_hash(spec)
        with self._conn() as c:
            c.execute("INSERT OR IGNORE INTO specs(hash, kind, json, created) VALUES (?,?,?,?)",
                      (h, spec.get("kind", "?"), canonical_json(spec), time.time()))
        return h

    def get_spec(self, h: str) -> dict | None:
        with self._conn() as c:
            row = c.execute("SELECT json FROM specs WHERE hash=?", (h,)).fetchone()
        return json.loads(row["json"]) if row else None

    def list_specs(self, kind: str, limit: int = 500) -> list[tuple[str, dict, float]]:
        """(hash, spec, created) of stored specs of one kind, newest first."""
        with self._conn() as c:
            rows = c.execute("SELECT hash, json, created FROM specs WHERE kind=? ORDER BY created DESC LIMIT ?",
                             (kind, limit)).fetchall()
        return [(r["hash"], json.loads(r["json"]), r["created"]) for r in rows]

    # --- jobs ---
    def create_job(self, job_id: str, spec: dict, title: str) -> JobRecord:
        h = self.put_spec(spec)
        with self._conn() as c:
            c.execute("INSERT INTO jobs(id, spec_hash, kind, title, status, created) VALUES (?,?,?,?,?,?)",
                      (job_id, h, spec.get("kind", "?"), title, "queued", time.time()))
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> JobRecord | None:
        with self._conn() as c:
            row = c.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self, limit: int = 200) -> list[JobRecord]:
        with self._conn() as c:
            rows = c.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [_job(r) for r in rows]

    def update_job(self, job_id: str, **fields) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k}=?" for k in fields)
        with self._conn() as c:
            c.execute(f"UPDATE jobs SET {cols} WHERE id=?", (*fields.values(), job_id))

    def finish_job(self, job_id: str, status: str, *, error: str | None = None,
                   result_key: str | None = None, message: str | None = None) -> bool:
        """Move an active job to a final state; False if it had already ended (first writer wins)."""
        with self._conn() as c:
            cur = c.execute(
                "UPDATE jobs SET status=?, error=?, result_key=COALESCE(?, result_key), finished=?, "
                "message=COALESCE(?, message), progress=CASE WHEN ?='done' THEN 1 ELSE progress END "
                "WHERE id=? AND status IN ('queued','running')",
                (status, error, result_key, time.time(), message, status, job_id))
            return cur.rowcount == 1


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(**dict(row))

