"""RunDir: one run id per directory however many processes create it at once; file names."""
from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import pytest

from largegraph.config import DataConfig, JobConfig
from largegraph.core.errors import CheckpointError
from largegraph.training.rundir import RunDir


def _create_and_read(path: str, start, out) -> None:
    start.wait()  # every process creates the directory at the same moment
    run = RunDir(path)
    run.create(JobConfig(name="race", data=DataConfig(name="x")))
    out.put(run.run_id())


@pytest.mark.parametrize("ranks", [2, 8])
def test_ranks_creating_a_fresh_run_directory_at_once_agree_on_one_run_id(tmp_path, ranks):
    ctx = mp.get_context("spawn")
    for trial in range(5):
        start, out = ctx.Barrier(ranks), ctx.Queue()
        path = str(tmp_path / f"run{trial}")
        procs = [ctx.Process(target=_create_and_read, args=(path, start, out)) for _ in range(ranks)]
        for p in procs:
            p.start()
        ids = [out.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert len(set(ids)) == 1 and len(ids[0]) == 32
        assert RunDir(path).run_id() == ids[0]
        assert not [p for p in Path(path).iterdir() if p.name.startswith(".")]  # no temp files left


def test_run_id_of_a_directory_never_created_is_an_error_not_a_new_id(tmp_path):
    run = RunDir(tmp_path / "elsewhere")
    with pytest.raises(CheckpointError, match="no run_id"):
        run.run_id()
    assert not run.run_id_path.exists()


def test_an_existing_run_keeps_its_id_when_created_again(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = JobConfig(name="again", data=DataConfig(name="x"))
    run.create(cfg)
    first = run.run_id()
    run.create(cfg)
    assert run.run_id() == first
