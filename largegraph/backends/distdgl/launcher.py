"""Start a distdgl job's graph servers and trainers, watch them, and end them together.

DGL's engine needs, per machine of the ip_config, ``servers_per_machine`` graph servers (each serves
the machine's partition) and then ``trainers_per_machine`` trainers. Every one of them runs this
same ``largegraph train`` command: the environment tells a process its role (see
:mod:`largegraph.backends.distdgl.roles`). With ``distributed.local: N`` (``--distdgl-local N``) the one
machine is this one, with N servers and N trainers; otherwise each line of the ip_config is a
machine, reached through ``distributed.remote_shell`` (ssh by default), with the same working
directory and the same paths (a shared file system, as DGL's own launcher assumes).

The watcher is the point: DGL's servers and trainers block in barriers and RPCs when a peer dies,
so one crashed process would otherwise leave the rest hanging forever. The first process to fail
ends the whole group, and the job fails with one line naming it. SIGTERM to the launcher (the job
service stopping a job, a scheduler's preemption) reaches the trainers, which checkpoint and stop
together; the servers are stopped after them. Local processes also die with the launcher
(``PR_SET_PDEATHSIG``), so a launcher killed outright leaves no orphans.
"""
from __future__ import annotations

import json
import logging
import math
import os
import secrets
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from largegraph.backends.distdgl.hostlock import HostLock
from largegraph.backends.distdgl.partfiles import check_partitions
from largegraph.config import DistributedConfig, JobConfig
from largegraph.core import processes
from largegraph.core.errors import EXIT_BAD_INPUT, EXIT_CRASHED, EXIT_OK, EXIT_STOPPED, ConfigError, LargeGraphError, describe_exit
from largegraph.core.logs import TO_STDERR

ROLE_ENV = "LARGEGRAPH_DISTDGL_ROLE"  # server | trainer; unset in the launcher itself
JOB_FLAG = "--distdgl-job"  # marks the command line of every process one launch starts
HOST_ENV = "LARGEGRAPH_DISTDGL_HOST"  # a trainer's machine, as the ip_config names it
LOCK_ENV = "LARGEGRAPH_DISTDGL_LOCK"  # set for a machine's first graph server: the run dir it takes the machine for
SERVER, TRAINER = "server", "trainer"
POLL_S = processes.POLL_S
WAIT_POLL_S = 0.5


class _LauncherLines(logging.LoggerAdapter):
    """The launcher's own lines, ``largegraph: distdgl: ...`` on stderr, beside its processes' output."""

    def process(self, msg, kwargs):
        return f"largegraph: distdgl: {msg}", {**kwargs, "extra": TO_STDERR}


log = _LauncherLines(logging.getLogger(__name__), {})


class DistJobError(LargeGraphError):
    """A server or trainer of a distdgl job failed; the rest were stopped. A process that refused
    its input (exit code 2) makes the job's exit code 2 too: retrying cannot help."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.exit_code = EXIT_BAD_INPUT if code == EXIT_BAD_INPUT else EXIT_CRASHED


@dataclass(frozen=True)
class Machine:
    """One line of the ip_config: where a partition's servers and trainers run."""

    index: int
    host: str
    port: int


@dataclass
class Member:
    """A launched server or trainer."""

    role: str
    index: int  # server id, or trainer rank
    machine: Machine
    proc: subprocess.Popen

    def name(self) -> str:
        what = f"graph server {self.index}" if self.role == SERVER else f"trainer {self.index}"
        return f"{what} on {self.machine.host} (pid {self.proc.pid})"


# --- the layout: machines, ports, environments ------------------------------------------------------
def read_ip_config(path: str, default_port: int) -> list[Machine]:
    """The machines of an ip_config file: one ``IP [PORT]`` per line (blank lines and # comments skipped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read the ip_config {path}: {exc.strerror or exc}") from None
    machines = []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and not words[1].isdigit()):
            raise ConfigError(f"{path} line {number}: expected `IP [PORT]`, got {line.strip()!r}")
        port = int(words[1]) if len(words) == 2 else default_port
        machines.append(Machine(len(machines), words[0], port))
    if not machines:
        raise ConfigError(f"the ip_config {path} names no machine; write one `IP [PORT]` line per machine")
    return machines


def part_count(part_config: str) -> int:
    """How many partitions the partition config describes (DGL needs one machine per partition)."""
    try:
        meta = json.loads(Path(part_config).read_text())
        return int(meta["num_parts"])
    except OSError as exc:
        raise ConfigError(f"cannot read distributed.part_config {part_config}: {exc.strerror or exc}; "
                          f"run `largegraph partition CONFIG --parts K --out DIR` and pass DIR/<name>.json") from None
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"distributed.part_config {part_config} is not a DGL partition config "
                          f"(the <name>.json `largegraph partition` writes)") from None


@dataclass(frozen=True)
class Layout:
    """Who runs where: machines, servers and trainers per machine, and the shared settings."""

    machines: list[Machine]
    servers: int
    trainers: int
    ip_config: str
    part_config: str
    master_port: int
    local: bool

    @property
    def world_size(self) -> int:
        return len(self.machines) * self.trainers


def check_job(cfg: JobConfig) -> list[Machine]:
    """Refuse, before anything is written or started, a job whose partitions do not fit it or its
    machines; returns the ip_config's machines (none for ``distributed.local``)."""
    check_partitions(cfg)
    dc = cfg.distributed
    parts = part_count(dc.part_config)
    if dc.local:
        if parts != 1:
            raise ConfigError(f"--distdgl-local runs one machine, but {dc.part_config} has {parts} partitions; "
                              f"partition with --parts 1, or list {parts} machines in an ip_config")
        return []
    if not dc.ip_config:
        raise ConfigError("distributed.mode: distdgl needs the machines: --ip-config FILE (one `IP [PORT]` per "
                          "line), or --distdgl-local N to run N servers and N trainers on this machine")
    machines = read_ip_config(dc.ip_config, dc.port)
    if parts != len(machines):
        raise ConfigError(f"{dc.part_config} has {parts} partitions but {dc.ip_config} lists {len(machines)} "
                          f"machines; DGL serves one partition per machine")
    return machines


def plan(cfg: JobConfig, run_dir: Path) -> Layout:
    """The layout of a job: ``distributed.local`` on this machine (writing its ip_config into the run
    directory), else the machines of ``distributed.ip_config``."""
    machines, dc = check_job(cfg), cfg.distributed
    if dc.local:
        port = processes.free_ports(dc.local + 1)
        ip_config = run_dir / "distdgl" / "ip_config.txt"
        ip_config.parent.mkdir(parents=True, exist_ok=True)
        ip_config.write_text(f"127.0.0.1 {port}\n")
        return Layout([Machine(0, "127.0.0.1", port)], dc.local, dc.local, str(ip_config),
                      str(Path(dc.part_config).resolve()), port + dc.local, local=True)
    # torch.distributed's rendezvous: on the first machine, just above its graph servers' ports
    return Layout(machines, dc.servers_per_machine, dc.trainers_per_machine, str(Path(dc.ip_config).resolve()),
                  str(Path(dc.part_config).resolve()), machines[0].port + dc.servers_per_machine, local=False)


def server_env(layout: Layout, server_id: int, run_dir: Path) -> dict[str, str]:
    """What DGL's graph server ``server_id`` reads from its environment. On an ip_config's machines
    the first server of each takes the machine's lock (a local job's launcher holds it already)."""
    lock = {} if layout.local or server_id % layout.servers else {LOCK_ENV: str(run_dir)}
    return {**lock, ROLE_ENV: SERVER, "DGL_ROLE": "server", "DGL_SERVER_ID": str(server_id),
            "DGL_IP_CONFIG": layout.ip_config, "DGL_CONF_PATH": layout.part_config,
            "DGL_NUM_SERVER": str(layout.servers), "DGL_NUM_SAMPLER": "0",
            # every trainer of every machine is a client of every server (no sampler processes)
            "DGL_NUM_CLIENT": str(layout.world_size), "DGL_GRAPH_FORMAT": "csc", "OMP_NUM_THREADS": "1"}


def trainer_env(layout: Layout, machine: Machine, local_rank: int, start_timeout_s: float) -> dict[str, str]:
    """What trainer ``local_rank`` of ``machine`` reads: DGL's client settings and torch.distributed's."""
    return {ROLE_ENV: TRAINER, HOST_ENV: machine.host, "DGL_ROLE": "default", "DGL_DIST_MODE": "distributed",
            "DGL_IP_CONFIG": layout.ip_config, "DGL_NUM_SERVER": str(layout.servers), "DGL_NUM_SAMPLER": "0",
            "DGL_GROUP_ID": "0",
            # DGL retries a connection every 3 s: keep trying for as long as servers may take to load
            "DGL_DIST_MAX_TRY_TIMES": str(max(2, math.ceil(start_timeout_s / 3))),
            "MASTER_ADDR": layout.machines[0].host, "MASTER_PORT": str(layout.master_port),
            "RANK": str(machine.index * layout.trainers + local_rank), "WORLD_SIZE": str(layout.world_size),
            "LOCAL_RANK": str(local_rank), "LOCAL_WORLD_SIZE": str(layout.trainers)}


# --- starting processes -----------------------------------------------------------------------------
def _spawn(argv: list[str], env: dict[str, str], machine: Machine, layout: Layout,
           dc: DistributedConfig) -> subprocess.Popen:
    if layout.local:
        return processes.spawn(argv, env)
    # Another machine: the same command in the same directory, through the remote shell.
    command = f"cd {shlex.quote(os.getcwd())} && exec env {shlex.join(f'{k}={v}' for k, v in env.items())} " \
              f"{shlex.join(argv)}"
    shell = shlex.split(dc.remote_shell.format(host=machine.host, index=machine.index))
    return subprocess.Popen([*shell, command], preexec_fn=processes.die_with_parent)


def first_failure(trainers: list[Member], servers: list[Member]) -> Member | None:
    """The member whose failure to report, or None while nothing has failed.

    One process dying takes its peers down within a poll or two (a trainer's collective breaks, a
    server's client is gone), and on a loaded machine the watcher may see them all at once. The
    cause is the one a signal ended; failing with an error comes after it.
    """
    failed = [m for m in trainers if m.proc.poll() not in (None, EXIT_OK, EXIT_STOPPED)]
    # a server leaves with 0 once the trainers have said goodbye (they may still be exiting)
    failed += [m for m in servers if m.proc.poll() not in (None, EXIT_OK)]
    killed = [m for m in failed if m.proc.poll() < 0]
    return (killed or failed or [None])[0]


class Group:
    """The servers and trainers of one job, started in order and ended together."""

    def __init__(self, layout: Layout, dc: DistributedConfig, argv: list[str], run_dir: Path):
        self.mark = secrets.token_hex(8)
        self.layout, self.dc, self.argv, self.run_dir = layout, dc, [*argv, JOB_FLAG, self.mark], run_dir
        self.members: list[Member] = []
        self.stopping = False

    def _start(self, role: str, per_machine: int, env_of) -> None:
        """``per_machine`` processes of ``role`` on every machine; ``env_of(machine, k)`` -> (index, env)."""
        for machine in self.layout.machines:
            for k in range(per_machine):
                index, env = env_of(machine, k)
                proc = _spawn(self.argv, env, machine, self.layout, self.dc)
                self.members.append(Member(role, index, machine, proc))

    def start_servers(self) -> None:
        lay = self.layout

        def env_of(machine: Machine, k: int) -> tuple[int, dict[str, str]]:
            server_id = machine.index * lay.servers + k
            return server_id, server_env(lay, server_id, self.run_dir)

        self._start(SERVER, lay.servers, env_of)
        if lay.local:  # trainers connect at once, rather than retrying every 3 s while servers load
            ports = [lay.machines[0].port + k for k in range(lay.servers)]
            self._wait(lambda: all(processes.listening(p) for p in ports), "graph servers to listen")

    def start_trainers(self) -> None:
        def env_of(machine: Machine, local_rank: int) -> tuple[int, dict[str, str]]:
            env = trainer_env(self.layout, machine, local_rank, self.dc.start_timeout_s)
            return int(env["RANK"]), env

        self._start(TRAINER, self.layout.trainers, env_of)

    def _wait(self, ready, what: str) -> None:
        deadline = time.monotonic() + self.dc.start_timeout_s
        while not ready():
            self._check_alive()
            if time.monotonic() > deadline:
                raise DistJobError(f"distdgl: timed out after {self.dc.start_timeout_s:g}s waiting for {what} "
                                   f"(distributed.start_timeout_s); stopped all {len(self.members)} processes")
            time.sleep(POLL_S)

    def _check_alive(self) -> None:
        for m in self.members:
            code = m.proc.poll()
            if code is not None and not (m.role == TRAINER and code == EXIT_OK):
                raise DistJobError(f"distdgl: {m.name()} ended early ({describe_exit(code)}); "
                                   f"stopped the other processes of the job", code)

    def watch(self) -> int:
        """Wait for the trainers; the first failure ends the group. Returns the job's exit code."""
        trainers = [m for m in self.members if m.role == TRAINER]
        servers = [m for m in self.members if m.role == SERVER]
        while True:
            codes = [m.proc.poll() for m in trainers]
            if all(c == EXIT_OK for c in codes):
                break
            if any(c == EXIT_STOPPED for c in codes) or (self.stopping and all(c is not None for c in codes)):
                # stopped on request after a checkpoint: every trainer stops at the same step
                self._wait_for(trainers, self.dc.stop_timeout_s)
                return EXIT_STOPPED
            failed = first_failure(trainers, servers)
            if failed is None and all(m.proc.poll() is not None for m in servers):
                if not self._wait_for(trainers, self.dc.stop_timeout_s):
                    failed = next(m for m in trainers if m.proc.poll() is None)
                    raise DistJobError(f"distdgl: the graph servers shut down but {failed.name()} did not exit "
                                       f"within {self.dc.stop_timeout_s:g}s; stopped it")
                continue
            if failed is not None:
                code = failed.proc.poll()
                raise DistJobError(f"distdgl: {failed.name()} failed ({describe_exit(code)}); "
                                   f"stopped the other processes of the job", code)
            time.sleep(POLL_S)
        # The last trainer to leave tells the servers to shut down; they exit on their own.
        if not self._wait_for(servers, self.dc.stop_timeout_s):
            log.info(f"graph servers still running {self.dc.stop_timeout_s:g}s after the trainers finished; "
                     f"killed them")
        return EXIT_OK

    @staticmethod
    def _wait_for(members: list[Member], timeout_s: float) -> bool:
        return processes.wait_ended((m.proc for m in members), timeout_s)

    def request_stop(self) -> None:
        """SIGTERM to the trainers only: they checkpoint together and exit 143 (servers follow)."""
        self.stopping = True
        for m in self.members:
            if m.role == TRAINER and m.proc.poll() is None:
                m.proc.send_signal(signal.SIGTERM)

    def kill_all(self) -> None:
        """SIGKILL every process still running, and wait for each: nothing outlives the job."""
        clean = all(m.proc.poll() in (EXIT_OK, EXIT_STOPPED) for m in self.members)
        stuck = processes.kill_and_reap(m.proc for m in self.members)
        for m in self.members:
            if m.proc in stuck:
                log.info(f"{m.name()} did not exit after SIGKILL")
        if not (self.layout.local or clean):  # every remote command ended by itself: no round trip
            self._kill_remote()

    def _kill_remote(self) -> None:
        # Killing an ssh client does not always end its remote command: end them by this launch's
        # mark, which only its servers and trainers carry (this machine may be one of the hosts).
        pattern = f"{JOB_FLAG} {self.mark}"
        for machine in self.layout.machines:
            shell = shlex.split(self.dc.remote_shell.format(host=machine.host, index=machine.index))
            subprocess.run([*shell, f"pkill -KILL -f -- {shlex.quote(pattern)}"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60, check=False)


def run_job(cfg: JobConfig, argv: list[str], run_dir: Path) -> int:
    """Run the job ``cfg`` on DGL's engine; ``argv`` is the command every server and trainer runs.

    Returns the job's exit code (0 done, 143 stopped after a checkpoint); raises
    :class:`DistJobError` when a process failed (the rest are ended first).
    """
    layout = plan(cfg, run_dir)  # a job that does not fit is refused here, not by every trainer
    group = Group(layout, cfg.distributed, argv, run_dir)
    machine_lock = None
    previous = signal.signal(signal.SIGTERM, lambda *_: group.request_stop())
    try:
        log.info(f"{len(layout.machines)} machine(s) x ({layout.servers} graph server(s) + {layout.trainers} "
                 f"trainer(s)); ip_config {layout.ip_config}")
        if layout.local:
            machine_lock = take_this_machine(group, run_dir)
            if machine_lock is None:  # SIGTERM while waiting for another job: nothing started
                return EXIT_STOPPED
        group.start_servers()
        if group.stopping:  # SIGTERM while the servers came up: nothing trained, nothing to save
            return EXIT_STOPPED
        group.start_trainers()
        return group.watch()
    except KeyboardInterrupt:
        group.request_stop()
        raise
    finally:
        group.kill_all()
        if machine_lock is not None:
            machine_lock.release()
        signal.signal(signal.SIGTERM, previous)


def take_this_machine(group: Group, run_dir: Path) -> HostLock | None:
    """This machine's distdgl lock, waiting while another job holds it; None if stopped meanwhile."""
    lock = HostLock({"run_dir": str(run_dir)})
    if lock.try_take():
        return lock
    log.info(f"waiting: this machine already runs {lock.holder()}, and DGL's graph servers name shared memory "
             f"per machine; this job starts when that one ends")
    waited = time.monotonic()
    while not lock.try_take():
        if group.stopping:
            return None
        time.sleep(WAIT_POLL_S)
    log.info(f"the other job ended; starting after {time.monotonic() - waited:.0f}s")
    return lock
