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


def _job(**sections) -> JobConfig:
    return JobConfig(name="job", data=DataConfig(name="x", root="/a"), **sections)


def test_a_recorded_config_of_another_job_is_refused_in_one_line_naming_the_keys(tmp_path):
    from largegraph.core.errors import ConfigError
    from largegraph.training.rundir import run_conflicts

    run = RunDir(tmp_path / "run")
    run.create(_job(sampler={"batch_size": 100, "num_workers": 2}, train={"epochs": 3}))
    recorded = (tmp_path / "run" / RunDir.CONFIG).read_text()
    other = _job(sampler={"batch_size": 50, "num_workers": 0}, train={"epochs": 2})
    with pytest.raises(ConfigError) as err:
        run.refuse_other_job(other)
    message = str(err.value)
    assert "\n" not in message and "another job's run" in message
    assert "sampler.batch_size: 100 -> 50" in message and "train.epochs: 3 -> 2" in message
    assert "num_workers" not in message  # sampling workers do not change the run's course
    assert (tmp_path / "run" / RunDir.CONFIG).read_text() == recorded  # nothing written
    import yaml
    assert run_conflicts(yaml.safe_load(recorded), other) == ["sampler.batch_size: 100 -> 50", "train.epochs: 3 -> 2"]


def test_the_same_job_may_resume_with_more_epochs_other_paths_and_checkpoint_cadence(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create(_job(train={"epochs": 3}, checkpoint={"keep_last": 2}))
    same = JobConfig(name="job", data=DataConfig(name="x", root="/elsewhere"), train={"epochs": 5},
                     checkpoint={"keep_last": 4, "every_n_steps": 10})
    run.refuse_other_job(same)  # no error
    RunDir(tmp_path / "never-created").refuse_other_job(same)


def test_keys_an_older_record_lacks_are_not_compared():
    from largegraph.training.rundir import run_conflicts

    assert run_conflicts({"seed": 0, "sampler": {"batch_size": 1024}}, _job()) == []
    assert run_conflicts({"seed": 1}, _job()) == ["seed: 1 -> 0"]
