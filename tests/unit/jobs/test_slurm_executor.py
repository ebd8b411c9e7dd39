"""The Slurm executor without a cluster: reading scontrol/squeue/sbatch output, building sbatch's
arguments, and how states and exit codes reach the daemon (Slurm's commands replaced by recorded
answers; the real cluster is tests/e2e/test_slurm_service.py's)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_local_executor import make_job

from largegraph.core.errors import JobError
from largegraph.jobs import slurmctl
from largegraph.jobs.executor import Attempt
from largegraph.jobs.slurm import LOST_EXIT, SlurmExecutor, SlurmOptions
from largegraph.jobs.submission import SubmitOptions
from largegraph.jobs.workspace import Workspace

# As Slurm 22.05's `scontrol show job -o` printed them (trimmed); Command= holds the script's arguments.
COMPLETED = ("JobId=5 JobName=largegraph-1-a29f9b52f142 UserId=root(0) GroupId=root(0) Priority=4294901755 "
             "JobState=COMPLETED Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 ExitCode=0:0 "
             "RunTime=00:00:26 SubmitTime=2026-12-03T19:45:16 StartTime=2026-12-03T19:45:16 "
             "EndTime=2026-12-03T19:45:42 Partition=low Command=/x/train.sbatch /ws/jobs/1/config.yaml "
             "JobState=FAKE --device cpu StdOut=/ws/runs/n1-1/train.log")
PENDING_AFTER_REQUEUE = ("JobId=7 JobName=lg JobState=PENDING Reason=BeginTime Requeue=1 Restarts=1 ExitCode=0:15 "
                         "StartTime=2026-12-03T20:01:00 EndTime=Unknown")


def test_scontrol_lines_are_read_into_typed_records():
    done = slurmctl.parse_job(COMPLETED)
    assert (done.id, done.name, done.state, done.exit_code, done.restarts, done.requeue) == (
        5, "largegraph-1-a29f9b52f142", "COMPLETED", 0, 0, True)
    assert done.is_final and not done.is_running and done.start_time == slurmctl.slurm_time("2026-12-03T19:45:16")
    waiting = slurmctl.parse_job(PENDING_AFTER_REQUEUE)
    assert not waiting.is_final and waiting.start_time is None and waiting.restarts == 1  # a future start is no start
    assert slurmctl.parse_job("slurm_load_jobs error: Invalid job id specified") is None


@pytest.mark.parametrize("state, code, requeue, expected, final", [
    ("COMPLETED", "0:0", "1", 0, True),
    ("FAILED", "143:0", "1", 143, True),
    ("CANCELLED", "0:15", "1", -15, True),
    ("TIMEOUT", "0:0", "1", 1, True),        # never read as success
    ("NODE_FAIL", "0:0", "1", 1, True),
    ("PREEMPTED", "0:15", "1", -15, False),  # Slurm requeues it under the same id
    ("PREEMPTED", "0:15", "0", -15, True),
    ("RUNNING", "0:0", "1", None, False),    # no exit code yet
    ("COMPLETING", "0:0", "1", None, False),
])
def test_states_and_exit_codes_map_to_what_the_daemon_judges(state, code, requeue, expected, final):
    job = slurmctl.parse_job(f"JobId=3 JobName=x JobState={state} Requeue={requeue} Restarts=0 ExitCode={code}")
    assert job.is_final == final and expected in (None, job.exit_code)


def test_ids_and_errors_of_sbatch_and_squeue_are_read_in_one_line():
    assert slurmctl.parse_ids("12\n13;lgtest\n\nsqueue: junk\n") == [12, 13]
    partition = ("sbatch: error: invalid partition specified: nope\n"
                 "sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert slurmctl.error_line(partition, "x") == "invalid partition specified: nope"
    unknown = "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n"
    assert slurmctl.error_line(unknown, "x") == "sbatch: unrecognized option '--bogus'"
    assert slurmctl.error_line("", "sbatch exited with 1") == "sbatch exited with 1"


def test_sbatch_args_are_a_list_with_the_jobs_resources_then_the_operators_then_the_submitters(ws: Workspace):
    job = make_job(ws, 4, nproc=2, device="cuda", nodes=3, partition="gpu", time_limit="1:00:00",
                   config_path="/ws/jobs/4/config.yaml")
    args = slurmctl.sbatch_args(job, "lg-4", Path("/ws/runs/r/train.log"), Path("/repo/train.sbatch"),
                                ["--account=ml", "--partition=cpu"])
    assert args[:5] == ["sbatch", "--parsable", "--job-name=lg-4", "--output=/ws/runs/r/train.log",
                        "--open-mode=append"]
    assert args[5:10] == ["--nodes=3", "--ntasks-per-node=1", "--gpus-per-node=2", "--cpus-per-task=2",
                          "--oversubscribe"]  # lifts the header's --exclusive
    assert args[10:14] == ["--account=ml", "--partition=cpu", "--partition=gpu", "--time=1:00:00"]  # the last wins
    assert args[14:] == ["/repo/train.sbatch", "/ws/jobs/4/config.yaml", "--device", "cuda"]
    cpu = slurmctl.sbatch_args(make_job(ws, 5), "lg-5", Path("l"), Path("s"), [])
    assert "--gpus-per-node=0" in cpu and not any(a.startswith(("--partition", "--time")) for a in cpu)


def test_the_script_gets_the_run_dir_processes_a_port_of_its_own_and_the_daemons_python(ws: Workspace):
    env = slurmctl.script_env(make_job(ws, 9, nproc=2, max_restarts=1), {"PATH": "/usr/bin", "X": "1"}, Path("/py"))
    assert env["RUN_DIR"].endswith("job9") and env["NPROC"] == "2" and env["MAX_RESTARTS"] == "1"
    assert env["PATH"] == "/py:/usr/bin" and env["X"] == "1"
    other = slurmctl.script_env(make_job(ws, 10), {}, Path("/py"))
    assert other["RDZV_PORT"] != env["RDZV_PORT"] and "MAX_RESTARTS" not in other


class FakeSlurm:
    """Slurm's commands answered from a script of replies, every call recorded."""

    def __init__(self, replies: dict[str, list[tuple[int, str, str]]]):
        self.replies = replies
        self.calls: list[list[str]] = []

    def __call__(self, args, env=None, cwd=None) -> subprocess.CompletedProcess:
        self.calls.append(list(args))
        key = " ".join(args[:2])
        queue = self.replies.get(key) or [(0, "", "")]
        code, out, err = queue.pop(0) if len(queue) > 1 else queue[0]
        return subprocess.CompletedProcess(args, code, out, err)


def executor(ws: Workspace, monkeypatch, replies) -> tuple[SlurmExecutor, FakeSlurm]:
    fake = FakeSlurm(replies)
    monkeypatch.setattr(slurmctl, "run", fake)
    return SlurmExecutor(ws, SlurmOptions(state_ttl_s=0.0)), fake


def test_a_requeue_is_the_same_attempt_and_its_silence_counts_from_the_new_start(ws: Workspace, monkeypatch):
    running = "JobId=7 JobName=lg JobState=RUNNING Requeue=1 Restarts=0 ExitCode=0:0 StartTime=2026-12-03T20:00:00"
    again = running.replace("Restarts=0", "Restarts=1").replace("20:00:00", "20:05:00")
    done = again.replace("RUNNING", "COMPLETED")
    ex, _ = executor(ws, monkeypatch, {"scontrol show": [(0, running, ""), (0, PENDING_AFTER_REQUEUE, ""),
                                                         (0, PENDING_AFTER_REQUEUE, ""), (0, again, ""),
                                                         (0, again, ""), (0, done, "")]})
    attempt = Attempt(1, 7, None)
    assert ex.poll(attempt) is None
    assert ex.poll(attempt) is None and ex.running_since(attempt) is None  # waiting: nothing can be silent
    assert ex.poll(attempt) is None and ex.running_since(attempt) == slurmctl.slurm_time("2026-12-03T20:05:00")
    assert ex.poll(attempt) == 0


def test_a_job_slurm_forgot_is_judged_by_its_run_directory_and_an_unreachable_one_waits(ws: Workspace, monkeypatch):
    forgot = (1, "", "slurm_load_jobs error: Invalid job id specified")
    ex, fake = executor(ws, monkeypatch, {"scontrol show": [forgot], "sacct -n": [(1, "", "accounting disabled")]})
    assert ex.poll(Attempt(1, 7, None)) == LOST_EXIT
    assert ["sacct", "-n", "-X", "-P", "-j", "7", "-o", "State,ExitCode"] in fake.calls
    down = (1, "", "Unable to contact slurm controller")
    ex, _ = executor(ws, monkeypatch, {"scontrol show": [down], "squeue -h": [down]})
    assert ex.poll(Attempt(1, 7, None)) is None and ex.running_since(Attempt(1, 7, None)) is None
    # A dead daemon's job is watched by its recorded id until Slurm answers again.
    assert ex.adopt(make_job(ws, 1, pid=7)) == Attempt(1, 7, None) and ex.adopt(make_job(ws, 1)) is None
    with pytest.raises(OSError, match="Unable to contact"):
        ex.clear_strays(make_job(ws, 1))  # the daemon records the attempt as not started


def test_adopt_finds_an_unrecorded_attempt_by_name_and_keeps_one_copy(ws: Workspace, monkeypatch):
    job = make_job(ws, 3)
    ex, fake = executor(ws, monkeypatch, {})
    name = ex.slurm_name(job)
    line = f"JobId={{}} JobName={name} JobState=RUNNING Requeue=1 Restarts=0 ExitCode=0:0"
    fake.replies = {"squeue -h": [(0, "21\n22\n", "")],
                    "scontrol show": [(0, line.format(21), ""), (0, line.format(22), "")]}
    assert ex.adopt(job) == Attempt(3, 22, None)
    assert ["scancel", "21"] in fake.calls and ["scancel", "22"] not in fake.calls
    ex, fake = executor(ws, monkeypatch, {"scontrol show": [(0, line.format(30).replace(name, "stranger"), "")]})
    assert ex.adopt(make_job(ws, 3, pid=30)) is None  # a reused id of another job is never adopted
    assert name != SlurmExecutor(Workspace(ws.root / "other"), SlurmOptions()).slurm_name(job)


def test_sbatchs_refusal_is_an_oserror_of_one_line(ws: Workspace, monkeypatch, tmp_path):
    refused = (1, "", "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed\n")
    ex, _ = executor(ws, monkeypatch, {"sbatch --parsable": [refused]})
    with pytest.raises(OSError, match="^invalid partition specified: nope$"):
        ex.start(make_job(ws), {}, tmp_path / "log", tmp_path)
    # A job no node can ever take would wait in the queue for ever: --test-only refuses it first.
    never = (1, "", "allocation failure: Requested node configuration is not available\n")
    ex, fake = executor(ws, monkeypatch, {"sbatch --test-only": [never]})
    with pytest.raises(OSError, match="^allocation failure: Requested node configuration is not available$"):
        ex.start(make_job(ws, nodes=5), {}, tmp_path / "log", tmp_path)
    assert [c[:2] for c in fake.calls] == [["sbatch", "--test-only"]] and "--parsable" not in fake.calls[0]
    ex, _ = executor(ws, monkeypatch, {"sbatch --parsable": [(0, "41;lgtest\n", "")]})
    assert ex.start(make_job(ws), {}, tmp_path / "log", tmp_path) == Attempt(1, 41, None)


@pytest.mark.parametrize("fields, needle", [
    (dict(partition="a b"), "--partition 'a b' is invalid"),
    (dict(time_limit="1h"), "--time-limit '1h' is invalid"),
    (dict(nodes=0), "--nodes must be at least 1"),
])
def test_submit_refuses_malformed_cluster_requests(fields, needle):
    with pytest.raises(JobError, match=needle):
        SubmitOptions(**fields)
    for good in ("90", "1:30:00", "2-12", "2-12:00:00"):
        assert SubmitOptions(time_limit=good, partition="gpu,cpu").time_limit == good
