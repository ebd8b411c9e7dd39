"""The SQLite job store on its own: schema versions, atomic claims across processes, cancel, names."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest
from helpers import ROOT

from largegraph.core.errors import JobError
from largegraph.jobs.store import SCHEMA_VERSION, JobStore, Outcome
from largegraph.jobs.workspace import Workspace, check_job_name


def add(store: JobStore, ws: Workspace, name: str | None = None, **kw):
    spec = dict(name=name, default_base="t", task="node_classification", config="name: t\n", epochs=1,
                priority=0, max_retries=0, nproc=1, device="cpu", max_restarts=None,
                paths=lambda n, i: (ws.job_config(i), ws.run_dir(n, i)))
    spec.update(kw)
    return store.submit(**spec)


def test_new_store_is_wal_and_at_the_current_schema_version(ws):
    JobStore(ws.db_path).close()
    conn = sqlite3.connect(ws.db_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_from_a_newer_version_is_refused(ws):
    JobStore(ws.db_path).close()
    conn = sqlite3.connect(ws.db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JobError, match="newer than this largegraph"):
        JobStore(ws.db_path)


def test_default_names_and_paths_use_the_id(ws):
    store = JobStore(ws.db_path)
    taken = add(store, ws, name="t-2")  # a user took the name the next default would get
    job = add(store, ws)
    assert (taken.id, job.id) == (1, 2)
    assert job.name == "t-2-2"
    assert job.run_dir == str(ws.root / "runs" / "t-2-2-2")
    assert job.config_path == str(ws.root / "jobs" / "2" / "config.yaml")
    with pytest.raises(JobError, match="already exists"):
        add(store, ws, name="t-2")
    assert store.get("2").name == store.get("t-2-2").name == "t-2-2"


@pytest.mark.parametrize("name", ["../etc", "a/b", "x;rm -rf", "$(id)", "-rf", "", "a" * 65, "123", ".hidden"])
def test_unsafe_job_names_are_refused(name):
    with pytest.raises(JobError, match="invalid"):
        check_job_name(name)


def test_claim_takes_priority_then_age_and_skips_backoff_and_oversized_jobs(ws):
    store = JobStore(ws.db_path)
    low = add(store, ws, name="low")
    high = add(store, ws, name="high", priority=5)
    big = add(store, ws, name="big", nproc=4, priority=9)
    gpu = add(store, ws, name="gpu", device="cuda", priority=9)
    assert store.claim("d1", free_cpu=2, free_gpu=0).id == high.id
    # A failed attempt requeued with a backoff is not claimable until its time comes.
    assert store.end_attempt(store.get("high"), "d1", Outcome("queued", "crashed", 1, "boom", failure=True,
                                                              not_before=time.time() + 60))
    assert store.claim("d1", free_cpu=2, free_gpu=0).id == low.id
    assert store.claim("d1", free_cpu=2, free_gpu=0) is None
    assert store.claim("d1", free_cpu=2, free_gpu=1).id == gpu.id
    assert store.claim("d1", free_cpu=4, free_gpu=0).id == big.id
    high = store.get("high")
    assert (high.state, high.failures, high.attempt, high.last_error) == ("queued", 1, 1, "boom")


def test_end_attempt_needs_ownership(ws):
    store = JobStore(ws.db_path)
    add(store, ws, name="a")
    job = store.claim("d1", 1, 0)
    assert not store.end_attempt(job, "d2", Outcome("succeeded", "exited", 0))
    assert store.adopt(job, "d1", "d2")
    assert not store.adopt(job, "d1", "d3")  # only one recovering daemon wins
    assert store.end_attempt(job, "d2", Outcome("succeeded", "exited", 0))
    assert [a["outcome"] for a in store.attempts(job.id)] == ["exited"]


def test_cancel_queued_is_immediate_running_is_flagged_final_is_refused(ws):
    store = JobStore(ws.db_path)
    add(store, ws, name="queued")
    add(store, ws, name="running")
    store.claim("d1", 1, 0)  # takes "queued" (older)
    store.claim("d1", 1, 0)
    store.end_attempt(store.get("queued"), "d1", Outcome("queued", "drained"))
    assert store.request_cancel("queued").state == "cancelled"
    job = store.request_cancel("running")
    assert (job.state, job.cancel_requested) == ("running", 1)
    with pytest.raises(JobError, match="already cancelled"):
        store.request_cancel("queued")
    with pytest.raises(JobError, match="no job named 'nope'"):
        store.request_cancel("nope")


CLAIMER = """
import json, sys
from largegraph.jobs.store import JobStore
store = JobStore(sys.argv[1])
got = []
while (job := store.claim(sys.argv[2], 1, 0)) is not None:
    got.append(job.id)
print(json.dumps(got))
"""


def test_concurrent_claims_from_processes_never_hand_out_a_job_twice(ws):
    store = JobStore(ws.db_path)
    for i in range(60):
        add(store, ws, name=f"j{i}")
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, str(ws.db_path), f"d{i}"], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    claimed = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    flat = sorted(i for ids in claimed for i in ids)
    assert flat == list(range(1, 61))
    assert {j.state for j in store.jobs()} == {"running"}


def test_locked_and_corrupt_store_raise_one_line_job_errors(ws, tmp_path):
    JobStore(ws.db_path).close()
    holder = sqlite3.connect(ws.db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    store = JobStore(ws.db_path, timeout_s=0.2)
    assert store.jobs() == []  # WAL: reading works while another process writes
    with pytest.raises(JobError, match="locked by another process"):
        add(store, ws, name="x")
    holder.execute("ROLLBACK")
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JobError, match="corrupt or not a job store") as info:
        JobStore(bad)
    assert "\n" not in str(info.value)
