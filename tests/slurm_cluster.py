"""A private one-node Slurm cluster for the tests: munged, slurmctld and slurmd under a temporary directory.

Nothing in /etc is read or written: every daemon and every client command gets the private slurm.conf
through `SLURM_CONF` (use `cluster.env` for subprocesses), munged its own key and socket. The daemons
are stopped by PID; a watchdog process kills them if the test session dies without stopping them.

Partitions: `main` (the default; its jobs are never preempted), `high` (preempts the two low ones),
`low` (preempted with `GraceTime=grace_time`: SIGTERM, then the job is requeued when its steps end or
the grace expires) and `low0` (`GraceTime=0`: requeued at once). `PreemptMode=REQUEUE` everywhere.
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "sinfo", "squeue", "scontrol", "scancel")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
            "DEADLINE", "PREEMPTED"}

# Kills the daemons once the test session (its parent) is gone, whichever way it went.
WATCHDOG = """
import os, signal, sys, time
parent, pids = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
while os.getppid() == parent:
    time.sleep(0.5)
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
"""


def _which(name: str) -> str | None:
    return shutil.which(name) or next((f"{d}/{name}" for d in SBIN if os.access(f"{d}/{name}", os.X_OK)), None)


def unavailable_reason() -> str | None:
    """Why a private cluster cannot start here (None when it can)."""
    if os.geteuid() != 0:
        return "the Slurm tests need root (slurmd runs jobs as their user; SlurmUser=root)"
    missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if missing:
        return f"Slurm/munge not installed (missing {', '.join(missing)}): apt-get install slurm-wlm munge"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def node_hardware() -> str:
    """The node line's hardware fields as slurmd measures them (`slurmd -C`), so that it never drains
    the node for reporting less than the config claims."""
    line = subprocess.run([_which("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    return " ".join(field for field in line.split() if not field.startswith("NodeName="))


class SlurmCluster:
    """One node (`node`, this machine's name), four partitions, all state under `root`. Use as a
    context manager or call `start()`/`stop()`."""

    def __init__(self, root: Path | None = None, grace_time: int = 30, cred_expire: int = 10,
                 cluster_name: str = "lgtest") -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="slurm-"))
        self.grace_time = grace_time
        self.cred_expire = cred_expire
        self.cluster_name = cluster_name
        # The machine's own name, as on a real cluster, where node names resolve (jobs meet on them).
        self.node = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.procs: dict[str, subprocess.Popen] = {}
        self._watchdog: subprocess.Popen | None = None
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        for name in [k for k in self.env if k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))]:
            if name != "SLURM_CONF":  # a test run inside a Slurm job must not leak that job into ours
                del self.env[name]

    # ---- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        """Write the config, start the three daemons and wait until the node is idle."""
        for sub in ("munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._write_munge_key()
        self.conf.write_text(self.config_text())
        atexit.register(self.stop)
        try:
            self._spawn("munged", [_which("munged"), "--foreground", "--force",
                                   f"--socket={self.munge_socket}", f"--key-file={self.root / 'munge/key'}",
                                   f"--log-file={self.root / 'log/munged.log'}",
                                   f"--pid-file={self.root / 'munge/munged.pid'}",
                                   f"--seed-file={self.root / 'munge/seed'}"])
            self._wait(lambda: self.munge_socket.exists(), timeout, "munged's socket")
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.node, "-f", str(self.conf)])
            self._start_watchdog()
            self._wait(self.node_idle, timeout, f"node {self.node} idle in sinfo")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the daemons by PID (slurmd first, munged last), then the watchdog."""
        for name in reversed(DAEMONS):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._watchdog is not None and self._watchdog.poll() is None:
            self._watchdog.kill()
            self._watchdog.wait()
        self._watchdog = None

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.root / "log" / f"{name}.stdout", "ab") as out:
            # Own session: a ^C in the terminal reaches pytest, which stops us in order.
            self.procs[name] = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def _start_watchdog(self) -> None:
        pids = [str(p.pid) for p in self.procs.values()]
        self._watchdog = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(os.getpid()), *pids],
                                          stdin=subprocess.DEVNULL, start_new_session=True)

    def _write_munge_key(self) -> None:
        key = self.root / "munge" / "key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            key.chmod(0o400)

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f}s for {what}: {self.log_tail('slurmctld')}"
                                   f"{self.log_tail('slurmd')}")
            time.sleep(0.2)

    def log_tail(self, daemon: str, chars: int = 1500) -> str:
        """The end of a daemon's log file (slurmctld, slurmd, munged), for failure messages."""
        path = self.root / "log" / f"{daemon}.log"
        return f"\n--- {path}:\n{path.read_text(errors='replace')[-chars:]}" if path.exists() else ""

    # ---- configuration ---------------------------------------------------------------------------
    def config_text(self) -> str:
        """The private slurm.conf: own ports and paths, no cgroups, no accounting."""
        r = self.root
        host = self.node
        return f"""\
ClusterName={self.cluster_name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire={self.cred_expire}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/state/slurmctld.pid
SlurmdPidFile={r}/spool/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
ReturnToService=2
MinJobAge=600
KillWait=30
InactiveLimit=0
MailProg=/bin/true
NodeName={self.node} NodeHostname={host} NodeAddr=127.0.0.1 {node_hardware()} State=UNKNOWN
PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
PartitionName=low Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime={self.grace_time}
PartitionName=low0 Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=0
"""

    # ---- client commands -------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, cwd: Path | None = None, env: dict | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster (`SLURM_CONF` set), text output captured."""
        done = subprocess.run([_which(argv[0]) or argv[0], *argv[1:]], env={**self.env, **(env or {})},
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def scontrol(self, *args: str, check: bool = True) -> str:
        return self.run("scontrol", *args, check=check).stdout

    def sbatch(self, *args: str, cwd: Path | None = None, env: dict | None = None) -> int:
        """Submit (`sbatch --parsable ARGS`) and return the job id."""
        out = self.run("sbatch", "--parsable", *args, cwd=cwd, env=env).stdout.strip()
        return int(out.split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict of its KEY=VALUE fields ({} once the job is forgotten)."""
        done = self.run("scontrol", "-o", "show", "job", str(job_id), check=False)
        fields: dict[str, str] = {}
        for token in done.stdout.split():
            key, sep, value = token.partition("=")
            if sep:
                fields[key] = value
        return fields

    def job_state(self, job_id: int) -> str:
        """The job's state (RUNNING, PENDING, COMPLETED, ...), or "" when Slurm does not know it."""
        return self.job(job_id).get("JobState", "")

    def wait_state(self, job_id: int, states, timeout: float = 120) -> str:
        """Wait until the job is in one of `states` (a string or several); return it. A job that
        reaches another terminal state first raises."""
        wanted = {states} if isinstance(states, str) else set(states)
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.job_state(job_id)
            if state in wanted:
                return state
            if state in TERMINAL - wanted:
                raise AssertionError(f"job {job_id} ended {state}, not {sorted(wanted)}: {self.job(job_id)}")
            time.sleep(0.25)
        raise TimeoutError(f"job {job_id} still {state or 'unknown'} after {timeout:.0f}s, not {sorted(wanted)}")

    def node_idle(self) -> bool:
        done = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", check=False)
        # One line per partition the node is in.
        return done.returncode == 0 and set(done.stdout.split()) == {"idle"}

    def cancel(self, *args: str) -> None:
        self.run("scancel", *args)


def pids_alive(pids) -> list[int]:
    """The PIDs among `pids` that still exist (for the fixture's own tests)."""
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


if __name__ == "__main__":  # python tests/slurm_cluster.py: start one, print its env line, wait for ^C
    reason = unavailable_reason()
    if reason:
        sys.exit(reason)
    # SIGTERM (and SIGINT, which a background job ignores) stop the cluster in order.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with SlurmCluster() as cluster:
        print(f"export SLURM_CONF={cluster.conf}", flush=True)
        try:
            signal.pause()
        except (KeyboardInterrupt, SystemExit):
            pass
