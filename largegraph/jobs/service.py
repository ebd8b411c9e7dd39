"""The job service's interface: what ``submit``, ``status``, ``logs``, ``cancel`` and ``fetch`` ask of it.

Two implementations answer it: :class:`largegraph.jobs.local.LocalJobService` reads and writes the
workspace's store and run directories on this machine; ``largegraph.server.client.RemoteJobService``
asks a ``serve --http`` through its API. The commands call the interface and never ask which one
they hold, so both print the same and fail with the same one-line errors.
"""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, Protocol, Sequence

from largegraph.jobs.submission import SubmitOptions
from largegraph.jobs.views import JobView


class JobService(Protocol):
    """Queue, list, watch, cancel jobs and fetch their files.

    Every method raises ``JobError`` (``NoSuchJob`` for an unknown job) with a one-line message.
    """

    def submit(self, config: str, overrides: Sequence[str], options: SubmitOptions) -> JobView:
        """Validate the YAML job file ``config`` with ``overrides`` as `train` would, and queue it.

        Returns:
            The queued job.
        """
        ...

    def jobs(self, refs: Sequence[str] = ()) -> list[JobView]:
        """The named jobs (names or ids), or every job in submission order if none are named."""
        ...

    def job(self, ref: str | int) -> JobView:
        """One job, by name or id."""
        ...

    def cancel(self, ref: str) -> JobView:
        """Cancel a queued job at once, or ask the daemon to stop a running one.

        Returns:
            The job after the request (``cancelled``, or still ``running`` with ``cancel_requested``).
        """
        ...

    def logs(self, ref: str, out: BinaryIO, follow: bool = False) -> int:
        """Copy the job's log (every attempt's output) to ``out``; with ``follow``, keep copying until
        the job reaches a final state.

        Returns:
            The number of bytes copied.
        """
        ...

    def metrics(self, ref: str, since: int = 0) -> list[dict]:
        """The records of the run's metrics file from record number ``since`` on."""
        ...

    def fetch(self, ref: str, name: str, out: Path) -> int:
        """Copy the run directory's file ``name`` (one of ``RunDir.SHARED_FILES``) to ``out``, which is
        replaced only once the copy is whole.

        Returns:
            The file's size in bytes.
        """
        ...

    def unserved_note(self) -> str | None:
        """A line telling the user that no daemon serves these jobs, or None (served, or unknowable)."""
        ...
