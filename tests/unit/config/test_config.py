"""Config loading: typed schema, dotted paths in errors, overrides, resolved dumps."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import ROOT  # noqa: E402

from largegraph.config import JobConfig, build_config, dump_config, load_config
from largegraph.core.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(config):
    assert isinstance(load_config(config), JobConfig)


def test_overrides_are_typed_and_nested(tmp_path):
    path = write(tmp_path, "data: {name: x}\n")
    cfg = load_config(path, ["model.hidden=64", "sampler.fanouts=[4,3,2]", "model.num_layers=3",
                             "train.grad_clip=1.5", "data.self_loops=true"])
    assert cfg.model.hidden == 64 and cfg.sampler.fanouts == [4, 3, 2]
    assert cfg.train.grad_clip == 1.5 and cfg.data.self_loops is True


@pytest.mark.parametrize("text, overrides, expected", [
    ("data: {name: x}\nmodel: {hiden: 3}\n", [], "model.hiden: unknown key"),
    ("data: {name: x}\n", ["model.hidden=-1"], "model.hidden: Input should be greater than 0"),
    ("data: {name: x}\n", ["model.hidden=abc"], "model.hidden: Input should be a valid integer"),
    ("data: {name: x}\n", ["sampler.fanouts=[5]"], "sampler.fanouts has 1 entries but model.num_layers is 2"),
    ("data: {name: x}\n", ["sampler.fanouts=[5,0]"], "fanouts must be positive or -1"),
    ("model: {arch: sage}\n", [], "data: required key is missing"),
    ("data: {name: x}\n", ["model.arch=transformer"], "model.arch: Input should be"),
    ("data: {name: x}\n", ["nodot"], "must look like section.key=value"),
    ("data: [1, 2\n", [], "invalid YAML"),
])
def test_bad_configs_name_the_dotted_key(tmp_path, text, overrides, expected):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(write(tmp_path, text), overrides)
    assert expected in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_dump_round_trips_with_defaults(tmp_path):
    cfg = load_config(write(tmp_path, "data: {name: x}\n"), ["train.epochs=3"])
    out = tmp_path / "resolved.yaml"
    dump_config(cfg, out)
    raw = yaml.safe_load(out.read_text())
    assert raw["train"]["epochs"] == 3 and raw["model"]["hidden"] == cfg.model.hidden
    assert JobConfig.model_validate(raw) == cfg


def test_mlp_ignores_fanout_count(tmp_path):
    cfg = load_config(write(tmp_path, "data: {name: x}\n"), ["model.arch=mlp", "model.num_layers=3"])
    assert cfg.model.num_layers == 3


def test_fingerprint_tracks_model_not_schedule(tmp_path):
    path = write(tmp_path, "data: {name: x}\n")
    base = load_config(path).fingerprint()
    assert load_config(path, ["train.epochs=99"]).fingerprint() == base
    assert load_config(path, ["model.hidden=8"]).fingerprint() != base
    assert load_config(path, ["model.activate_output=true"]).fingerprint() != base


def test_fingerprints_of_older_runs_still_match():
    # computed by the release before model.activate_output existed: its checkpoints must still resume
    assert build_config({"data": {"name": "x"}}).fingerprint() == "d5e0e0c8115418aa"
    link = {"task": "link_prediction", "data": {"name": "x"}, "model": {"arch": "gcn", "hidden": 64}}
    assert build_config(link).fingerprint() == "503aa1f392a669d0"
