"""The status page in a real browser: headless Chromium, driven over the DevTools protocol, signs in
with the form, watches a running job's row and curve appear and update, and leaves screenshots.

Chromium comes from the system (Debian's `chromium` package; .ci/run installs it); without it, or
without the `websockets` test dependency, the test is skipped and says why. As elsewhere, nothing
relies on the trainer's speed: the job is frozen (SIGSTOP) while the page is checked mid-run.
"""
from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import pytest
from helpers import write_config
from httpserver import Server, create_token
from test_job_service import SLOW_JOB, epochs_done, frozen, job, wait_for

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SCREENSHOTS_ENV = "LARGEGRAPH_SCREENSHOTS"  # a folder to copy the screenshots into (CI artifacts)


def _browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


class Browser:
    """One headless Chromium page, controlled through the DevTools protocol on a loopback port."""

    def __init__(self, executable: str, profile: Path):
        from websockets.sync.client import connect

        profile.mkdir(parents=True, exist_ok=True)
        self.log_path = profile.parent / "chromium.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [executable, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--window-size=1280,1000",
                 # no calls home: on a machine without internet they only fail, many at a time
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-quic",
                 "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                 "about:blank"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        # Chromium writes the port it picked to this file once it listens.
        active = profile / "DevToolsActivePort"
        port = wait_for(lambda: active.exists() and active.read_text().split("\n")[0].strip(), timeout=60,
                        explain=lambda: self.log_path.read_text()[-2000:])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as reply:
            page = next(t for t in json.loads(reply.read()) if t["type"] == "page")
        self._closing = ExitStack()
        self.conn = self._closing.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=30))
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        """One DevTools command and its result (events that arrive meanwhile are ignored)."""
        sent = next(self.ids)
        self.conn.send(json.dumps({"id": sent, "method": method, "params": params}))
        while True:
            message = json.loads(self.conn.recv(timeout=60))
            if message.get("id") == sent:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]

    def js(self, expression: str):
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        """Go to ``url`` and wait until the new document (or the one it redirected to) has loaded."""
        self.js("window.__previousPage = true")
        self.call("Page.navigate", url=url)
        wait_for(lambda: self.js("window.__previousPage === undefined && document.readyState === 'complete'"))

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def close(self) -> None:
        try:
            self._closing.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _keep(*shots: Path) -> None:
    """Say where the screenshots are, and copy them where CI collects artifacts if asked to."""
    target = os.environ.get(SCREENSHOTS_ENV)
    for shot in shots:
        print(f"status page screenshot: {shot}")
        if target:
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(target) / shot.name)


@pytest.mark.slow
def test_status_page_shows_a_running_job_and_its_curve_updating(tmp_path, synth_root):
    executable = _browser()
    if executable is None:
        pytest.skip("no Chromium on PATH: install Debian's `chromium` package (.ci/run does under CI)")
    pytest.importorskip("websockets", reason="the browser is driven with the `websockets` test dependency")
    ws = tmp_path / "ws"
    config = write_config(tmp_path / "social.yaml", "tiny", synth_root, **SLOW_JOB)
    token = create_token(ws, "viewer")
    with Server(ws, "--data-root", str(synth_root)) as server:
        body = {"config": config.read_text(), "source": str(config), "name": "social"}
        assert server.request("POST", "/v1/jobs", token, body).status == 201
        browser = Browser(executable, tmp_path / "chromium-profile")
        try:
            browser.open(f"{server.url}/")
            assert browser.js("location.pathname") == "/login"  # the page needs a token too
            browser.js(f"document.getElementById('token').value = {json.dumps(token)}; "
                       "document.querySelector('form').submit()")
            wait_for(lambda: browser.js("location.pathname") == "/")
            assert browser.js("document.cookie").count("lg_session") == 0  # HttpOnly: out of the script's reach

            run_dir = job(ws, "social").run_dir
            wait_for(lambda: epochs_done(run_dir) >= 1)
            with frozen(ws, "social") as (stopped,):
                done = epochs_done(run_dir)
                cell = "document.querySelector('tr[data-job=\"social\"] td[data-col=\"{}\"]')?.textContent"
                wait_for(lambda: browser.js(cell.format("state")) == "running"
                         and browser.js(cell.format("progress")).startswith(f"{done}/8"),
                         explain=lambda: browser.js("document.querySelector('#jobs').innerText"))
                list_shot = browser.screenshot(tmp_path / "status-page-jobs.png")

                browser.open(f"{server.url}/jobs/social")
                points = "document.getElementById('{}').getAttribute('data-points')"
                wait_for(lambda: browser.js(points.format("loss-chart")) == str(done)
                         and browser.js(points.format("metric-chart")) == str(done)
                         and "attempt 1" in browser.js("document.getElementById('log').textContent"),
                         explain=lambda: browser.js("document.body.innerText")[:2000])
                assert browser.js("document.getElementById('job-state').textContent") == "running"
                assert "name: t" in browser.js("document.getElementById('config').textContent")
                assert browser.js("document.getElementById('cancel').disabled") is False
                job_shot = browser.screenshot(tmp_path / "status-page-job-running.png")
                assert stopped.job.pid
            # Thawed, the job trains on; the page redraws by itself.
            wait_for(lambda: int(browser.js(points.format("loss-chart")) or 0) > done, timeout=240)
            wait_for(lambda: browser.js("document.getElementById('job-state').textContent") == "succeeded",
                     timeout=240)
            assert browser.js(points.format("loss-chart")) == "8"
            assert browser.js("document.getElementById('cancel').disabled") is True
            final_shot = browser.screenshot(tmp_path / "status-page-job-done.png")
        finally:
            browser.close()
    _keep(list_shot, job_shot, final_shot)
