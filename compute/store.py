"""The store behind share links, jobs, uploads and users: SQLite under the home by default, PostgreSQL when a
group shares one (`WORKBENCH_DATABASE_URL`); compute/databases.py holds what differs between the two.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from .databases import open_database
from .specs import canonical_json, spec_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS specs (
    hash TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    json TEXT NOT NULL,
    created {FLOAT} NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec_hash TEXT NOT NULL REFERENCES specs(hash),
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,            -- queued | running | done | failed | cancelled
    progress {FLOAT} NOT NULL DEFAULT 0,
    message TEXT NOT NULL DEFAULT '',
    error TEXT,
    pid INTEGER,
    cancel_requested {FLOAT} NOT NULL DEFAULT 0,  -- when the user asked; 0: not asked
    result_key TEXT,
    created {FLOAT} NOT NULL,
    started {FLOAT},
    finished {FLOAT}
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created);
CREATE TABLE IF NOT EXISTS uploads (
    name TEXT PRIMARY KEY,           -- upload:SHA, csv:SHA: content-addressed
    owner TEXT NOT NULL DEFAULT '',
    created {FLOAT} NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,           -- as signed in (OIDC e-mail or name, or the shared token's name)
    operator INTEGER NOT NULL DEFAULT 0,
    first_seen {FLOAT} NOT NULL,
    last_seen {FLOAT} NOT NULL
);
"""
# Columns added after stores were created: (table, column, declaration), added on open when missing.
ADDED_COLUMNS = (("jobs", "owner", "TEXT NOT NULL DEFAULT ''"), ("specs", "creator", "TEXT NOT NULL DEFAULT ''"),
                 ("jobs", "runner", "TEXT NOT NULL DEFAULT 'local'"))

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
    owner: str = ""  # who started it ("" before sign-in existed, or from the CLI)
    runner: str = "local"  # local: a worker process of this machine (pid); ray: a task on the Ray cluster

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class Store:
    def __init__(self, target: Path | str):
        """`target`: the SQLite file, or a postgresql:// URL."""
        self.db = open_database(target)
        self.db.create(SCHEMA.replace("{FLOAT}", self.db.FLOAT), ADDED_COLUMNS)

    def _conn(self):
        return self.db.connect()

    def describe(self) -> str:
        return self.db.describe()

    # --- specs (what a share link points at) ---
    def put_spec(self, spec: dict, creator: str = "") -> str:
        """Store a spec (what a share link names); the first to store it is its creator."""
        h = spec_hash(spec)
        with self._conn() as c:
            c.execute("INSERT INTO specs(hash, kind, json, created, creator) VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
                      (h, spec.get("kind", "?"), canonical_json(spec), time.time(), creator))
        return h

    def spec_creator(self, h: str) -> str | None:
        with self._conn() as c:
            row = c.execute("SELECT creator FROM specs WHERE hash=?", (h,)).fetchone()
        return row["creator"] if row else None

    # --- uploads (content-addressed files; the first uploader is recorded) ---
    def record_upload(self, name: str, owner: str = "") -> None:
        with self._conn() as c:
            c.execute("INSERT INTO uploads(name, owner, created) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                      (name, owner, time.time()))

    def upload_owner(self, name: str) -> str | None:
        with self._conn() as c:
            row = c.execute("SELECT owner FROM uploads WHERE name=?", (name,)).fetchone()
        return row["owner"] if row else None

    # --- users (who has signed in; kept for the operator, and for share links' and jobs' names) ---
    def record_user(self, name: str, operator: bool = False) -> None:
        now = time.time()
        with self._conn() as c:
            c.execute("INSERT INTO users(name, operator, first_seen, last_seen) VALUES (?,?,?,?) "
                      "ON CONFLICT (name) DO UPDATE SET last_seen=excluded.last_seen, operator=excluded.operator",
                      (name, int(operator), now, now))

    def list_users(self) -> list[dict]:
        with self._conn() as c:
            rows = c.execute("SELECT name, operator, first_seen, last_seen FROM users ORDER BY last_seen DESC")
            return [{**dict(r), "operator": bool(r["operator"])} for r in rows.fetchall()]

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
    def create_job(self, job_id: str, spec: dict, title: str, owner: str = "", runner: str = "local") -> JobRecord:
        h = self.put_spec(spec, creator=owner)
        with self._conn() as c:
            c.execute("INSERT INTO jobs(id, spec_hash, kind, title, status, created, owner, runner) "
                      "VALUES (?,?,?,?,?,?,?,?)",
                      (job_id, h, spec.get("kind", "?"), title, "queued", time.time(), owner, runner))
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


def _job(row) -> JobRecord:
    return JobRecord(**dict(row))

