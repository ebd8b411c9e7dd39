"""The job store: one SQLite file per workspace, shared by the daemon(s) and every CLI command.

Why SQLite: it is embedded (no server to run on one machine), transactional, and its file locks make
"claim the next job" atomic across processes, which is what keeps a job from running twice even with
two daemons on one workspace. WAL mode lets ``status`` read while a daemon writes. Every write is a
``BEGIN IMMEDIATE`` transaction, so a writer takes the lock up front instead of failing halfway
through; waiting for the lock is bounded by a busy timeout. The schema is versioned with
``PRAGMA user_version`` and upgraded by ordered migrations. The store must live on a local disk:
SQLite's locking is not reliable on network file systems.
"""
from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from largegraph.core.errors import JobError
# The schema's names are imported from here by the daemon, the server and the tests alike.
from largegraph.jobs.schema import (FINAL_STATES, MIGRATIONS, SCHEMA_VERSION, STATES, Daemon, Job,  # noqa: F401
                                    JobConflict, NoSuchJob, Outcome, QueueFull, StoreBusy)

TIMEOUT_ENV = "LARGEGRAPH_STORE_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0


class JobStore:
    """All reads and writes of the job store. One connection per instance; not shared across threads."""

    def __init__(self, path: str | Path, timeout_s: float | None = None):
        self.path = Path(path)
        self.timeout_s = float(timeout_s if timeout_s is not None else os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
        with self._errors():
            # isolation_level=None: we issue BEGIN IMMEDIATE/COMMIT ourselves.
            self.conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()

    def close(self) -> None:
        self.conn.close()

    # --- plumbing ----------------------------------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn SQLite's exceptions into one-line ``JobError``s that say what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                raise StoreBusy(f"job store {self.path} is locked by another process (waited "
                               f"{self.timeout_s:g}s); try again, or look for a hung largegraph process") from None
            raise JobError(f"job store {self.path}: {text}") from None
        except sqlite3.DatabaseError as exc:
            raise JobError(f"job store {self.path} is corrupt or not a job store ({exc}); move it aside "
                           "and resubmit, or restore a backup") from None

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._errors():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                if self.conn.in_transaction:  # SQLite itself rolls back after some errors
                    self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        with self._errors():
            return self.conn.execute(sql, params).fetchall()

    def _migrate(self) -> None:
        version = self.conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JobError(f"job store {self.path} has schema version {version}, newer than this largegraph "
                           f"understands ({SCHEMA_VERSION}); upgrade largegraph")
        if version == SCHEMA_VERSION:
            return  # the common case takes no write lock, so reads work while a writer holds it
        with self._tx() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            for number in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[number]:
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # --- jobs --------------------------------------------------------------------------------------
    def submit(self, *, name: str | None, default_base: str, task: str, config: str, epochs: int | None,
               priority: int, max_retries: int, nproc: int, device: str, max_restarts: int | None,
               paths: Callable[[str, int], tuple[Path, Path]], submitted_by: str | None = None,
               max_queued: int | None = None, nodes: int = 1, partition: str | None = None,
               time_limit: str | None = None) -> Job:
        """Record a new queued job and return it.

        Args:
            name: the job's name, or None for ``<default_base>-<id>``.
            paths: a callable ``(name, id) -> (config_path, run_dir)`` placing the job's files.
            nodes, partition, time_limit: what the job asks of a cluster scheduler.

        Raises:
            JobError: the name is taken, ``submitted_by`` already has ``max_queued`` jobs waiting,
                or the store is locked or corrupt.
        """
        now = time.time()
        with self._tx() as conn:
            if submitted_by is not None and max_queued is not None:
                self._check_quota(conn, submitted_by, max_queued)
            if name is not None:
                taken = conn.execute("SELECT id FROM jobs WHERE name = ?", (name,)).fetchone()
                if taken:
                    raise JobConflict(f"a job named {name!r} already exists (id {taken['id']}); choose another --name")
            cur = conn.execute(
                "INSERT INTO jobs (name, task, config, epochs, priority, max_retries, nproc, device, "
                "max_restarts, submitted_at, submitted_by, nodes, partition, time_limit) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name or f".pending-{os.getpid()}-{now}", task, config, epochs, priority, max_retries, nproc,
                 device, max_restarts, now, submitted_by, nodes, partition, time_limit))
            job_id = cur.lastrowid
            if name is None:
                name = self._free_name(conn, default_base, job_id)
            config_path, run_dir = paths(name, job_id)
            conn.execute("UPDATE jobs SET name = ?, config_path = ?, run_dir = ? WHERE id = ?",
                         (name, str(config_path), str(run_dir), job_id))
            return Job.from_row(conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    @staticmethod
    def _check_quota(conn: sqlite3.Connection, who: str, most: int) -> None:
        waiting = conn.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND submitted_by = ?",
                               (who,)).fetchone()[0]
        if waiting >= most:
            raise QueueFull(f"token {who!r} already has {waiting} jobs queued, the most this server takes "
                            "(serve --max-queued); wait for some to start, or cancel some")

    @staticmethod
    def _free_name(conn: sqlite3.Connection, base: str, job_id: int) -> str:
        suffix = f"-{job_id}"
        candidate = f"{base[:64 - len(suffix)]}{suffix}"
        n = 1
        while conn.execute("SELECT 1 FROM jobs WHERE name = ?", (candidate,)).fetchone():
            n += 1  # a user already chose this name for another job
            suffix = f"-{job_id}-{n}"
            candidate = f"{base[:64 - len(suffix)]}{suffix}"
        return candidate

    def get(self, ref: str | int) -> Job:
        """The job with this numeric id or name; ``JobError`` if there is none."""
        text = str(ref)
        key, value = ("id", int(text)) if text.isdigit() else ("name", text)
        rows = self._read(f"SELECT * FROM jobs WHERE {key} = ?", (value,))
        if not rows:
            raise NoSuchJob(f"no job {'with id' if key == 'id' else 'named'} {text!r} in this workspace "
                           f"({self.path.parent}); see `largegraph status`")
        return Job.from_row(rows[0])

    def jobs(self, state: str | None = None, daemon_id: str | None = None, after: int = 0,
             limit: int | None = None) -> list[Job]:
        """Jobs in submission order, optionally only those in ``state`` and/or owned by ``daemon_id``;
        a page of them with ``after`` (ids above it) and ``limit``."""
        sql, params = "SELECT * FROM jobs WHERE id > ?", [after]
        if state is not None:
            sql, params = sql + " AND state = ?", params + [state]
        if daemon_id is not None:
            sql, params = sql + " AND daemon_id = ?", params + [daemon_id]
        sql += " ORDER BY id" + (" LIMIT ?" if limit is not None else "")
        return [Job.from_row(r) for r in self._read(sql, tuple(params + ([limit] if limit is not None else [])))]

    def claim(self, daemon_id: str, free_cpu: int, free_gpu: int) -> Job | None:
        """Atomically move the best queued job that fits the free slots to ``running`` for this daemon.

        The row is selected and updated in one statement inside a write transaction, and the update
        re-checks ``state = 'queued'``, so two daemons can never claim the same job.
        """
        now = time.time()
        with self._tx() as conn:
            row = conn.execute(
                """UPDATE jobs SET state = 'running', daemon_id = :daemon, attempt = attempt + 1,
                       started_at = :now, heartbeat_at = :now, pid = NULL, pid_start = NULL, exit_code = NULL
                   WHERE id = (SELECT id FROM jobs
                               WHERE state = 'queued' AND not_before <= :now AND cancel_requested = 0
                                 AND nproc <= (CASE WHEN device LIKE 'cuda%' THEN :gpu ELSE :cpu END)
                               ORDER BY priority DESC, id LIMIT 1)
                     AND state = 'queued'
                   RETURNING *""",
                {"daemon": daemon_id, "now": now, "cpu": free_cpu, "gpu": free_gpu}).fetchone()
            if row is None:
                return None
            job = Job.from_row(row)
            conn.execute("INSERT OR REPLACE INTO attempts (job_id, attempt, daemon_id, started_at) VALUES (?, ?, ?, ?)",
                         (job.id, job.attempt, daemon_id, now))
            return job

    def set_pid(self, job: Job, pid: int, pid_start: int | None) -> None:
        """Record the process (group leader) running ``job``'s current attempt."""
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ?", (pid, pid_start, job.id))
            conn.execute("UPDATE attempts SET pid = ? WHERE job_id = ? AND attempt = ?", (pid, job.id, job.attempt))

    def record_progress(self, job_id: int, daemon_id: str, progress: dict) -> None:
        """Update progress columns (epoch, step, metric, ..., heartbeat_at) of a job this daemon runs."""
        allowed = {"epoch", "step", "metric", "last_metric", "best_metric", "resumes", "heartbeat_at"}
        assert set(progress) <= allowed, set(progress) - allowed
        if not progress:
            return
        assignments = ", ".join(f"{k} = :{k}" for k in progress)
        with self._tx() as conn:
            conn.execute(f"UPDATE jobs SET {assignments} WHERE id = :id AND daemon_id = :daemon AND state = 'running'",
                         {**progress, "id": job_id, "daemon": daemon_id})

    def end_attempt(self, job: Job, daemon_id: str, result: Outcome) -> bool:
        """Close ``job``'s current attempt with ``result``; False if this daemon no longer owns the job."""
        assert result.state in STATES and result.state != "running", result.state
        now = time.time()
        final = result.state in FINAL_STATES
        with self._tx() as conn:
            cur = conn.execute(
                """UPDATE jobs SET state = ?, exit_code = ?, last_error = COALESCE(?, last_error),
                       failures = failures + ?, not_before = ?, finished_at = ?, daemon_id = NULL, pid = NULL,
                       pid_start = NULL
                   WHERE id = ? AND daemon_id = ? AND state = 'running'""",
                (result.state, result.exit_code, result.last_error, int(result.failure), result.not_before,
                 now if final else None, job.id, daemon_id))
            if cur.rowcount != 1:
                return False
            conn.execute("UPDATE attempts SET ended_at = ?, exit_code = ?, outcome = ? "
                         "WHERE job_id = ? AND attempt = ?",
                         (now, result.exit_code, result.outcome, job.id, job.attempt))
            return True

    def adopt(self, job: Job, from_daemon: str | None, to_daemon: str) -> bool:
        """Take over a running job whose daemon died; only one recovering daemon can win."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE jobs SET daemon_id = ? WHERE id = ? AND state = 'running' AND daemon_id IS ?",
                               (to_daemon, job.id, from_daemon))
            return cur.rowcount == 1

    def fail_queued(self, job_id: int, error: str) -> bool:
        """Fail a job that is still queued (one no daemon could ever run); False if it moved on."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE jobs SET state = 'failed', finished_at = ?, last_error = ? "
                               "WHERE id = ? AND state = 'queued'", (time.time(), error, job_id))
            return cur.rowcount == 1

    def request_cancel(self, ref: str) -> Job:
        """Cancel a queued job now, or flag a running one for its daemon to stop; returns the job after.

        Raises:
            JobError: unknown job, or one that already ended.
        """
        job = self.get(ref)
        with self._tx() as conn:
            state = conn.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()["state"]
            if state in FINAL_STATES:
                raise JobConflict(f"job {job.name} already {state}; nothing to cancel")
            if state == "queued":
                conn.execute("UPDATE jobs SET state = 'cancelled', finished_at = ?, last_error = 'cancelled' "
                             "WHERE id = ?", (time.time(), job.id))
            else:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job.id,))
        return self.get(job.id)

    def attempts(self, job_id: int) -> list[dict]:
        """Every attempt of a job: attempt, daemon_id, pid, started_at, ended_at, exit_code, outcome."""
        return [dict(r) for r in self._read("SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,))]

    # --- API tokens --------------------------------------------------------------------------------
    def add_token(self, name: str, digest: str) -> int:
        """Record a live token by its digest; ``JobConflict`` if a live token already has ``name``."""
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM tokens WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone():
                raise JobConflict(f"a live token named {name!r} already exists; revoke it first "
                                  f"(`largegraph token revoke {name}`) or choose another --name")
            return conn.execute("INSERT INTO tokens (name, digest, created_at) VALUES (?, ?, ?)",
                                (name, digest, time.time())).lastrowid

    def revoke_token(self, name: str) -> bool:
        """Revoke the live token called ``name``; False if there is none."""
        with self._tx() as conn:
            cur = conn.execute("UPDATE tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                               (time.time(), name))
            return cur.rowcount == 1

    def live_tokens(self) -> list[tuple[str, str]]:
        """``(name, digest)`` of every token not revoked."""
        return [(r["name"], r["digest"]) for r in self._read("SELECT name, digest FROM tokens WHERE revoked_at IS NULL")]

    def tokens(self) -> list[dict]:
        """Every token ever created, digests left out: name, created_at, revoked_at, last_used_at."""
        return [dict(r) for r in self._read("SELECT name, created_at, revoked_at, last_used_at FROM tokens ORDER BY id")]

    def token_used(self, name: str) -> None:
        """Stamp a live token's last use (best effort: a busy store only costs the stamp)."""
        try:
            with self._tx() as conn:
                conn.execute("UPDATE tokens SET last_used_at = ? WHERE name = ? AND revoked_at IS NULL",
                             (time.time(), name))
        except StoreBusy:
            pass

    # --- daemons -----------------------------------------------------------------------------------
    def register_daemon(self, daemon_id: str, host: str, pid: int, pid_start: int | None) -> None:
        now = time.time()
        with self._tx() as conn:
            conn.execute("INSERT INTO daemons (id, host, pid, pid_start, started_at, heartbeat_at) "
                         "VALUES (?, ?, ?, ?, ?, ?)",
                         (daemon_id, host, pid, pid_start, now, now))

    def beat_daemon(self, daemon_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE daemons SET heartbeat_at = ? WHERE id = ?", (time.time(), daemon_id))

    def stop_daemon(self, daemon_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE daemons SET stopped_at = ? WHERE id = ?", (time.time(), daemon_id))

    def daemons(self) -> list[Daemon]:
        """Daemons not known to have stopped (some may have died without saying so)."""
        return [Daemon(**dict(r)) for r in self._read("SELECT * FROM daemons WHERE stopped_at IS NULL")]

    def daemon(self, daemon_id: str | None) -> Daemon | None:
        rows = self._read("SELECT * FROM daemons WHERE id = ?", (daemon_id,))
        return Daemon(**dict(rows[0])) if rows else None
