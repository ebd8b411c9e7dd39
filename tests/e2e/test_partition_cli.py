"""``largegraph partition`` through the CLI: it prints the cut, and a bad part count is one line."""
from __future__ import annotations

import pytest
from helpers import run_cli, write_config


@pytest.mark.slow
def test_the_command_prints_the_cut(synth_root, tmp_path):
    cfg = write_config(tmp_path / "job.yaml", "tiny", synth_root)
    done = run_cli("partition", cfg, "--parts", "2", "--out", tmp_path / "tiny")
    assert done.returncode == 0, done.stderr
    assert "edge cut:" in done.stdout and "metis" in done.stdout
    bad = run_cli("partition", cfg, "--parts", "0", "--out", tmp_path / "x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
