"""docs/config.md is generated from the job schema: committed copy current, every key documented."""
from __future__ import annotations

from helpers import ROOT  # noqa: E402
from pydantic import BaseModel

from largegraph import config_doc
from largegraph.config import JobConfig

DOC = ROOT / "docs" / "config.md"


def schema_leaves(model: type[BaseModel] = JobConfig, prefix: str = ""):
    """(dotted key, field) of every leaf, walked here independently of config_doc's own walker."""
    for name, field in model.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            yield from schema_leaves(section, f"{prefix}{name}.")
        else:
            yield prefix + name, field


def test_committed_reference_is_current():
    assert DOC.exists(), "docs/config.md is missing: run `python -m largegraph.config_doc`"
    assert DOC.read_text(encoding="utf-8") == config_doc.render(), (
        "docs/config.md is stale (largegraph/config.py changed): run `python -m largegraph.config_doc` "
        "(or `make docs`) and commit the result")


def test_render_is_deterministic():
    assert config_doc.render() == config_doc.render()


def test_every_key_is_in_the_reference():
    text = config_doc.render()
    keys = [key for key, _ in schema_leaves()]
    assert {"sampler.fanouts", "train.ema_decay", "link.num_negatives", "seed", "data.name"} <= set(keys)
    missing = [key for key in keys if f"| `{key}` |" not in text]
    assert not missing, f"keys missing from docs/config.md: {missing}"
    assert sorted(config_doc.leaf_keys()) == sorted(keys)


def test_every_key_has_help_text():
    undocumented = [key for key, field in schema_leaves() if not (field.description or "").strip()]
    assert not undocumented, f"give these fields a description= in largegraph/config.py: {undocumented}"


def test_constraints_and_choices_are_rendered():
    text = config_doc.render()
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines() if line.startswith("| `")}
    assert "1 <= x <= 8" in rows["model.num_layers"]
    assert "0 < x < 1; or `null`" in rows["train.ema_decay"]
    assert "`sage`, `gat`, `gcn`, `mlp`" in rows["model.arch"]
    assert "at least 1 entry" in rows["sampler.fanouts"] and "`[15, 10]`" in rows["sampler.fanouts"]
    assert "| required |" in rows["data.name"]


def test_check_reports_a_stale_file_in_one_line(tmp_path, capsys):
    out = tmp_path / "config.md"
    assert config_doc.main(["--check", "--output", str(out)]) == 1
    assert config_doc.main(["--output", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == config_doc.render()
    capsys.readouterr()
    assert config_doc.main(["--check", "--output", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8").replace("`sampler.fanouts`", "`sampler.fanout`"))
    assert config_doc.main(["--check", "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "python -m largegraph.config_doc" in err
