"""The few named errors that the CLI turns into one line on stderr and exit code 2."""


class LargeGraphError(Exception):
    """A problem with the user's input: shown as one line, never as a traceback."""

    exit_code = 2


class ConfigError(LargeGraphError):
    """A job config (YAML file or dotted override) is invalid."""


class DatasetError(LargeGraphError):
    """A dataset is missing, malformed or inconsistent."""


class CheckpointError(LargeGraphError):
    """A checkpoint is missing, corrupt, or does not belong to this run."""


class JobError(LargeGraphError):
    """An orchestrator job request cannot be carried out."""


class Stopped(LargeGraphError):
    """Training stopped on request (SIGTERM: preemption, orchestrator drain) after a checkpoint.

    Exit code 143 is what a process killed by SIGTERM reports, which schedulers already treat as
    "preempted, run again"; resuming continues from the checkpoint just written.
    """

    exit_code = 143


class SharedError(LargeGraphError):
    """An error one rank (rank 0) met and handed to the others, so that all of them stop; only the
    rank that met it reports it."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
