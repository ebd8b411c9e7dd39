"""The private Slurm cluster the Slurm tests run on (tests/slurm_cluster.py): it runs a batch job, and
its daemons die with whoever started them, even when that process is SIGKILLed."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT

from slurm_cluster import pids_alive, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

# Starts a cluster, prints its daemons' PIDs and waits to be killed.
HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from slurm_cluster import SlurmCluster
cluster = SlurmCluster(sys.argv[2])
cluster.start()
print(*[p.pid for p in cluster.procs.values()], flush=True)
time.sleep(600)
"""


def test_cluster_runs_a_batch_job(slurm_cluster, tmp_path):
    out = tmp_path / "out.txt"
    job = slurm_cluster.sbatch("--wrap", "echo hello from $SLURM_CLUSTER_NAME", "--output", str(out))
    assert slurm_cluster.wait_state(job, "COMPLETED") == "COMPLETED"
    assert out.read_text() == f"hello from {slurm_cluster.cluster_name}\n"
    assert slurm_cluster.job(job)["ExitCode"] == "0:0"


def test_daemons_die_with_a_sigkilled_parent(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT / "tests"), str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in holder.stdout.readline().split()]
        assert len(pids) == 3 and pids_alive(pids) == pids
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 30
    while pids_alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pids_alive(pids) == []
