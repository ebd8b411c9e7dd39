"""The job service over HTTP, end to end: real `largegraph serve --http` processes on loopback, the
real remote CLI, a real SQLite store and real trainers.

As in test_job_service, no test relies on a trainer being slow: where a test acts on a job mid-run,
it first freezes the job's processes (SIGSTOP), so the job cannot move on meanwhile.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from helpers import ROOT
from httpserver import Server, create_token, remote_env, submit_body
from test_job_service import job_yaml, slow_yaml, ws  # noqa: F401  (fixtures shared with the local service's tests)
from test_job_service import (attempts, checkpointed_epochs, epochs_done, frozen, job, lg, metric_kinds,
                              one_line_error, thaw_once_told_to_stop, wait_for)

from largegraph.jobs.store import FINAL_STATES as FINAL
from largegraph.jobs.workspace import Workspace
from largegraph.training.rundir import RunDir


def api_job(server: Server, token: str, name: str) -> dict:
    reply = server.request("GET", f"/v1/jobs/{name}", token)
    assert reply.status == 200, reply.body
    return reply.json()


class LogStream(threading.Thread):
    """Reads `GET /v1/jobs/NAME/logs?follow=true` as it arrives, until the server ends the stream."""

    def __init__(self, server: Server, token: str, name: str):
        super().__init__(daemon=True)
        self.server, self.token, self.name = server, token, name
        self.received = b""
        self.status: int | None = None

    def run(self) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(self.server.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        conn.request("GET", f"/v1/jobs/{self.name}/logs?follow=true", headers={"Authorization": f"Bearer {self.token}"})
        response = conn.getresponse()
        self.status = response.status
        while chunk := response.read1(65536):
            self.received += chunk
        conn.close()

    def text(self) -> str:
        return self.received.decode("utf-8", "replace")


# --- security ----------------------------------------------------------------------------------------
def test_tokens_paths_data_roots_body_size_and_cross_site_requests_are_checked(tmp_path, ws, job_yaml, synth_root):
    token = create_token(ws, "alice")
    other_root = tmp_path / "other-data"
    other_root.mkdir()
    # --cpu-slots 0: the daemon runs nothing here (it fails what it could never run), which leaves
    # the jobs as records with run directories to probe.
    with Server(ws, "--cpu-slots", "0", "--data-root", str(synth_root), "--max-body", "65536") as server:
        assert server.request("GET", "/healthz").status == 200
        for path in ("/v1/jobs", "/v1/openapi.json", "/v1/jobs/1/logs", "/static/app.js"):
            assert server.request("GET", path).status == 401, path
            assert server.request("GET", path, token="lg_not-a-token").status == 401, path
        described = server.request("GET", "/v1/openapi.json", token)
        assert described.status == 200 and "/v1/jobs/{ref}/artifacts/{file}" in described.json()["paths"]
        # every route says which errors it may answer, and in what shape
        routes = [op for path, ops in described.json()["paths"].items() if path.startswith("/v1/") for op in ops.values()]
        assert routes and all({"400", "401", "404", "413"} <= set(op["responses"]) for op in routes)
        assert server.request("GET", "/", token=None).headers["location"] == "/login"

        # A revoked token is refused at once; a live one with the same name works again.
        bob = create_token(ws, "bob")
        assert server.request("GET", "/v1/jobs", bob).status == 200
        assert lg(ws, "token", "revoke", "bob").returncode == 0
        assert server.request("GET", "/v1/jobs", bob).status == 401
        assert server.request("GET", "/v1/jobs", create_token(ws, "bob")).status == 200

        # Datasets only from the data roots, with or without '..' and symlinks.
        outside = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, f"data.root={other_root}"))
        assert outside.status == 400 and "outside the server's data roots" in outside.json()["error"]
        escape = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, "data.name=../../etc"))
        assert escape.status == 400 and "outside the server's data roots" in escape.json()["error"]
        (other_root / "link").symlink_to(tmp_path)
        linked = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, f"data.root={other_root}/link"))
        assert linked.status == 400
        # A distdgl job's partitions too; and the command reaching other machines is never a request's.
        parts = server.request("POST", "/v1/jobs", token, submit_body(
            job_yaml, "distributed.mode=distdgl", f"distributed.part_config={other_root}/p.json"))
        assert parts.status == 400 and "distributed.part_config" in parts.json()["error"]
        shell = server.request("POST", "/v1/jobs", token, submit_body(
            job_yaml, "distributed.mode=distdgl", f"distributed.part_config={synth_root}/p.json",
            "distributed.remote_shell=sh -c 'touch /tmp/owned' {host}"))
        assert shell.status == 400 and "remote_shell cannot be set through the API" in shell.json()["error"]
        # Validated exactly as `submit` validates: the same one line.
        typo = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, "model.hiden=8"))
        assert typo.status == 400
        local = lg(tmp_path / "elsewhere", "submit", job_yaml, "model.hiden=8")
        assert local.stderr == f"largegraph: error: {typo.json()['error']}\n"
        bad_name = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, name="../../x"))
        assert bad_name.status == 400 and "is invalid" in bad_name.json()["error"]
        huge = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, *["x.y=1"] * 10_000))
        assert huge.status == 413 and "larger than 65536 bytes" in huge.json()["error"]

        created = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, name="probe"))
        assert created.status == 201, created.body
        run_dir = Path(created.json()["job"]["run_dir"])
        assert run_dir.parent == Workspace(ws).runs_dir
        for path in ("/v1/jobs/..%2F..%2Fetc/logs", "/v1/jobs/../jobs.db", "/v1/jobs/probe/logs/../../jobs.db",
                     "/v1/jobs/probe/artifacts/..%2F..%2Fjobs.db", "/v1/jobs/probe/artifacts/../../../jobs.db",
                     "/v1/jobs/probe/artifacts/jobs.db", "/v1/jobs/.../logs", "/v1/jobs/probe/artifacts/.."):
            refused = server.request("GET", path, token)
            assert refused.status in (400, 404) and b"SQLite" not in refused.body, (path, refused.status)
        run_dir.mkdir(parents=True)
        (run_dir / "model.pt").symlink_to(Workspace(ws).db_path)  # a planted link out of the run directory
        assert server.request("GET", "/v1/jobs/probe/artifacts/model.pt", token).status == 404

        # The page's cookie: HttpOnly and SameSite; a state change needs the CSRF header, from this origin.
        signed_in = server.request("POST", "/login", body=f"token={token}".encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert signed_in.status == 303
        cookies = _cookies(signed_in)
        session = cookies["lg_session"]
        assert "httponly" in session[1] and "samesite=strict" in session[1]
        jar = "; ".join(f"{k}={v[0]}" for k, v in cookies.items())
        assert server.request("GET", "/v1/jobs", headers={"Cookie": jar}).status == 200
        csrf = cookies["lg_csrf"][0]
        assert server.request("POST", "/v1/jobs/probe/cancel", headers={"Cookie": jar}).status == 403
        foreign = {"Cookie": jar, "X-CSRF-Token": csrf, "Origin": "http://evil.example"}
        assert server.request("POST", "/v1/jobs/probe/cancel", headers=foreign).status == 403
        own = {"Cookie": jar, "X-CSRF-Token": csrf, "Origin": server.url}
        assert server.request("POST", "/v1/jobs/probe/cancel", headers=own).status in (200, 409)
        wrong = server.request("POST", "/login", body=b"token=lg_wrong",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert wrong.status == 401 and "set-cookie" not in wrong.headers

        # The remote CLI: one line and exit 2 for a bad token or a refused request.
        elsewhere = tmp_path / "elsewhere"
        one_line_error(lg(elsewhere, "status", **remote_env(server, "lg_wrong")), "refused the token")
        one_line_error(lg(elsewhere, "submit", job_yaml, f"data.root={other_root}", **remote_env(server, token)),
                       "outside the server's data roots")
        one_line_error(lg(elsewhere, "logs", "nope", **remote_env(server, token)), "no job named 'nope'")
        url = server.url
    one_line_error(lg(tmp_path / "elsewhere", "status", LARGEGRAPH_SERVER=url, LARGEGRAPH_TOKEN=token),
                   "cannot reach server")


def _cookies(reply) -> dict[str, tuple[str, str]]:
    """name -> (value, lower-cased attributes) of a reply's Set-Cookie headers."""
    found = {}
    for line in reply.set_cookies:
        pair, _, attributes = line.partition(";")
        name, _, value = pair.partition("=")
        found[name.strip()] = (value.strip(), attributes.lower().replace(" ", ""))
    return found


def test_a_non_loopback_bind_without_tls_is_refused_in_one_line(ws):
    one_line_error(lg(ws, "serve", "--http", "192.0.2.1:8470"), "refusing to serve plain http on 192.0.2.1")
    one_line_error(lg(ws, "serve", "--http", "127.0.0.1:8470", "--tls-cert", "x.pem"), "go together")
    one_line_error(lg(ws, "serve", "--http", "nonsense"), "must look like HOST:PORT")
    assert not Workspace(ws).db_path.exists()  # refused before anything was written


def test_connections_beyond_the_cap_get_503_until_one_closes(ws):
    from urllib.parse import urlsplit

    token = create_token(ws, "alice")
    with Server(ws, "--cpu-slots", "0", "--max-connections", "2") as server:
        parts = urlsplit(server.url)
        # two clients that never finish their request (as a slow or hostile one would) hold both places
        held = [socket.create_connection((parts.hostname, parts.port), timeout=30) for _ in range(2)]
        try:
            for conn in held:
                conn.sendall(b"GET /v1/jobs HTTP/1.1\r\nHost: x\r\n")
            assert server.request("GET", "/v1/jobs", token).status == 503
        finally:
            for conn in held:
                conn.close()
        wait_for(lambda: server.request("GET", "/v1/jobs", token).status == 200)


@pytest.fixture
def tls_pair(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def test_tls_serves_https_and_the_client_checks_the_certificate(tmp_path, ws, tls_pair):
    cert, key = tls_pair
    token = create_token(ws, "alice")
    with Server(ws, "--cpu-slots", "0", tls=(cert, key)) as server:
        assert server.url.startswith("https://")
        listed = lg(tmp_path / "elsewhere", "status", "--cacert", cert, **remote_env(server, token))
        assert listed.returncode == 0 and listed.stdout == "no jobs\n", listed.stderr
        one_line_error(lg(tmp_path / "elsewhere", "status", **remote_env(server, token)), "certificate")


def test_the_kubernetes_manifest_serves_as_written(tmp_path, ws, tls_pair, synth_root):
    """launch/k8s/job-service.yaml's container arguments, with its paths mapped into this test, start
    a server that its probes find healthy over https, on the port its Service targets."""
    import ssl
    import urllib.request

    import yaml

    docs = [d for d in yaml.safe_load_all((ROOT / "launch" / "k8s" / "job-service.yaml").read_text()) if d]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (service,) = [d for d in docs if d["kind"] == "Service"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = container["args"]
    assert args[0] == "serve"
    options = dict(a.removeprefix("--").split("=", 1) for a in args[1:])
    host, port = options["http"].rsplit(":", 1)
    assert host == "0.0.0.0" and {"tls-cert", "tls-key"} <= set(options)  # not loopback: TLS, never --insecure
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["https"] and ports["https"] == int(port)
    for probe in (container["readinessProbe"], container["livenessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert options["workspace"] in mounts and options["data-root"] in mounts
    assert os.path.dirname(options["tls-cert"]) in mounts
    # the drain (kill grace, then the daemon's own exit) fits in the pod's grace period
    assert int(options["kill-grace"]) + 30 <= pod["terminationGracePeriodSeconds"]

    cert, key = tls_pair
    here = {options["workspace"]: str(ws), options["data-root"]: str(synth_root),
            options["tls-cert"]: str(cert), options["tls-key"]: str(key)}
    mapped = [f"--{k}={here.get(v, v)}" for k, v in options.items() if k != "http"]
    with Server(ws, *mapped) as server:  # on loopback, port 0: the rest exactly as the manifest has it
        assert server.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(f"{server.url}/healthz", context=context, timeout=30) as reply:
            assert reply.status == 200 and json.loads(reply.read()) == {"status": "ok"}


# --- jobs over HTTP ------------------------------------------------------------------------------------
def test_fifty_submits_from_ten_concurrent_http_clients_are_recorded_exactly_once(ws, job_yaml, synth_root):
    token = create_token(ws, "ci")
    with Server(ws, "--cpu-slots", "0", "--data-root", str(synth_root)) as server:
        failures: list = []

        def client(p: int) -> None:
            for k in range(5):
                name = {"name": f"p{p}-j{k}"} if k % 2 == 0 else {}
                reply = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, "train.epochs=1", **name))
                if reply.status != 201:
                    failures.append((p, k, reply.status, reply.body))

        threads = [threading.Thread(target=client, args=(p,)) for p in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not failures, failures
        listed = server.request("GET", "/v1/jobs", token).json()["jobs"]
    assert sorted(j["id"] for j in listed) == list(range(1, 51))
    names = [j["name"] for j in listed]
    assert len(set(names)) == 50 and {f"p{p}-j{k}" for p in range(10) for k in (0, 2, 4)} <= set(names)
    assert all(Path(Workspace(ws).job_config(j["id"])).is_file() for j in listed)
    assert not list(Workspace(ws).jobs_dir.glob(".submit-*"))  # no staging file left behind


@pytest.mark.slow
def test_submit_follow_kill_retry_metrics_artifacts_and_cancel_over_http(tmp_path, ws, slow_yaml, job_yaml, synth_root):
    token = create_token(ws, "alice")
    elsewhere = tmp_path / "elsewhere"  # the remote CLI never touches a workspace of its own
    with Server(ws, "--data-root", str(synth_root)) as server:
        env = remote_env(server, token)
        sent = lg(elsewhere, "submit", slow_yaml, "--name", "social", "--priority", "5", "--retries", "2", **env)
        assert sent.returncode == 0 and sent.stdout.startswith("submitted social (id 1, node_classification"), sent.stderr
        assert lg(elsewhere, "submit", job_yaml, "--name", "waiting", **env).returncode == 0
        assert not elsewhere.exists()
        wait_for(lambda: api_job(server, token, "social")["job"]["state"] == "running")
        stream = LogStream(server, token, "social")
        stream.start()
        run_dir = job(ws, "social").run_dir
        # the epoch's checkpoint, not only its metrics (written first): the retry must have one to resume
        wait_for(lambda: epochs_done(run_dir) >= 1 and checkpointed_epochs(run_dir) >= 1)
        with frozen(ws, "social") as (first,):
            # Streaming: the first attempt's output arrives while the job is still running (frozen).
            wait_for(lambda: "attempt 1" in stream.text() and "epoch   1" in stream.text(), explain=stream.text)
            assert api_job(server, token, "social")["job"]["state"] == "running"
            cancelled = lg(elsewhere, "cancel", "waiting", **env)
            assert cancelled.returncode == 0 and cancelled.stdout == "cancelled waiting\n", cancelled.stderr
            os.kill(first.job.pid, signal.SIGKILL)  # a crash mid-training: retried, resumed
        wait_for(lambda: api_job(server, token, "social")["job"]["state"] in FINAL, timeout=240)
        stream.join(timeout=60)
        assert not stream.is_alive() and stream.status == 200  # the stream ended with the job
        assert "attempt 2" in stream.text() and "run_dir=" in stream.text()

        detail = api_job(server, token, "social")
        assert (detail["job"]["state"], detail["job"]["failures"]) == ("succeeded", 1)
        assert [(a["outcome"], a["exit_code"]) for a in detail["attempts"]] == [("crashed", -9), ("exited", 0)]
        assert "name: t" in detail["config"]
        records = server.request("GET", "/v1/jobs/social/metrics", token).json()["records"]
        assert [r["kind"] for r in records] == metric_kinds(run_dir) and "resume" in metric_kinds(run_dir)
        newer = server.request("GET", f"/v1/jobs/social/metrics?since={len(records) - 1}", token).json()
        assert [r["kind"] for r in newer["records"]] == ["final"] and newer["next"] == len(records)

        run = RunDir(run_dir)
        model = server.request("GET", "/v1/jobs/social/artifacts/model.pt", token)
        assert model.status == 200 and model.body == run.model_path.read_bytes()
        curves = server.request("GET", "/v1/jobs/social/artifacts/curves.png", token)
        assert curves.status == 200 and curves.body.startswith(b"\x89PNG") and curves.headers["content-type"] == "image/png"
        assert server.request("GET", "/v1/jobs/social/artifacts/predictions.pt", token).body == \
            run.predictions_path.read_bytes()
        # `fetch` through the server, and on the server's machine: the file whole, never half
        fetched = lg(elsewhere, "fetch", "social", "model.pt", "-o", tmp_path / "model.pt", **env)
        assert fetched.returncode == 0 and fetched.stdout.startswith(f"wrote {tmp_path / 'model.pt'} ("), fetched.stderr
        assert (tmp_path / "model.pt").read_bytes() == run.model_path.read_bytes()
        one_line_error(lg(elsewhere, "fetch", "social", "model.pt", "-o", tmp_path / "model.pt", **env), "--force")
        one_line_error(lg(elsewhere, "fetch", "waiting", "model.pt", "-o", tmp_path / "w.pt", **env),
                       "job waiting has no model.pt yet (state cancelled")
        assert not (tmp_path / "w.pt").exists()
        here = lg(ws, "fetch", "social", "curves.png", "-o", tmp_path)
        assert here.returncode == 0 and (tmp_path / "curves.png").read_bytes() == run.curves_path.read_bytes()
        ranged = server.request("GET", "/v1/jobs/social/logs?offset=10&limit=100", token)
        assert ranged.body == run.log_path.read_bytes()[10:110] and ranged.headers["x-log-next"] == "110"

        # The remote CLI prints what the local one prints.
        followed = lg(elsewhere, "logs", "social", "--follow", **env)
        assert followed.returncode == 0 and followed.stdout == run.log_path.read_text()
        remote, local = lg(elsewhere, "status", **env), lg(ws, "status")
        assert remote.returncode == 0 and _without_age(remote.stdout) == _without_age(local.stdout)
        one_line_error(lg(elsewhere, "cancel", "social", **env), "job social already succeeded")
    assert job(ws, "waiting").state == "cancelled"


def _without_age(table: str) -> list[list[str]]:
    return [line.split()[:-1] for line in table.splitlines()]


@pytest.mark.slow
def test_server_sigkilled_mid_job_then_restarted_loses_nothing_and_answers_again(ws, slow_yaml, job_yaml, synth_root):
    token = create_token(ws, "alice")
    first = Server(ws, "--data-root", str(synth_root))
    try:
        reply = first.request("POST", "/v1/jobs", token, submit_body(slow_yaml, name="long", priority=5))
        assert reply.status == 201, reply.body
        assert first.request("POST", "/v1/jobs", token, submit_body(job_yaml, name="next")).status == 201
        run_dir = job(ws, "long").run_dir
        wait_for(lambda: epochs_done(run_dir) >= 1)
        with frozen(ws, "long") as stopped:
            first.kill()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", int(first.url.rsplit(":", 1)[1])), timeout=5).close()
            with Server(ws, "--data-root", str(synth_root)) as second:
                listed = second.request("GET", "/v1/jobs", token).json()["jobs"]
                assert [(j["id"], j["name"]) for j in listed] == [(1, "long"), (2, "next")]
                thaw_once_told_to_stop(*stopped)  # recovery SIGTERMs the orphan; it checkpoints and exits
                wait_for(lambda: all(j["state"] in FINAL for j in
                                     second.request("GET", "/v1/jobs", token).json()["jobs"]), timeout=240)
    finally:
        first.kill()
    for name in ("long", "next"):
        assert job(ws, name).state == "succeeded"
        assert metric_kinds(job(ws, name).run_dir).count("final") == 1
    tries = attempts(ws, "long")
    assert tries[0]["outcome"] == "orphaned" and tries[-1]["outcome"] == "exited"
    assert "resume" in metric_kinds(run_dir)
    assert RunDir(run_dir).log_path.read_text().count("=== largegraph serve") == len(tries)
