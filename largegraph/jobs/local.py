"""The job service on this machine: the workspace's SQLite store and its run directories.

One implementation of :class:`largegraph.jobs.service.JobService`; ``largegraph.server.client``
holds the other (the same calls over HTTP).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import BinaryIO, Sequence

from largegraph.core.errors import JobError
from largegraph.jobs.progress import open_run_file, read_bytes_from, read_metrics
from largegraph.jobs.store import JobStore
from largegraph.jobs.submission import SubmitOptions, queue_job
from largegraph.jobs.views import JobView, missing_file
from largegraph.jobs.workspace import Workspace, open_store


class LocalJobService:
    """The job service of one workspace, read and written directly.

    The store is opened on first use: ``submit`` creates the workspace if it is new, every other
    call needs one that already holds a store.
    """

    def __init__(self, workspace: Workspace, poll_s: float = 0.5):
        self.workspace = workspace
        self.poll_s = poll_s  # how often a followed log and its job are looked at
        self._store: JobStore | None = None

    def store(self, create: bool = False) -> JobStore:
        """The workspace's store (opened once)."""
        if self._store is None:
            self._store = open_store(self.workspace, create)
        return self._store

    def submit(self, config: str, overrides: Sequence[str], options: SubmitOptions) -> JobView:
        from largegraph.config import load_config  # the config schema is imported only to submit

        cfg = load_config(config, list(overrides))
        return JobView.of(queue_job(self.workspace, self.store(create=True), cfg, options))

    def jobs(self, refs: Sequence[str] = ()) -> list[JobView]:
        store = self.store()
        return [JobView.of(j) for j in ([store.get(ref) for ref in refs] if refs else store.jobs())]

    def job(self, ref: str | int) -> JobView:
        return JobView.of(self.store().get(ref))

    def cancel(self, ref: str) -> JobView:
        return JobView.of(self.store().request_cancel(ref))

    def logs(self, ref: str, out: BinaryIO, follow: bool = False) -> int:
        from largegraph.training.rundir import RunDir  # not at import time: it pulls in the config schema

        job = self.store().get(ref)
        path = RunDir(job.run_dir).log_path
        offset = _copy_from(path, 0, out)
        while follow and not job.is_final:
            time.sleep(self.poll_s)
            job = self.store().get(job.id)  # read before the log: no last words are missed
            offset = _copy_from(path, offset, out)
        return offset

    def metrics(self, ref: str, since: int = 0) -> list[dict]:
        return read_metrics(self.store().get(ref).run_dir)[since:]

    def fetch(self, ref: str, name: str, out: Path) -> int:
        from largegraph.core.fsutil import atomic_write_from

        job = self.store().get(ref)
        handle = open_run_file(job.run_dir, name)
        if handle is None:
            raise JobError(missing_file(job, name))
        with handle:
            return atomic_write_from(out, handle)

    def unserved_note(self) -> str | None:
        from largegraph.jobs.daemon import daemon_alive

        if any(daemon_alive(d) for d in self.store().daemons()):
            return None
        root = self.workspace.root
        return (f"largegraph: note: no daemon is serving {root}; start one with "
                f"`largegraph serve --workspace {root}`")



def _copy_from(path: Path, offset: int, out: BinaryIO, chunk: int = 1 << 20) -> int:
    """Copy what ``path`` holds past byte ``offset`` to ``out``, a bounded piece at a time; returns
    the new offset."""
    while data := read_bytes_from(path, offset, chunk):
        out.write(data)
        out.flush()
        offset += len(data)
    return offset
