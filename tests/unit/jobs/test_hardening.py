"""The service's defences in one process: the one opener of a run's files, the bounds on what a
request may make the server parse, the name check and the terminal escapes."""
from __future__ import annotations

import os

import pytest

from largegraph.core.errors import ConfigError, JobError
from largegraph.jobs.progress import RunFileRefused, open_run_file, read_bytes_from, read_metrics, run_file_size
from largegraph.jobs.submission import check_integers
from largegraph.jobs.views import aligned, printable
from largegraph.jobs.workspace import check_job_name, check_name, is_valid_name
from largegraph.server.limits import TooDeep, check_json_depth, check_overrides, check_yaml_depth


def test_run_files_are_read_only_as_regular_files_of_the_run(tmp_path):
    (tmp_path / "train.log").write_bytes(b"epoch 1\n")
    (tmp_path / "metrics.jsonl").write_text('{"kind": "epoch", "epoch": 1}\n' + "[" * 50000 + "\n")
    assert read_bytes_from(tmp_path / "train.log", 6) == b"1\n" and run_file_size(tmp_path / "train.log") == 8
    assert read_metrics(tmp_path) == [{"kind": "epoch", "epoch": 1}]  # the too-deep line is skipped
    assert open_run_file(tmp_path, "model.pt") is None and read_bytes_from(tmp_path / "none", 0) == b""
    (tmp_path / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name in ("passwd", "fifo", "dir", "../train.log", "..", ""):
        with pytest.raises(RunFileRefused):
            open_run_file(tmp_path, name)


def test_request_values_are_bounded_before_they_are_parsed():
    check_json_depth(b'{"a": [[1]], "b": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\"[["}')
    with pytest.raises(TooDeep):
        check_json_depth(b"[" * 100_000)
    check_yaml_depth("model:\n  hidden: 8\n  layers: [[1, 2]]\n", "c")
    for text in ("a: " + "[" * 5000, "a:\n" + "- " * 5000 + "x", "{" * 5000):
        with pytest.raises(ConfigError, match="nested deeper"):
            check_yaml_depth(text, "c")
    for override in ("a=" + "[" * 100, "a." * 40 + "b=1", "a=" + "x" * 5000):
        with pytest.raises(ConfigError):
            check_overrides([override])
    check_integers({"train": {"epochs": 2 ** 63 - 1}, "x": [-(2 ** 63)]})
    with pytest.raises(ConfigError, match=r"train\.epochs=.* 64 bits"):
        check_integers({"train": {"epochs": 10 ** 26}})


@pytest.mark.parametrize("name", ["spoof\n", "a\x1b[2J", "a\tb", "é", "a" * 65, "x\r"])
def test_names_match_whole(name):
    assert not is_valid_name(name)
    with pytest.raises(JobError, match="is invalid"):
        check_job_name(name)
    with pytest.raises(JobError, match="token name"):
        check_name(name, "token name")


def test_control_characters_are_escaped_for_the_terminal():
    assert printable("a\nb\x1b[2J\x9b é") == "a\\nb\\x1b[2J\\x9b é"
    assert "\x1b" not in aligned([("NAME", "ERR"), ("x", "\x1b]0;owned\x07")])


def _through_auth_first(receive, monkeypatch) -> list[dict]:
    import asyncio

    from largegraph.server import app as app_module
    from largegraph.server.auth import Caller

    monkeypatch.setattr(app_module, "BODY_TIMEOUT_S", 0.2)

    class Everyone:
        def caller(self, _request):
            return Caller("alice", via_cookie=False)

    async def app(_scope, _receive, _send):
        raise AssertionError("the app must not see this request")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/v1/jobs", "method": "POST", "headers": [], "query_string": b""}
    asyncio.run(app_module.AuthFirst(app, Everyone())(scope, receive, send))
    return sent


def test_a_body_sent_too_slowly_or_nested_too_deep_never_reaches_the_app(monkeypatch):
    import asyncio

    async def trickle():
        await asyncio.sleep(5)

    assert _through_auth_first(trickle, monkeypatch)[0]["status"] == 408

    async def deep():
        return {"type": "http.request", "body": b"[" * 10_000, "more_body": False}

    assert _through_auth_first(deep, monkeypatch)[0]["status"] == 400


def test_a_token_may_have_only_so_many_jobs_waiting(tmp_path):
    from largegraph.jobs.store import JobStore, QueueFull

    store = JobStore(tmp_path / "jobs.db")

    def submit(who: str):
        return store.submit(name=None, default_base="t", task="node_classification", config="name: t\n", epochs=1,
                            priority=0, max_retries=0, nproc=1, device="cpu", max_restarts=None,
                            paths=lambda name, i: (tmp_path / f"{i}.yaml", tmp_path / name),
                            submitted_by=who, max_queued=2)

    first = submit("alice")
    submit("alice")
    with pytest.raises(QueueFull, match="--max-queued"):
        submit("alice")
    assert submit("bob").submitted_by == "bob"
    store.request_cancel(first.name)
    submit("alice")
    store.close()


def test_the_daemon_reads_a_linked_heartbeat_as_none(tmp_path):
    from largegraph.jobs.progress import error_line, read_heartbeat

    (tmp_path / "heartbeat").symlink_to("/dev/zero")
    (tmp_path / "train.log").symlink_to("/etc/passwd")
    assert read_heartbeat(tmp_path) == {} and error_line(tmp_path / "train.log") is None
    (tmp_path / "heartbeat").unlink()
    (tmp_path / "heartbeat").write_text('{"pid": 1, "time": 2.0, "step": 3}')
    assert read_heartbeat(tmp_path)["step"] == 3
