"""The HTTP service's checks on their own: tokens in the store, bind addresses, data roots."""
from __future__ import annotations

import argparse
import sqlite3
from pathlib import Path

import pytest

from largegraph.core.errors import ConfigError, JobError
from largegraph.jobs.store import MIGRATIONS, SCHEMA_VERSION, JobConflict, JobStore
from largegraph.jobs.workspace import Workspace
from largegraph.server.auth import match_token, new_token, token_digest
from largegraph.server.run import check_http_options, is_loopback, parse_bind


def test_tokens_are_stored_as_digests_matched_by_name_and_revocable(store):
    alice, bob = new_token(), new_token()
    assert alice != bob and alice.startswith("lg_") and len(alice) > 40
    store.add_token("alice", token_digest(alice))
    store.add_token("bob", token_digest(bob))
    raw = sqlite3.connect(store.path).execute("SELECT group_concat(digest) FROM tokens").fetchone()[0]
    assert alice not in raw and token_digest(alice) in raw
    live = store.live_tokens()
    assert match_token(live, alice) == "alice" and match_token(live, bob) == "bob"
    assert match_token(live, alice[:-1]) is None and match_token(live, "") is None
    with pytest.raises(JobConflict, match="a live token named 'alice' already exists"):
        store.add_token("alice", token_digest(new_token()))
    assert store.revoke_token("alice") and not store.revoke_token("alice")
    assert match_token(store.live_tokens(), alice) is None
    again = new_token()
    store.add_token("alice", token_digest(again))  # the name is free once revoked
    assert match_token(store.live_tokens(), again) == "alice"
    assert [(t["name"], t["revoked_at"] is not None) for t in store.tokens()] == \
        [("alice", True), ("bob", False), ("alice", False)]


def test_a_version_one_store_is_upgraded_in_place_keeping_its_jobs(tmp_path):
    db = tmp_path / "jobs.db"
    conn = sqlite3.connect(db)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("INSERT INTO jobs (name, task, config, submitted_at) VALUES ('old', 'node_classification', '', 0)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = JobStore(db)
    assert store.get("old").id == 1 and store.live_tokens() == []
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.9.9.9", True), ("::1", True),
                                            ("localhost", True), ("0.0.0.0", False), ("::", False),
                                            ("192.0.2.1", False), ("gpu-node", False)])
def test_only_loopback_addresses_count_as_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_bind_addresses_parse_or_fail_in_one_line():
    assert parse_bind("127.0.0.1:8470") == ("127.0.0.1", 8470)
    assert parse_bind("[::1]:0") == ("::1", 0)
    for bad in ("8470", "127.0.0.1:", ":8470", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(JobError, match="must look like HOST:PORT"):
            parse_bind(bad)


def _http_args(**kw) -> argparse.Namespace:
    spec = dict(http="127.0.0.1:0", tls_cert=None, tls_key=None, insecure=False, max_body=1024, max_connections=256,
                max_follow=3600, max_queued=100, data_root=[])
    spec.update(kw)
    return argparse.Namespace(**spec)


def test_plain_http_beyond_loopback_needs_tls_or_insecure(tmp_path):
    check_http_options(_http_args())
    with pytest.raises(JobError, match="refusing to serve plain http on 0.0.0.0"):
        check_http_options(_http_args(http="0.0.0.0:8470"))
    check_http_options(_http_args(http="0.0.0.0:8470", insecure=True))
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    check_http_options(_http_args(http="0.0.0.0:8470", tls_cert=str(cert), tls_key=str(key)))
    with pytest.raises(JobError, match="go together"):
        check_http_options(_http_args(tls_cert=str(cert)))
    with pytest.raises(JobError, match="is not a directory"):
        check_http_options(_http_args(data_root=[str(tmp_path / "missing")]))


def test_datasets_must_lie_under_a_data_root_symlinks_resolved(tmp_path):
    from largegraph.config import build_config
    from largegraph.server.api import check_data_root

    allowed, other = tmp_path / "data", tmp_path / "other"
    (allowed / "tiny").mkdir(parents=True)
    other.mkdir()
    (allowed / "escape").symlink_to(other)

    def check(root: Path, name: str) -> None:
        cfg = build_config({"data": {"name": name, "root": str(root)}})
        check_data_root(cfg, [allowed.resolve()], "job.yaml")

    check(allowed, "tiny")
    check(allowed / "nested", "new-dataset")  # not there yet, but under the root
    for root, name in ((other, "tiny"), (allowed, "../other/tiny"), (allowed, "/etc"), (allowed / "escape", "x"),
                       (allowed, "escape")):
        with pytest.raises(ConfigError, match="outside the server's data roots"):
            check(root, name)


def test_concurrent_submits_stage_their_configs_apart(tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert len({ws.staging_path() for _ in range(100)}) == 100
