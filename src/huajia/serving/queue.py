"""A persistent job queue in SQLite (WAL): a job is on disk before the API acknowledges it.

States: queued → running → done | failed | cancelled. A worker claims jobs in one transaction, so
two workers never take the same job. After a crash (even ``kill -9``), ``recover()`` puts jobs
left 'running' back to 'queued': every acknowledged job completes, and none is completed twice
because ``finish`` only moves a job that is still 'running' under the same claim token.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    batch_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    owner TEXT,
    state TEXT NOT NULL,
    claim TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    completions INTEGER NOT NULL DEFAULT 0,
    result TEXT,
    error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, created);
"""


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    batch_key: str
    payload: dict
    owner: str | None
    state: str
    attempts: int
    result: dict | None
    error: str | None
    created: float
    updated: float
    claim: str | None = None


class JobQueue:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged job survives power loss
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def submit(self, kind: str, payload: dict, batch_key: str = "", owner: str | None = None) -> str:
        """Store a job durably and return its id (only then may the API answer)."""
        job_id = uuid.uuid4().hex
        now = time.time()
        self._connect().execute(
            "INSERT INTO jobs (id, kind, batch_key, payload, owner, state, created, updated) "
            "VALUES (?, ?, ?, ?, ?, 'queued', ?, ?)",
            (job_id, kind, batch_key, json.dumps(payload, ensure_ascii=False), owner, now, now))
        return job_id

    def claim(self, limit: int = 1, batch_key: str | None = None) -> list[Job]:
        """Atomically take up to ``limit`` oldest queued jobs (of one batch key, if given)."""
        db = self._connect()
        token = uuid.uuid4().hex
        db.execute("BEGIN IMMEDIATE")
        try:
            where, args = "state = 'queued'", []
            if batch_key is not None:
                where += " AND batch_key = ?"
                args.append(batch_key)
            rows = db.execute(f"SELECT id FROM jobs WHERE {where} ORDER BY created LIMIT ?",
                              (*args, limit)).fetchall()
            ids = [r["id"] for r in rows]
            db.executemany("UPDATE jobs SET state = 'running', claim = ?, attempts = attempts + 1, "
                           "updated = ? WHERE id = ?", [(token, time.time(), i) for i in ids])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return [self.get(i) for i in ids]

    def waiting(self, batch_key: str) -> tuple[int, float | None]:
        """How many jobs of ``batch_key`` are queued, and when the oldest of them arrived."""
        row = self._connect().execute(
            "SELECT COUNT(*) AS n, MIN(created) AS oldest FROM jobs "
            "WHERE state = 'queued' AND batch_key = ?", (batch_key,)).fetchone()
        return row["n"], row["oldest"]

    def completions(self, job_id: str) -> int:
        """How many times the job was finished (1 for a finished job; never 2)."""
        row = self._connect().execute("SELECT completions FROM jobs WHERE id = ?",
                                      (job_id,)).fetchone()
        return row["completions"] if row else 0

    def oldest_batch_key(self) -> str | None:
        row = self._connect().execute("SELECT batch_key FROM jobs WHERE state = 'queued' "
                                      "ORDER BY created LIMIT 1").fetchone()
        return row["batch_key"] if row else None

    def finish(self, job: Job, result: dict | None = None, error: str | None = None) -> bool:
        """Record the outcome; False if the job was cancelled or re-claimed meanwhile."""
        state = "failed" if error else "done"
        cursor = self._connect().execute(
            "UPDATE jobs SET state = ?, result = ?, error = ?, updated = ?, "
            "completions = completions + 1 WHERE id = ? AND state = 'running' AND claim = ?",
            (state, json.dumps(result) if result is not None else None, error, time.time(),
             job.id, job.claim))
        return cursor.rowcount == 1

    def release(self, job: Job) -> bool:
        """A claimed job whose painter died goes back to the queue (under the same claim, so a
        cancelled or re-claimed job stays as it is). Its attempts count stays."""
        cursor = self._connect().execute(
            "UPDATE jobs SET state = 'queued', claim = NULL, updated = ? WHERE id = ? AND "
            "state = 'running' AND claim = ?", (time.time(), job.id, job.claim))
        return cursor.rowcount == 1

    def cancel(self, job_id: str) -> bool:
        cursor = self._connect().execute(
            "UPDATE jobs SET state = 'cancelled', updated = ? WHERE id = ? AND state IN "
            "('queued', 'running')", (time.time(), job_id))
        return cursor.rowcount == 1

    def delete(self, job_id: str) -> bool:
        """The job's row gone (its prompt and result with it); a running job is cancelled
        first by the caller. False: no such job."""
        cursor = self._connect().execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return cursor.rowcount == 1

    def finished_before(self, cutoff: float, limit: int = 1000) -> list[Job]:
        """Final jobs last changed before ``cutoff``, oldest first (retention's sweep)."""
        rows = self._connect().execute(
            "SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') AND updated < ? "
            "ORDER BY updated LIMIT ?", (cutoff, limit)).fetchall()
        return [job for job in (self.get(r["id"]) for r in rows) if job is not None]

    def naming(self, name: str) -> list[Job]:
        """The jobs whose result names the file ``name``."""
        rows = self._connect().execute("SELECT id FROM jobs WHERE result LIKE ?",
                                       (f"%{name}%",)).fetchall()
        return [job for job in (self.get(r["id"]) for r in rows) if job is not None]

    def referenced(self, name: str) -> bool:
        """Whether any job's result still names the file ``name``."""
        row = self._connect().execute("SELECT 1 FROM jobs WHERE result LIKE ? LIMIT 1",
                                      (f"%{name}%",)).fetchone()
        return row is not None

    def recover(self) -> int:
        """After a crash: jobs that were running go back to the queue. Returns how many."""
        cursor = self._connect().execute(
            "UPDATE jobs SET state = 'queued', claim = NULL, updated = ? WHERE state = 'running'",
            (time.time(),))
        return cursor.rowcount

    def get(self, job_id: str) -> Job | None:
        row = self._connect().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return Job(row["id"], row["kind"], row["batch_key"], json.loads(row["payload"]),
                   row["owner"], row["state"], row["attempts"],
                   json.loads(row["result"]) if row["result"] else None, row["error"],
                   row["created"], row["updated"], row["claim"])

    def counts(self) -> dict[str, int]:
        rows = self._connect().execute("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}
