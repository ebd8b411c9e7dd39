"""Fixtures of the job service's unit tests: a fresh workspace and its store."""
from __future__ import annotations

import pytest

from largegraph.jobs.store import JobStore
from largegraph.jobs.workspace import Workspace


@pytest.fixture
def ws(tmp_path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    ws.create()
    return ws


@pytest.fixture
def store(ws: Workspace) -> JobStore:
    return JobStore(ws.db_path)
