"""Training on DGL's distributed engine with real graph servers and trainers (``--distdgl-local``):
accuracy against a single-machine run, predictions in dataset ids, a killed process failing the job
in one line with nothing left running, and resume from the checkpoint."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import ROOT, hold_machine, killed_if_left, run_cli, sigterm_pending, wait_for, write_config
from largegraph.training.checkpoint import has_checkpoints
from largegraph.training.rundir import RunDir

pytestmark = pytest.mark.slow

JOB = dict(sampler={"fanouts": [5, 5], "batch_size": 256, "eval_batch_size": 2048},
           model={"arch": "sage", "hidden": 32, "num_layers": 2}, train={"epochs": 4, "lr": 0.01})


@pytest.fixture(scope="module")
def dist_root(tmp_path_factory) -> Path:
    """`mid`: 8k nodes, a test split of 1,600 (so two runs' accuracies compare within 2 points)."""
    from largegraph.data.synthetic import SynthNodeParams, write_synthetic_node_dataset

    root = tmp_path_factory.mktemp("dist")
    write_synthetic_node_dataset(root, "mid", SynthNodeParams(num_nodes=8000, avg_degree=10, num_classes=4,
                                                              feat_dim=16, seed=5), raw_format="csv")
    return root


@pytest.fixture(scope="module")
def parts(dist_root, tmp_path_factory) -> tuple[Path, Path]:
    """(job file, part config) of one METIS partition of `mid`."""
    return partitioned(tmp_path_factory.mktemp("parts"), dist_root, 1)


def partitioned(here: Path, dist_root: Path, parts: int, name: str = "mid", job: dict = JOB) -> tuple[Path, Path]:
    """(job file, part config) of dataset ``name`` (`mid`) with settings ``job`` cut into ``parts`` METIS
    partitions under ``here``."""
    job = write_config(here / "job.yaml", name, dist_root, **job)
    out = here / name
    done = run_cli("partition", job, "--parts", str(parts), "--out", out, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "edge cut:" in done.stdout
    return job, out / f"{name}.json"


def job_processes(run_dir: Path) -> list[int]:
    """Live processes whose command line names ``run_dir`` (servers and trainers of the job)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(run_dir).encode() in argv and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def role_of(pid: int) -> dict[str, str]:
    try:
        pairs = (Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
    except OSError:
        return {}
    env = dict(p.decode(errors="replace").split("=", 1) for p in pairs if b"=" in p)
    return {k: env.get(k, "") for k in ("LARGEGRAPH_DISTDGL_ROLE", "RANK", "DGL_SERVER_ID")}


def epochs_done(run_dir: Path) -> int:
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if '"kind": "epoch"' in line)


def start(job: Path, part_config: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "largegraph", "train", str(job),
                             f"distributed.part_config={part_config}", "--distdgl-local", "2",
                             "--run-dir", str(run_dir), *extra],
                            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def test_two_servers_two_trainers_train_as_well_as_one_machine(parts, tmp_path):
    job, part_config = parts
    local = run_cli("train", job, "--run-dir", tmp_path / "local", timeout=600)
    assert local.returncode == 0, local.stderr
    done = run_cli("train", job, f"distributed.part_config={part_config}", "--distdgl-local", "2",
                   "--run-dir", tmp_path / "dist", timeout=600)
    assert done.returncode == 0, done.stderr
    one = json.loads((tmp_path / "local" / "summary.json").read_text())
    dist = json.loads((tmp_path / "dist" / "summary.json").read_text())
    assert one["test_acc"] > 0.5
    assert abs(dist["test_acc"] - one["test_acc"]) <= 0.02, (dist["test_acc"], one["test_acc"])
    # every trainer sampled only its own share of the training nodes, together all of them
    assert "x 2 workers" in done.stdout
    # predictions are written in the dataset's node ids, as a single-machine run writes them
    pred = torch.load(tmp_path / "dist" / "predictions.pt")
    test = pred["test_idx"]
    assert len(test) == 1600 and torch.equal(test, torch.load(tmp_path / "local" / "predictions.pt")["test_idx"])
    assert float((pred["pred"][test] == pred["label"][test]).float().mean()) == pytest.approx(dist["test_acc"])
    assert job_processes(tmp_path / "dist") == []


@pytest.mark.parametrize("victim", ["trainer", "server"])
def test_a_killed_process_fails_the_job_in_one_line_and_a_rerun_resumes(parts, tmp_path, victim):
    job, part_config = parts
    run_dir = tmp_path / "run"
    with killed_if_left(start(job, part_config, run_dir, "train.epochs=4")) as proc:
        # the first epoch's checkpoint, not just its metrics line, so there is something to resume
        wait_for(lambda: has_checkpoints(RunDir(run_dir).checkpoints) or proc.poll() is not None,
                 what="the first checkpoint")
        assert proc.poll() is None, proc.communicate()[1]
        members = {pid: role_of(pid) for pid in job_processes(run_dir)}
        if victim == "trainer":
            pid = next(p for p, r in members.items() if r["LARGEGRAPH_DISTDGL_ROLE"] == "trainer" and r["RANK"] == "1")
        else:
            pid = next(p for p, r in members.items() if r["LARGEGRAPH_DISTDGL_ROLE"] == "server")
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 1, err
    verdict = [line for line in err.splitlines() if "distdgl:" in line and "killed by SIGKILL" in line]
    assert len(verdict) == 1 and f"{victim if victim == 'trainer' else 'graph server'}" in verdict[0], err
    assert f"pid {pid}" in verdict[0]
    assert "Traceback" not in err
    assert job_processes(run_dir) == []  # no orphans
    again = run_cli("train", job, f"distributed.part_config={part_config}", "train.epochs=4", "--distdgl-local", "2",
                    "--run-dir", run_dir, timeout=600)
    assert again.returncode == 0, again.stderr
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "resume" in kinds and kinds.count("epoch") == 4 and kinds[-1] == "final"
    assert job_processes(run_dir) == []


def test_a_sigterm_stops_every_trainer_at_one_checkpoint(parts, tmp_path):
    job, part_config = parts
    run_dir = tmp_path / "run"
    with killed_if_left(start(job, part_config, run_dir, "train.epochs=4")) as proc:
        wait_for(lambda: epochs_done(run_dir) >= 1 or proc.poll() is not None, what="the first epoch")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 143, err
    assert "stopped on SIGTERM after writing checkpoint" in err
    assert job_processes(run_dir) == []


def waiting_job(job: Path, part_config: Path, run_dir: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    """A one-epoch local job started while another holds the machine, once it says it waits."""
    log = run_dir.with_suffix(".log")
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "largegraph", "train", str(job),
                                 f"distributed.part_config={part_config}", "--distdgl-local", "1",
                                 "--run-dir", str(run_dir), "train.epochs=1"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
    wait_for(lambda: "waiting:" in log.read_text() or proc.poll() is not None, what="the wait")
    return proc, log


def test_a_second_job_on_the_machine_waits_for_the_one_holding_it(parts, tmp_path):
    # DGL's graph servers name shared memory per feature, not per job: two jobs at once on one machine
    # would overwrite each other's features, so the second waits for the machine's lock.
    from largegraph.backends.distdgl.hostlock import DIR_ENV

    job, part_config = parts
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{DIR_ENV: str(tmp_path)})
    first = hold_machine(tmp_path, "/runs/first")
    try:
        # SIGTERM while waiting: stopped (143), nothing started
        stopped, log = waiting_job(job, part_config, tmp_path / "stopped", env)
        with killed_if_left(stopped):
            assert job_processes(tmp_path / "stopped") == [stopped.pid]  # no server started
            stopped.send_signal(signal.SIGTERM)
            assert stopped.wait(timeout=120) == 143, log.read_text()
        assert f"already runs distdgl job pid {first.pid}, run dir /runs/first" in log.read_text()
        # the holder ends: the waiting job starts and completes
        second, log = waiting_job(job, part_config, tmp_path / "run", env)
        with killed_if_left(second):
            assert job_processes(tmp_path / "run") == [second.pid], log.read_text()
            first.kill()
            assert second.wait(timeout=600) == 0, log.read_text()
    finally:
        first.kill()
        first.wait()
    assert "the other job ended; starting after" in log.read_text()
    assert (tmp_path / "run" / "summary.json").exists()


def test_bad_distdgl_settings_are_one_line_before_anything_starts(parts, tmp_path):
    job, part_config = parts
    cases = [
        (["distributed.mode=distdgl"], "needs distributed.part_config"),
        ([f"distributed.part_config={part_config}", "distributed.mode=distdgl"], "--distdgl-local N"),
        ([f"distributed.part_config={tmp_path / 'none.json'}", "--distdgl-local", "2"], "largegraph partition"),
        ([f"distributed.part_config={part_config}", "data.name=other", "--distdgl-local", "2"], "data.name is other"),
        ([f"distributed.part_config={part_config}", "--distdgl-local", "2", "--nproc", "2"], "--nproc"),
    ]
    for extra, expected in cases:
        done = run_cli("train", job, *extra, "--run-dir", tmp_path / "never", timeout=120)
        assert done.returncode == 2, (extra, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (extra, done.stderr)
    ip = tmp_path / "ip.txt"
    ip.write_text("10.0.0.1\n10.0.0.2\n")
    done = run_cli("train", job, f"distributed.part_config={part_config}", "--ip-config", ip, timeout=120)
    assert done.returncode == 2 and "1 partitions but" in done.stderr and "2 machines" in done.stderr


def test_the_job_service_runs_a_distdgl_job_to_the_end_after_its_daemon_is_sigkilled(parts, tmp_path):
    from contextlib import closing

    from largegraph.jobs.store import JobStore
    from largegraph.jobs.workspace import Workspace

    job_file, part_config = parts
    ws = tmp_path / "ws"
    env = dict(os.environ, PYTHONUNBUFFERED="1", LARGEGRAPH_WORKSPACE=str(ws), LARGEGRAPH_HEARTBEAT_S="1")
    serve = [sys.executable, "-m", "largegraph", "serve", "--poll-interval", "0.2", "--gpu-slots", "0",
             "--kill-grace", "120"]

    def lg(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "largegraph", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL, timeout=120)

    def record():
        with closing(JobStore(Workspace(ws).db_path)) as store:
            found = store.get("d1")
            return found, store.attempts(found.id)

    submitted = lg("submit", str(job_file), f"distributed.part_config={part_config}", "distributed.mode=distdgl",
                   "distributed.local=2", "train.epochs=4", "--name", "d1")
    assert submitted.returncode == 0, submitted.stderr
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(serve, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    frozen: list[int] = []
    try:
        wait_for(lambda: record()[0].run_dir and epochs_done(Path(record()[0].run_dir)) >= 1, what="epoch 1")
        # Frozen (SIGSTOP), the job can neither progress nor finish unseen, however fast the machine:
        # the next daemon must find it mid-run.
        run_dir, leader = Path(record()[0].run_dir), record()[0].pid
        frozen = job_processes(run_dir)
        assert leader in frozen
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        first.kill()  # SIGKILL: the job's launcher, servers and trainers live on without their daemon
        first.wait()
        with open(tmp_path / "second.log", "w") as log:
            second = subprocess.Popen([*serve, "--exit-when-idle"], cwd=ROOT, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # recovery SIGTERMs the launcher, which hands it to the trainers: thaw them all once it is pending
        wait_for(lambda: sigterm_pending(leader), what="the recovering daemon's SIGTERM")
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        first.kill()
        first.wait()
    with killed_if_left(second):
        assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()
    done, tries = record()
    assert done.state == "succeeded", (tmp_path / "second.log").read_text()
    assert tries[0]["outcome"] == "orphaned" and tries[-1]["outcome"] == "exited"
    kinds = [json.loads(line)["kind"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "resume" in kinds and kinds.count("epoch") == 4 and kinds.count("final") == 1
    assert job_processes(run_dir) == []


# --- two machines, simulated: each its own network namespace, IPC and /dev/shm ------------------------
HOSTS = ("10.231.7.1", "10.231.7.2")


def _simulation_unavailable() -> str | None:
    import shutil

    if os.geteuid() != 0:
        return "simulating two hosts needs root (network namespaces, mounts)"
    missing = [tool for tool in ("ip", "unshare", "nsenter") if shutil.which(tool) is None]
    return f"simulating two hosts needs {', '.join(missing)}" if missing else None


@pytest.fixture
def two_hosts(tmp_path):
    """Two hosts: network namespaces joined by a veth pair, each with its own IPC namespace and
    /dev/shm, held open by a sleeping process; yields the remote_shell that runs a command on one."""
    reason = _simulation_unavailable()
    if reason:
        pytest.skip(reason)
    tag = f"lg{os.getpid() % 100000}"
    names = [f"{tag}-{i}" for i in range(2)]
    holders: list[subprocess.Popen] = []

    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=30)

    try:
        for name in names:
            sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b")
        for i, (name, dev) in enumerate(zip(names, (f"{tag}a", f"{tag}b"))):
            sh("ip", "link", "set", dev, "netns", name)
            sh("ip", "-n", name, "addr", "add", f"{HOSTS[i]}/24", "dev", dev)
            sh("ip", "-n", name, "link", "set", dev, "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
            holders.append(subprocess.Popen(
                ["ip", "netns", "exec", name, "unshare", "--ipc", "--mount", "--propagation", "private",
                 "sh", "-c", "mount -t tmpfs tmpfs /dev/shm && exec sleep 100000"]))
        script = tmp_path / "hostexec.sh"
        script.write_text("#!/bin/sh\n# hostexec.sh INDEX COMMAND: run COMMAND on simulated host INDEX\n"
                          + "".join(f'[ "$1" = {i} ] && exec nsenter -t {h.pid} --net --ipc --mount sh -c "$2"\n'
                                    for i, h in enumerate(holders))
                          + "exit 127\n")
        script.chmod(0o755)
        time.sleep(0.5)  # the holders have mounted their /dev/shm
        yield f"{script} {{index}}"
    finally:
        for h in holders:
            h.kill()
            h.wait()
        for name in names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def test_two_partitions_on_two_simulated_hosts(dist_root, two_hosts, tmp_path):
    job, part_config = partitioned(tmp_path, dist_root, 2)
    ip_config = tmp_path / "ip_config.txt"
    ip_config.write_text("".join(f"{host} 30050\n" for host in HOSTS))
    done = run_cli("train", job, f"distributed.part_config={part_config}", "--ip-config", ip_config,
                   f"distributed.remote_shell={two_hosts}", "train.export_embeddings=true", "--run-dir",
                   tmp_path / "dist", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    local = run_cli("train", job, "--run-dir", tmp_path / "local", timeout=600)
    assert local.returncode == 0, local.stderr
    one = json.loads((tmp_path / "local" / "summary.json").read_text())["test_acc"]
    two = json.loads((tmp_path / "dist" / "summary.json").read_text())["test_acc"]
    assert abs(two - one) <= 0.02, (two, one)
    # one trainer per host, each walking its own share of the training nodes, mostly in its own partition
    shares = json.loads((tmp_path / "dist" / "distdgl" / "trainers.json").read_text())
    stamp = json.loads((part_config.parent / "largegraph-partition.json").read_text())
    assert [s["partition"] for s in shares] == [0, 1]
    assert sum(s["train_nodes"] for s in shares) == sum(p["train"] for p in stamp["parts"])
    assert all(s["own_partition"] >= 0.9 * s["train_nodes"] for s in shares), shares
    # Two partitions renumber the nodes; what is written is back in the dataset's ids: each node's
    # exported embedding, through the exported head, gives its exported prediction.
    weights = torch.load(tmp_path / "dist" / "model.pt")
    emb = torch.load(tmp_path / "dist" / "embeddings.pt")
    pred = torch.load(tmp_path / "dist" / "predictions.pt")["pred"]
    assert emb.shape[0] == 8000
    through_head = torch.nn.functional.linear(emb, weights["head.weight"], weights["head.bias"]).argmax(dim=1)
    assert float((through_head == pred).float().mean()) > 0.999  # (a near-tie may round the other way)
    assert job_processes(tmp_path / "dist") == []


def test_link_prediction_on_two_servers_two_trainers_ranks_well_above_random(tmp_path):
    from largegraph.data.synthetic import SynthLinkParams, write_synthetic_link_dataset

    root = tmp_path / "data"
    write_synthetic_link_dataset(root, "cites", SynthLinkParams(num_nodes=3000, avg_degree=10, num_communities=30,
                                                               feat_dim=16, homophily=0.9, seed=3),
                                 split_style="source_target", num_neg=100)
    job = write_config(tmp_path / "link.yaml", "cites", root, task="link_prediction",
                       sampler={"fanouts": [5, 5], "batch_size": 512, "eval_batch_size": 2048},
                       train={"epochs": 5, "lr": 0.01})
    assert run_cli("partition", job, "--parts", "1", "--out", tmp_path / "cites", timeout=300).returncode == 0
    done = run_cli("train", job, f"distributed.part_config={tmp_path / 'cites' / 'cites.json'}", "--distdgl-local",
                   "2", "train.export_embeddings=true", "--run-dir", tmp_path / "run", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    random_mrr = sum(1 / r for r in range(1, 102)) / 101  # the true target ranked uniformly among 101
    assert summary["metric"] == "mrr" and summary["test_mrr"] > 3 * random_mrr, summary
    shares = json.loads((tmp_path / "run" / "distdgl" / "trainers.json").read_text())
    assert len(shares) == 2 and all(s["train_edges"] > 0 for s in shares)
    emb = torch.load(tmp_path / "run" / "predictions.pt")["emb"]
    assert emb.shape[0] == 3000
    assert torch.equal(torch.load(tmp_path / "run" / "embeddings.pt"), emb)
    assert job_processes(tmp_path / "run") == []
