"""Typed CSV import in process: string ids per type, featureless types, an unlabelled graph that serves
link prediction only, and the input problems named in one line."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from largegraph.config import DataConfig
from largegraph.core.errors import DatasetError
from largegraph.data import HeteroLinkData, load_dataset, load_link_data
from largegraph.data.hetero_import import import_hetero_dataset


@pytest.fixture
def files(tmp_path) -> Path:
    (tmp_path / "person.csv").write_text("name,height\nann,1.7\nbo,1.8\ncy,1.6\ndi,1.9\n")
    (tmp_path / "city.csv").write_text("city\nOslo\nRome\nLima\n")
    rows = [("ann", "Oslo"), ("bo", "Rome"), ("cy", "Lima"), ("di", "Oslo"), ("ann", "Rome"), ("bo", "Lima"),
            ("cy", "Oslo"), ("di", "Rome"), ("ann", "Lima"), ("bo", "Oslo"), ("cy", "Rome"), ("di", "Lima")]
    (tmp_path / "visited.csv").write_text("who,where\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n")
    return tmp_path


def test_unlabelled_typed_import_serves_link_prediction_with_ids_per_type(tmp_path, files):
    path = import_hetero_dataset(name="trips", root=tmp_path / "data", nodes=[str(files / "person.csv"),
                                 str(files / "city.csv")], edges=[f"{files / 'visited.csv'}:person:visited:city"])
    cities = pd.read_csv(path / "mapping" / "city" / "nodeidx2id.csv.gz")
    assert cities["id"].tolist() == ["Lima", "Oslo", "Rome"]  # sorted string ids, numbered per type
    cfg = DataConfig(name="trips", root=str(tmp_path / "data"))
    link = load_link_data(cfg)  # the only relation: data.relation may stay unset
    assert isinstance(link, HeteroLinkData) and link.target == ("person", "visited", "city")
    assert link.feat_dims == {"city": 0, "person": 1}
    with pytest.raises(DatasetError, match="has no node labels"):
        load_dataset(cfg)


@pytest.mark.parametrize("nodes, edges, needle", [
    (["person.csv", "person.csv"], ["visited.csv:person:visited:city"], "given by two --nodes files"),
    (["person.csv", "city.csv"], ["visited.csv:person:visited"], "FILE:SRC_TYPE:RELATION:DST_TYPE"),
    (["person.csv", "city.csv"], ["visited.csv:city:visited:person"], "source id 'ann' is not a city id"),
    (["person.csv:2people", "city.csv"], ["visited.csv:person:visited:city"], "must start with a letter"),
])
def test_bad_typed_inputs_are_named(tmp_path, files, nodes, edges, needle):
    with pytest.raises(DatasetError, match=needle):
        import_hetero_dataset(name="bad", root=tmp_path / "data", nodes=[str(files / n) for n in nodes],
                              edges=[str(files / e) for e in edges])
