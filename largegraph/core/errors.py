"""The few named errors that the CLI turns into one line on stderr, and the exit codes every
largegraph process (CLI, torchrun workers, the job daemon) agrees on."""

EXIT_OK = 0
EXIT_CRASHED = 1  # an unexpected failure (a bug, a native crash), or a worker died of one
EXIT_BAD_INPUT = 2  # refused its input (config, dataset, checkpoint, arguments): retrying cannot help
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_STOPPED = 143  # SIGTERM honoured after a checkpoint: resuming continues the run


class LargeGraphError(Exception):
    """A problem with the user's input: shown as one line, never as a traceback."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(LargeGraphError):
    """A job config (YAML file or dotted override) is invalid."""


class DatasetError(LargeGraphError):
    """A dataset is missing, malformed or inconsistent."""


class ResourceError(LargeGraphError):
    """The job needs more memory (or disk) than this machine has: refused before it starts."""


class CheckpointError(LargeGraphError):
    """A checkpoint is missing, corrupt, or does not belong to this run."""


class JobError(LargeGraphError):
    """An orchestrator job request cannot be carried out."""


class BenchError(LargeGraphError):
    """A job `largegraph bench` ran failed; its log, named in the message, says why."""

    exit_code = EXIT_CRASHED


class Stopped(LargeGraphError):
    """Training stopped on request (SIGTERM: preemption, orchestrator drain) after a checkpoint.

    Exit code 143 is what a process killed by SIGTERM reports, which schedulers already treat as
    "preempted, run again"; resuming continues from the checkpoint just written.
    """

    exit_code = EXIT_STOPPED


class SharedError(LargeGraphError):
    """An error one rank (rank 0) met and handed to the others, so that all of them stop; only the
    rank that met it reports it."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def describe_exit(code: int | None) -> str:
    """A process's exit status in words: ``-9`` -> ``killed by SIGKILL``, ``1`` -> ``exit code 1``
    (subprocess and multiprocessing report death by signal N as -N)."""
    import signal

    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
