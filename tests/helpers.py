"""What tests share besides fixtures: the repository's paths, running the real CLI, small job files.

Imported as ``from helpers import ...`` (tests/ is on sys.path through its conftest).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The real datasets (ogbl-ddi, Planetoid Cora) beside the checkout; LARGEGRAPH_TEST_DATA points a
# worktree that lives elsewhere at them.
SHARED_DATA = Path(os.environ.get("LARGEGRAPH_TEST_DATA") or ROOT.parent / "shared" / "data")


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m largegraph ARGS` as a real subprocess with stdin closed (``env``: extra variables)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "largegraph", *map(str, args)], cwd=cwd or ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)


def run_cli_together(commands: list[list], timeout: float = 600) -> list[subprocess.CompletedProcess]:
    """Run independent CLI commands (e.g. one training run per seed) as simultaneous subprocesses and
    wait for them all: small runs use little more than one core each, so on CI's two cores the
    slowest run, not the sum, sets the time. Returns their results in order."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = [subprocess.Popen([sys.executable, "-m", "largegraph", *map(str, args)], cwd=ROOT, env=env, text=True,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for args in commands]
    try:
        outputs = [proc.communicate(timeout=timeout) for proc in procs]
        return [subprocess.CompletedProcess(proc.args, proc.returncode, *out) for proc, out in zip(procs, outputs)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def train_seeds(config: Path, seeds: tuple[int, ...], out: Path, *overrides: str) -> list[dict]:
    """Train ``config`` once per seed, all at once (:func:`run_cli_together`), into ``out/seed<N>``;
    returns each run's summary.json (a failed run fails the calling test with its stderr)."""
    results = run_cli_together([["train", config, *overrides, f"seed={seed}", "--run-dir", out / f"seed{seed}"]
                                for seed in seeds])
    for result in results:
        assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads((out / f"seed{seed}" / "summary.json").read_text()) for seed in seeds]


@contextlib.contextmanager
def killed_if_left(proc: subprocess.Popen):
    """Kill ``proc`` on the way out if the test left it running (a failed wait, a failed assertion)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def write_file(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return the path (small input files of the import tests)."""
    path.write_text(text)
    return path


def write_config(path: Path, data_name: str, root: Path, **sections) -> Path:
    """Write a small job YAML; `sections` are merged over a fast default job."""
    import yaml

    cfg = {
        "name": "t", "seed": 0, "data": {"name": data_name, "root": str(root)},
        "sampler": {"fanouts": [5, 5], "batch_size": 256, "eval_batch_size": 1024},
        "model": {"arch": "sage", "hidden": 32, "num_layers": 2},
        "train": {"epochs": 2, "lr": 0.01},
    }
    for key, value in sections.items():
        cfg.setdefault(key, {})
        if isinstance(value, dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def sigterm_in(pid: int, *masks: str) -> bool:
    """Whether SIGTERM is in any of the named signal masks of /proc/<pid>/status (SigPnd, ShdPnd: pending;
    SigIgn: ignored; SigCgt: caught); False once the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    bits = 0
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in masks:
            bits |= int(value, 16)
    return bool(bits & (1 << (signal.SIGTERM - 1)))


def sigterm_pending(pid: int) -> bool:
    """Whether a SIGTERM sent to ``pid`` waits to be delivered (as it does while the process is stopped)."""
    return sigterm_in(pid, "SigPnd", "ShdPnd")


def assert_one_line_error(result, *needles: str) -> None:
    """The command refused its input: exit code 2, one `largegraph: error:` line holding every
    needle, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("largegraph: error:")]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


HOLD_MACHINE = ("import sys, time\n"
                "from largegraph.backends.distdgl.hostlock import HostLock\n"
                "assert HostLock({'run_dir': sys.argv[1]}).try_take()\n"
                "print('held', flush=True)\n"
                "time.sleep(600)\n")


def hold_machine(lock_dir: Path, run_dir: str) -> subprocess.Popen:
    """Another process holding the distdgl machine lock in ``lock_dir`` for ``run_dir``, once it holds it."""
    from largegraph.backends.distdgl.hostlock import DIR_ENV

    proc = subprocess.Popen([sys.executable, "-c", HOLD_MACHINE, run_dir], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, **{DIR_ENV: str(lock_dir)}))
    assert proc.stdout.readline().strip() == "held"
    return proc


def wait_for(predicate, timeout: float = 240.0, what: str = "") -> None:
    """Poll ``predicate`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
