"""JobView: the one shape of a job that `status --json`, the API's schema and the remote client share."""
from __future__ import annotations

import json

from largegraph.jobs.store import JobStore
from largegraph.jobs.views import JobView, format_table
from largegraph.jobs.workspace import Workspace

STATUS_JSON_KEYS = [  # the keys `status --json` has always printed, in its order
    "id", "name", "task", "state", "attempt", "max_retries", "failures", "priority", "nproc", "device", "run_dir",
    "epoch", "epochs", "step", "metric", "last_metric", "best_metric", "resumes", "pid", "exit_code", "last_error",
    "cancel_requested", "submitted_at", "started_at", "finished_at", "heartbeat_at", "not_before"]


def test_a_stored_job_viewed_keeps_the_status_json_keys_and_survives_a_round_trip(ws: Workspace, store: JobStore):
    job = store.submit(name="probe", default_base="t", task="node_classification", config="name: t\n", epochs=2,
                       priority=3, max_retries=1, nproc=1, device="cpu", max_restarts=None,
                       paths=lambda n, i: (ws.job_config(i), ws.run_dir(n, i)))
    store.claim("d1", 1, 0)
    view = JobView.of(store.request_cancel("probe"))
    record = view.model_dump()
    assert list(record) == STATUS_JSON_KEYS
    assert record["cancel_requested"] is True and record["state"] == "running" and not view.is_final
    assert JobView.model_validate(json.loads(json.dumps(record))) == view
    assert "cancelling" in format_table([view], view.submitted_at + 5) and format_table([], 0.0) == "no jobs"
    assert job.id == view.id


def test_the_api_describes_the_job_schema(ws: Workspace):
    from largegraph.server.app import create_app
    from largegraph.server.settings import ServerSettings

    app = create_app(ServerSettings(workspace=ws, data_roots=[ws.root], max_body=1 << 20))
    while not hasattr(app, "openapi"):  # under the body-size and header middleware
        app = app.app
    spec = app.openapi()
    assert list(spec["components"]["schemas"]["JobView"]["properties"]) == STATUS_JSON_KEYS
    listed = spec["paths"]["/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert listed == {"$ref": "#/components/schemas/JobList"}
