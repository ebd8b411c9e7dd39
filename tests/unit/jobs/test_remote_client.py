"""The remote job service against a mock transport: replies parsed into JobView, refusals as one-line
errors, redirects never followed, a followed log picked up again where a dropped stream left it."""
from __future__ import annotations

import io

import httpx
import pytest

from largegraph.core.errors import JobError
from largegraph.jobs.store import NoSuchJob
from largegraph.jobs.views import JobView
from largegraph.server import client as client_module
from largegraph.server.client import RemoteError, RemoteJobService

URL = "http://lg.test:8470"
RECORD = {"id": 7, "name": "social", "task": "node_classification", "state": "succeeded", "attempt": 2,
          "max_retries": 2, "failures": 1, "priority": 5, "nproc": 1, "device": "cpu", "run_dir": "/ws/runs/social-7",
          "epoch": 3, "epochs": 3, "step": 30, "metric": "accuracy", "last_metric": 0.5, "best_metric": 0.75,
          "resumes": 1, "pid": None, "exit_code": 0, "last_error": None, "cancel_requested": False,
          "submitted_at": 1.5, "started_at": 2.5, "finished_at": 9.5, "heartbeat_at": 9.0, "not_before": 0.0}


def service(handler) -> RemoteJobService:
    return RemoteJobService(URL, "lg_token", transport=httpx.MockTransport(handler))


class CutOff(httpx.SyncByteStream):
    """A response body that breaks off after its first piece, as when the server is killed."""

    def __init__(self, first: bytes):
        self.first = first

    def __iter__(self):
        yield self.first
        raise httpx.ReadError("connection reset")


def test_replies_are_job_views_sent_with_the_token():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"jobs": [RECORD]})

    (job,) = service(handler).jobs(["social"])
    assert job == JobView.model_validate(RECORD) and job.is_final
    assert job.model_dump() == RECORD  # the same keys, values and order as the server's record
    assert seen[0].headers["authorization"] == "Bearer lg_token" and seen[0].url.params["name"] == "social"


@pytest.mark.parametrize("reply, error, match", [
    (httpx.Response(404, json={"error": "no job named 'x' in this workspace"}), NoSuchJob, "no job named 'x'"),
    (httpx.Response(401, json={"error": "unknown token: sign in again"}), RemoteError, r"refused the token \(unknown token\)"),
    (httpx.Response(409, json={"error": "job x already\nsucceeded"}), JobError, "^job x already succeeded$"),
    (httpx.Response(307, headers={"Location": "http://evil.example/v1/jobs/x"}), RemoteError, "redirects to http://evil"),
    (httpx.Response(500, text="not json"), RemoteError, r"failed \(500\)"),
])
def test_refusals_are_one_line_errors_and_redirects_are_not_followed(reply, error, match):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return reply

    with pytest.raises(error, match=match):
        service(handler).job("x")
    assert seen == ["/v1/jobs/x"]  # one request: a redirect is never followed


def test_a_job_reference_outside_the_name_alphabet_is_refused_before_any_request():
    with pytest.raises(NoSuchJob, match="job names are"):
        service(lambda request: httpx.Response(500)).job("../x")


def test_an_unreachable_server_is_one_line_with_a_hint():
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused")

    with pytest.raises(RemoteError, match="cannot reach server .*Connection refused; is `largegraph serve --http`"):
        service(handler).jobs()
    with pytest.raises(JobError, match="must be an http:// or https:// address"):
        RemoteJobService("ftp://lg.test", "lg_token")


def test_a_followed_log_resumes_from_the_last_byte_after_the_server_went_away(monkeypatch):
    monkeypatch.setattr(client_module, "RETRY_S", 0.0)
    offsets, pieces = [], [CutOff(b"epoch 1\n"), None, httpx.ByteStream(b"epoch 2\ndone\n")]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/logs"):
            assert request.url.params["follow"] == "true"
            offsets.append(int(request.url.params["offset"]))
            piece = pieces.pop(0)
            if piece is None:  # restarting: nobody listens for a moment
                raise httpx.ConnectError("[Errno 111] Connection refused")
            return httpx.Response(200, stream=piece)
        return httpx.Response(200, json={"job": RECORD})

    out = io.BytesIO()
    assert service(handler).logs("social", out, follow=True) == len(b"epoch 1\nepoch 2\ndone\n")
    assert out.getvalue() == b"epoch 1\nepoch 2\ndone\n" and offsets == [0, 8, 8]
