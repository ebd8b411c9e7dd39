"""What one ``serve --http`` serves and how strictly: the settings every route reads."""
from __future__ import annotations

import threading
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from largegraph.jobs.store import JobStore
from largegraph.jobs.workspace import Workspace


@dataclass
class ServerSettings:
    """What the app serves and how strictly."""

    workspace: Workspace
    data_roots: list[Path]
    max_body: int
    secure_cookies: bool = False  # the session cookie is only sent over https
    max_follow_s: float = 3600.0  # a followed log's stream ends after this; the client asks again
    max_queued: int = 100         # jobs one token may have waiting
    stopping: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def store(self) -> Iterator[JobStore]:
        """A store connection for one request, on the thread that serves it (SQLite connections stay
        on the thread that opened them)."""
        with closing(JobStore(self.workspace.db_path)) as store:
            yield store
