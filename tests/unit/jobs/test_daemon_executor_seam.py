"""The daemon through the Executor seam, with a scripted executor: a dead daemon's job is adopted
when the executor can watch it and requeued when it cannot; a scheduler's executor is not held to the
daemon's slots; an executor's refusal fails a queued job in one line."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from largegraph.jobs.daemon import JobDaemon, ServeOptions
from largegraph.jobs.executor import Attempt
from largegraph.jobs.schema import Job
from largegraph.jobs.store import JobStore
from largegraph.jobs.workspace import Workspace


@dataclass
class ScriptedExecutor:
    """An executor whose answers the test sets; it records what the daemon asked of it."""

    uses_slots: bool = False
    noun: str = "scripted job"
    adopted: Attempt | None = None
    exit_code: int | None = None
    refuse: str | None = None
    calls: list[str] = field(default_factory=list)

    def refusal(self, job: Job) -> str | None:
        return self.refuse

    def clear_strays(self, job: Job) -> None:
        self.calls.append(f"clear_strays {job.id}")

    def start(self, job: Job, env: Mapping[str, str], log_path: Path, cwd: Path) -> Attempt:
        self.calls.append(f"start {job.id}")
        return Attempt(job.id, 1000 + job.id, None)

    def poll(self, attempt: Attempt) -> int | None:
        return self.exit_code

    def running_since(self, attempt: Attempt) -> float | None:
        return None

    def terminate(self, attempt: Attempt) -> None:
        self.calls.append(f"terminate {attempt.id}")

    def kill(self, attempt: Attempt) -> None:
        self.calls.append(f"kill {attempt.id}")

    def release(self, attempt: Attempt) -> None:
        self.calls.append(f"release {attempt.id}")

    def adopt(self, job: Job) -> Attempt | None:
        self.calls.append(f"adopt {job.id}")
        return self.adopted


def queue(ws: Workspace, store: JobStore, name: str, nproc: int = 1) -> Job:
    return store.submit(name=name, default_base="t", task="node_classification", config="name: t\n", epochs=2,
                        priority=0, max_retries=0, nproc=nproc, device="cpu", max_restarts=None,
                        paths=lambda n, i: (ws.job_config(i), ws.run_dir(n, i)))


def orphan(ws: Workspace, store: JobStore, name: str, attempt_id: int) -> Job:
    """A job a daemon started and then died with (its start time no longer matches: a dead process)."""
    queue(ws, store, name)
    store.register_daemon("dead", socket.gethostname(), os.getpid(), -1)
    job = store.claim("dead", 1, 0)
    store.set_pid(job, attempt_id, None)
    return store.get(name)


def test_a_dead_daemons_job_that_the_executor_can_watch_is_adopted_and_ends_once(ws: Workspace, store: JobStore):
    job = orphan(ws, store, "j", 77)
    executor = ScriptedExecutor(adopted=Attempt(job.id, 77, None))
    daemon = JobDaemon(ws, ServeOptions(), executor)
    daemon.recover_orphans()
    assert list(daemon.children) == [job.id] and executor.calls == [f"adopt {job.id}"]
    adopted = store.get("j")
    assert (adopted.state, adopted.daemon_id, adopted.pid, adopted.attempt) == ("running", daemon.id, 77, 1)
    daemon._reap()  # still running: nothing happens
    executor.exit_code = 0
    daemon._reap()
    done = store.get("j")
    assert (done.state, done.attempt, done.failures) == ("succeeded", 1, 0)
    assert [(a["outcome"], a["exit_code"]) for a in store.attempts(job.id)] == [("exited", 0)]
    assert "start" not in " ".join(executor.calls)  # never a second copy


def test_a_dead_daemons_job_the_executor_stopped_is_requeued(ws: Workspace, store: JobStore):
    job = orphan(ws, store, "j", 78)
    daemon = JobDaemon(ws, ServeOptions(), ScriptedExecutor(adopted=None))
    daemon.recover_orphans()
    requeued = store.get("j")
    assert not daemon.children and (requeued.state, requeued.failures) == ("queued", 0)
    assert store.attempts(job.id)[0]["outcome"] == "orphaned"


def test_a_schedulers_executor_is_not_held_to_the_daemons_slots_and_its_refusal_fails_a_job(ws: Workspace,
                                                                                          store: JobStore):
    big = queue(ws, store, "big", nproc=64)
    executor = ScriptedExecutor()
    daemon = JobDaemon(ws, ServeOptions(cpu_slots=2, gpu_slots=0, max_parallel=1), executor)
    daemon._fill()
    assert store.get("big").state == "running" and executor.calls == [f"clear_strays {big.id}", f"start {big.id}"]
    queue(ws, store, "nope")
    refused = JobDaemon(ws, ServeOptions(), ScriptedExecutor(refuse="needs 3 nodes; this daemon has 1"))
    refused._fail_unrunnable()
    assert (store.get("nope").state, store.get("nope").last_error) == ("failed", "needs 3 nodes; this daemon has 1")
