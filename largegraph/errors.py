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
