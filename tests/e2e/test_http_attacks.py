"""`serve --http` under attack, end to end: each attack a client (or a job's own files) can make on a
real server on loopback, and the secure outcome. Every server here runs with `--cpu-slots 0`: the
daemon starts no job, which leaves jobs as records with run directories to plant files in.
"""
from __future__ import annotations

import http.client
import json
import socket
import ssl
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from httpserver import Server, create_token, submit_body
from test_http_service import tls_pair  # noqa: F401  (fixture)
from test_job_service import job_yaml, slow_yaml, ws  # noqa: F401  (fixtures)
from test_job_service import frozen, lg, one_line_error, wait_for

from largegraph.jobs.workspace import Workspace

NO_JOBS = ("--cpu-slots", "0")
READERS = ("/logs", "/logs?follow=true", "/logs?offset=-100", "/metrics", "/artifacts/train.log",
           "/artifacts/metrics.jsonl")


def https_request(server: Server, cert: Path, method: str, path: str, token: str | None = None) -> tuple[int, bytes]:
    """One request over TLS, the certificate checked against ``cert``."""
    parts = urlsplit(server.url)
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=60, context=context)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, response.read(1 << 20)
    finally:
        conn.close()


def planted_job(server: Server, token: str, job_yaml: Path, name: str) -> Path:
    """A queued job's run directory, made by the test (as a run would make it)."""
    created = server.request("POST", "/v1/jobs", token, submit_body(job_yaml, name=name))
    assert created.status == 201, created.body
    run_dir = Path(created.json()["job"]["run_dir"])
    run_dir.mkdir(parents=True)
    return run_dir


def assert_quiet_log(server: Server) -> None:
    """Nothing a request did left a traceback in the server's log."""
    out = server.output()
    assert "Traceback" not in out and "RecursionError" not in out and "OverflowError" not in out, out


@pytest.mark.parametrize("target", ["/etc/passwd", "/dev/zero"])
def test_a_run_file_linked_elsewhere_is_refused_on_every_route(ws, job_yaml, synth_root, target):
    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS, "--data-root", str(synth_root)) as server:
        run_dir = planted_job(server, token, job_yaml, "linked")
        for name in ("train.log", "metrics.jsonl"):
            (run_dir / name).symlink_to(target)
        for route in READERS:
            reply = server.request("GET", f"/v1/jobs/linked{route}", token, timeout=30)
            assert reply.status == 404, (route, reply.status, reply.body[:200])
            assert b"root:" not in reply.body and b"\0" not in reply.body and "error" in reply.json(), route
        # the status page reads the same routes; the job itself still answers
        assert server.request("GET", "/v1/jobs/linked", token).status == 200
        assert_quiet_log(server)


def test_a_run_file_that_is_a_pipe_or_a_directory_is_refused(ws, job_yaml, synth_root):
    import os

    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS, "--data-root", str(synth_root)) as server:
        run_dir = planted_job(server, token, job_yaml, "odd")
        os.mkfifo(run_dir / "train.log")  # a reader that waited on it would hang its thread
        (run_dir / "metrics.jsonl").mkdir()
        for route in READERS:
            reply = server.request("GET", f"/v1/jobs/odd{route}", token, timeout=30)
            assert reply.status == 404, (route, reply.status)
        assert_quiet_log(server)


def test_a_linked_log_is_refused_over_tls_too(ws, job_yaml, synth_root, tls_pair):
    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS, "--data-root", str(synth_root), tls=tls_pair) as server:
        parts = urlsplit(server.url)
        context = ssl.create_default_context(cafile=str(tls_pair[0]))
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=60, context=context)
        body = json.dumps(submit_body(job_yaml, name="linked")).encode()
        conn.request("POST", "/v1/jobs", body=body, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "application/json"})
        created = conn.getresponse()
        run_dir = Path(json.loads(created.read())["job"]["run_dir"])
        conn.close()
        run_dir.mkdir(parents=True)
        (run_dir / "train.log").symlink_to("/etc/passwd")
        for route in ("/logs", "/logs?follow=true", "/artifacts/train.log"):
            status, data = https_request(server, tls_pair[0], "GET", f"/v1/jobs/linked{route}", token)
            assert status == 404 and b"root:" not in data, (route, status)


def _deep_yaml(levels: int) -> str:
    return "name: deep\nmodel: " + "[" * levels + "]" * levels + "\n"


def test_requests_nested_or_sized_to_break_the_parsers_get_one_line_400s(ws, job_yaml, synth_root):
    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS, "--data-root", str(synth_root)) as server:
        attacks = {
            "deep config": {"config": _deep_yaml(5000)},
            "deep block config": {"config": "a:\n" + "- " * 5000 + "x\n"},
            "deep override": submit_body(job_yaml, "model.hidden=" + "[" * 5000 + "]" * 5000),
            "long override key": submit_body(job_yaml, "a." * 2000 + "b=1"),
            "huge epochs": submit_body(job_yaml, "train.epochs=99999999999999999999999999"),
            "huge negative": submit_body(job_yaml, "train.epochs=-99999999999999999999999999"),
            "huge priority": submit_body(job_yaml, priority=10 ** 30),
            "name with newline": submit_body(job_yaml, name="spoof\n"),
            "name with escape": submit_body(job_yaml, name="spoof\x1b[2J"),
        }
        for what, body in attacks.items():
            reply = server.request("POST", "/v1/jobs", token, body)
            assert reply.status in (400, 422), (what, reply.status, reply.body[:300])
            assert "\n" not in reply.json()["error"], what
        deep_json = b'{"config": ' + b"[" * 20000 + b"]" * 20000 + b"}"
        reply = server.request("POST", "/v1/jobs", token, deep_json, headers={"Content-Type": "application/json"})
        assert reply.status == 400, reply.body[:300]
        for path in ("/v1/jobs/1/metrics?since=99999999999999999999999999",
                     "/v1/jobs/1/logs?offset=-99999999999999999999999999", "/v1/jobs/99999999999999999999"):
            assert server.request("GET", path, token).status in (400, 404, 422), path
        assert server.request("GET", "/v1/jobs", token).json()["jobs"] == []  # nothing was queued
        assert server.request("GET", "/v1/jobs?limit=1000000", token).status == 422  # pages are bounded
        for name in ("first", "second"):
            assert server.request("POST", "/v1/jobs", token, submit_body(job_yaml, name=name)).status == 201
        page = server.request("GET", "/v1/jobs?limit=1", token).json()
        rest = server.request("GET", f"/v1/jobs?after={page['next']}", token).json()
        assert [j["name"] for j in page["jobs"] + rest["jobs"]] == ["first", "second"] and rest["next"] is None
        assert_quiet_log(server)


def test_one_token_may_queue_only_so_many_jobs(ws, job_yaml, slow_yaml, synth_root):
    alice, bob = create_token(ws, "alice"), create_token(ws, "bob")
    with Server(ws, "--data-root", str(synth_root), "--max-queued", "2") as server:
        # one job runs (frozen, so it cannot end meanwhile) and holds the only place: the rest wait
        assert server.request("POST", "/v1/jobs", alice, submit_body(slow_yaml, name="busy")).status == 201
        def started() -> bool:
            busy = server.request("GET", "/v1/jobs/busy", alice).json()["job"]
            return busy["state"] == "running" and busy["pid"] is not None

        wait_for(started)
        with frozen(ws, "busy"):
            for name in ("w1", "w2"):
                assert server.request("POST", "/v1/jobs", alice, submit_body(job_yaml, name=name)).status == 201
            refused = server.request("POST", "/v1/jobs", alice, submit_body(job_yaml, name="w3"))
            assert refused.status == 429 and "--max-queued" in refused.json()["error"]
            assert server.request("POST", "/v1/jobs", bob, submit_body(job_yaml, name="b1")).status == 201
            assert server.request("POST", "/v1/jobs/w1/cancel", alice).status == 200
            assert server.request("POST", "/v1/jobs", alice, submit_body(job_yaml, name="w3")).status == 201
            for name in ("busy", "w2", "w3", "b1"):
                assert server.request("POST", f"/v1/jobs/{name}/cancel", alice).status == 200


def test_bodies_are_checked_after_the_token_and_capped_when_chunked(ws):
    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS, "--max-body", "4096") as server:
        broken = server.request("POST", "/v1/jobs", None, b"{not json", headers={"Content-Type": "application/json"})
        assert broken.status == 401
        parts = urlsplit(server.url)
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
            conn.sendall(f"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                         "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
            piece = b"x" * 1024
            try:
                for _ in range(16):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.sendall(b"0\r\n\r\n")
            except OSError:
                pass  # the server answered and closed before the whole body arrived
            head = conn.recv(65536)
        assert head.startswith(b"HTTP/1.1 413"), head[:200]


def test_the_page_session_is_a_server_side_id_ended_at_logout_and_with_its_token(ws):
    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS) as server:
        def sign_in() -> dict:
            reply = server.request("POST", "/login", body=f"token={token}".encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert reply.status == 303
            jar = dict(c.split(";")[0].split("=", 1) for c in reply.set_cookies)
            assert token not in jar["lg_session"] and len(jar["lg_session"]) >= 32
            return jar

        jar = sign_in()
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        assert server.request("GET", "/v1/jobs", headers=cookie).status == 200
        assert server.request("GET", "/v1/jobs", headers={"Cookie": f"lg_session={token}"}).status == 401
        logout = {**cookie, "X-CSRF-Token": jar["lg_csrf"], "Origin": server.url}
        assert server.request("POST", "/logout", headers=logout).status == 303
        assert server.request("GET", "/v1/jobs", headers=cookie).status == 401  # the old cookie is dead

        jar = sign_in()
        cookie = {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
        assert server.request("GET", "/v1/jobs", headers=cookie).status == 200
        assert lg(ws, "token", "revoke", "alice").returncode == 0
        assert server.request("GET", "/v1/jobs", headers=cookie).status == 401


def test_names_are_checked_whole_and_the_workspace_is_private(ws, job_yaml):
    one_line_error(lg(ws, "token", "create", "--name", "spoof\n"), "is invalid")
    one_line_error(lg(ws, "submit", str(job_yaml), "--name", "spoof\n"), "is invalid")
    one_line_error(lg(ws, "submit", str(job_yaml), "train.epochs=99999999999999999999999999"), "64 bits")
    create_token(ws, "alice")
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700
    assert stat.S_IMODE(Workspace(ws).db_path.stat().st_mode) == 0o600


class Flood:
    """``idle`` connections that send nothing and ``slow`` ones that send a header line every two
    seconds and never finish, kept at those numbers (a closed one is opened again) until stopped."""

    def __init__(self, server: Server, idle: int, slow: int, cert: Path | None = None):
        parts = urlsplit(server.url)
        self.address = (parts.hostname, parts.port)
        self.context = ssl.create_default_context(cafile=str(cert)) if cert else None
        self.idle = [self._open() for _ in range(idle)]
        self.slow = [self._open(b"GET /v1/jobs HTTP/1.1\r\n") for _ in range(slow)]
        self.reopened = 0

    def _open(self, first: bytes = b"") -> socket.socket | None:
        try:
            sock = socket.create_connection(self.address, timeout=5)
            if self.context is not None:
                sock = self.context.wrap_socket(sock, server_hostname=self.address[0])
            if first:
                sock.sendall(first)
            return sock
        except OSError:
            return None

    def keep_up(self) -> None:
        """One round: a header line on every slow connection; every closed one opened again."""
        for group, line in ((self.idle, b""), (self.slow, b"X-Slow: 1\r\n")):
            for i, sock in enumerate(group):
                if sock is not None and self._alive(sock, line):
                    continue
                if sock is not None:
                    sock.close()
                group[i] = self._open(b"GET /v1/jobs HTTP/1.1\r\n" if line else b"")
                self.reopened += 1

    @staticmethod
    def _alive(sock: socket.socket, line: bytes) -> bool:
        try:
            if line:
                sock.sendall(line)
            sock.setblocking(False)
            try:
                return sock.recv(1) != b""
            except (BlockingIOError, ssl.SSLWantReadError):
                return True
            finally:
                sock.setblocking(True)
        except OSError:
            return False

    def close(self) -> None:
        for sock in self.idle + self.slow:
            if sock is not None:
                sock.close()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_held_idle_and_slow_connections_do_not_lock_the_service_out(ws, tls, tls_pair):
    import time

    token = create_token(ws, "alice")
    with Server(ws, *NO_JOBS, tls=tls_pair if tls else None) as server:
        def timed(path: str, auth: str | None) -> float:
            started = time.monotonic()
            if tls:
                status, _ = https_request(server, tls_pair[0], "GET", path, auth)
            else:
                status = server.request("GET", path, auth, timeout=5).status
            assert status == 200, (path, status)
            return time.monotonic() - started

        flood = Flood(server, idle=300, slow=300, cert=tls_pair[0] if tls else None)
        parts = urlsplit(server.url)  # and, under TLS, connections that never start the handshake
        silent = [socket.create_connection((parts.hostname, parts.port)) for _ in range(100 if tls else 0)]
        try:
            worst, end = 0.0, time.monotonic() + 30
            while time.monotonic() < end:  # holding the connections for 30 s IS the test
                flood.keep_up()
                worst = max(worst, timed("/healthz", None), timed("/v1/jobs", token))
                time.sleep(1)
            assert worst < 1.0, worst
        finally:
            flood.close()
            for sock in silent:
                sock.close()
        assert_quiet_log(server)
