"""The job store: SQLite in WAL mode, one connection, every state change committed before it is announced.

One connection guarded by a lock is the single writer; readers go through the same connection, which keeps
the store simple and is far from a bottleneck (a state change is a few hundred microseconds). Progress
fractions are not written on every frame: the engine keeps live progress in memory and the store gets the
final value with the state change.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import VfxError

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,
    client TEXT NOT NULL,
    params TEXT NOT NULL,
    inputs TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    fraction REAL NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    error TEXT,
    summary TEXT,
    frame_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE TABLE IF NOT EXISTS quarantine (
    job_id TEXT,
    reason TEXT NOT NULL,
    record TEXT NOT NULL,
    quarantined_at REAL NOT NULL
);
"""


@dataclass
class JobRecord:
    """A job as stored. ``params``/``inputs``/``summary``/``error`` are plain data (JSON in the database)."""

    job_id: str
    mode: str
    state: str
    client: str
    params: dict[str, Any]
    inputs: dict[str, Any]
    fingerprint: str
    created_at: float
    updated_at: float
    seq: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    fraction: float = 0.0
    stage: str = ""
    error: dict[str, Any] | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    frame_count: int = 0


_JSON_FIELDS = ("params", "inputs", "error", "summary")


def _row_to_record(row: sqlite3.Row) -> JobRecord:
    values = dict(row)
    for name in _JSON_FIELDS:
        values[name] = json.loads(values[name]) if values[name] is not None else None
    values["summary"] = values["summary"] or {}
    return JobRecord(**values)


class DatabaseDamaged(VfxError):
    """The job database cannot be read; the message says how to start afresh while keeping the file."""

    code = "database_damaged"


CHECK_INTERVAL_S = 60.0
"""How old :meth:`JobStore.state` may let its last integrity check get (a check reads the whole file)."""


def _quick_check(db: sqlite3.Connection) -> str | None:
    """SQLite's quick integrity check: None when the file is sound, else the first problem it names."""
    result = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    return None if result == "ok" else str(result)


class JobStore:
    """Durable job records. Thread-safe; every method is one transaction."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the database and check it. Raises :class:`DatabaseDamaged` for a file that is not
        a database or fails SQLite's integrity check, naming the way out; the file is never changed then."""
        self.path = path
        self._lock = threading.Lock()
        self._checked: tuple[float, str | None] = (time.monotonic(), None)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        try:
            problem = _quick_check(self._db)  # before any write: a damaged file is left exactly as it was
            if problem is None:
                self._db.row_factory = sqlite3.Row
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:  # locked, read-only, an I/O error: not damage
            self._db.close()
            raise VfxError(f"could not open the job database {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            problem = str(exc)
        if problem is not None:
            self._db.close()
            raise DatabaseDamaged(
                f"the job database {path} is damaged ({problem}). It was kept as it is. To start afresh beside "
                f"it, move it away (mv {path} {path}.damaged, and its -wal and -shm files if any) and start the "
                "daemon again: a new, empty database is created and the job folders stay; "
                f"`sqlite3 {path}.damaged .recover` may rescue records from the kept file."
            )

    def state(self) -> dict[str, Any]:
        """For ``health``: ``{"path", "state": "ok" | "damaged", "problem"}``, from an integrity check at most
        ``CHECK_INTERVAL_S`` old (run now when older)."""
        checked_at, problem = self._checked
        if time.monotonic() - checked_at >= CHECK_INTERVAL_S:
            with self._lock:
                try:
                    problem = _quick_check(self._db)
                except sqlite3.DatabaseError as exc:
                    problem = str(exc)
            self._checked = (time.monotonic(), problem)
        return {"path": str(self.path), "state": "ok" if problem is None else "damaged", "problem": problem}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def insert(self, record: JobRecord) -> JobRecord:
        """Insert a new job; returns the stored record (with its sequence number)."""
        values = {k: v for k, v in record.__dict__.items() if k != "seq"}
        for name in _JSON_FIELDS:
            values[name] = json.dumps(values[name]) if values[name] is not None else None
        columns = ", ".join(values)
        marks = ", ".join(f":{k}" for k in values)
        with self._lock:
            self._db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", values)
        stored = self.get(record.job_id)
        assert stored is not None
        return stored

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return _row_to_record(row) if row else None

    def update(self, job_id: str, *, expect: tuple[str, ...] = (), **changes: Any) -> JobRecord | None:
        """Apply ``changes`` if the job's state is one of ``expect`` (any state when empty).

        Returns the updated record, or None when the job is missing or in another state. The check and the
        write are one transaction, so two threads cannot both move a job out of the same state.
        """
        changes["updated_at"] = time.time()
        for name in _JSON_FIELDS:
            if name in changes:
                changes[name] = json.dumps(changes[name]) if changes[name] is not None else None
        assignments = ", ".join(f"{k} = :{k}" for k in changes)
        condition = "job_id = :job_id"
        params: dict[str, Any] = {**changes, "job_id": job_id}
        if expect:
            condition += " AND state IN (" + ", ".join(f":s{i}" for i in range(len(expect))) + ")"
            params.update({f"s{i}": s for i, s in enumerate(expect)})
        with self._lock:
            cursor = self._db.execute(f"UPDATE jobs SET {assignments} WHERE {condition}", params)
            updated = cursor.rowcount == 1
        return self.get(job_id) if updated else None

    def page(self, limit: int, before: int | None = None, client: str | None = None) -> list[JobRecord]:
        """Jobs newest first; ``before`` is the ``seq`` of the last job of the previous page; ``client``: only
        that client's jobs."""
        query = "SELECT * FROM jobs WHERE seq < ?"
        args: list[Any] = [2**63 - 1 if before is None else before]
        if client is not None:
            query += " AND client = ?"
            args.append(client)
        with self._lock:
            rows = self._db.execute(f"{query} ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [_row_to_record(r) for r in rows]

    def in_state(self, *states: str) -> list[JobRecord]:
        marks = ", ".join("?" for _ in states)
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY seq", states).fetchall()
        return [_row_to_record(r) for r in rows]

    def count(self, state: str, client: str | None = None) -> int:
        with self._lock:
            if client is None:
                row = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = ?", (state,)).fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM jobs WHERE state = ? AND client = ?", (state, client)
                ).fetchone()
        return int(row[0])

    def mark_running_interrupted(self) -> list[str]:
        """On start-up: jobs a dead daemon left running become ``interrupted`` (retry-able)."""
        now = time.time()
        error = json.dumps(
            {
                "code": "interrupted",
                "message": "the daemon stopped while this job ran; retry it",
                "detail": None,
            }
        )
        with self._lock:
            rows = self._db.execute("SELECT job_id FROM jobs WHERE state = 'running'").fetchall()
            self._db.execute(
                "UPDATE jobs SET state = 'interrupted', error = ?, updated_at = ?, finished_at = ? "
                "WHERE state = 'running'",
                (error, now, now),
            )
        return [r[0] for r in rows]

    def finished_before(self, cutoff: float) -> list[JobRecord]:
        """Jobs in a final state that finished before ``cutoff`` (unix seconds)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled', 'interrupted') "
                "AND COALESCE(finished_at, updated_at) < ? ORDER BY seq",
                (cutoff,),
            ).fetchall()
        return [_row_to_record(r) for r in rows]

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))

    def all_inputs(self) -> list[dict[str, Any]]:
        """The input specs of every stored job (to know which uploaded blobs are still referenced)."""
        with self._lock:
            rows = self._db.execute("SELECT inputs FROM jobs").fetchall()
        return [json.loads(r[0]) for r in rows]

    def quarantine(self, check: Callable[[JobRecord], str | None]) -> list[tuple[str, str]]:
        """Move every job record that cannot be read, or that ``check`` finds bad (it returns the reason, or
        None for a good record), out of ``jobs`` into the ``quarantine`` table, where it is kept as JSON for
        inspection and never served. Returns (job id, reason) pairs."""
        moved = []
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
            for row in rows:
                try:
                    reason = check(_row_to_record(row))
                except (ValueError, TypeError) as exc:  # JSON that does not parse, columns of the wrong type
                    reason = f"unreadable record: {exc}"
                if reason is None:
                    continue
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO quarantine (job_id, reason, record, quarantined_at) VALUES (?, ?, ?, ?)",
                    (str(row["job_id"]), reason, json.dumps(dict(row), default=str), time.time()),
                )
                self._db.execute("DELETE FROM jobs WHERE seq = ?", (row["seq"],))
                self._db.execute("COMMIT")
                moved.append((str(row["job_id"]), reason))
        return moved

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
