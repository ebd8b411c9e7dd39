"""largegraph.core.tables: predict/embed output files appear whole or not at all."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from largegraph.core.errors import ConfigError
from largegraph.core.tables import table_format, write_matrix_npy, write_table


def chunks(fail_after: int | None = None):
    for i in range(3):
        if fail_after is not None and i == fail_after:
            raise RuntimeError("interrupted")
        yield pd.DataFrame({"id": [f"n{i}a", f"n{i}b"], "score": [i + 0.5, -i]})


@pytest.mark.parametrize("name", ["out.csv", "out.parquet"])
def test_chunks_make_one_table_and_a_failure_keeps_the_old_file(tmp_path, name):
    path = tmp_path / name
    assert write_table(path, chunks()) == 6
    read = pd.read_csv(path) if name.endswith(".csv") else pd.read_parquet(path)
    assert list(read["id"]) == ["n0a", "n0b", "n1a", "n1b", "n2a", "n2b"]
    before = path.read_bytes()
    with pytest.raises(RuntimeError):
        write_table(path, chunks(fail_after=2))
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [name]


def test_npy_rows_are_written_in_chunks(tmp_path):
    rows = [np.full((2, 3), i, dtype=np.float32) for i in range(3)]
    write_matrix_npy(tmp_path / "e.npy", iter(rows), (6, 3))
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), np.concatenate(rows))


@pytest.mark.parametrize("name, message", [("out.txt", "unknown extension '.txt'"),
                                           ("missing/out.csv", "does not exist; create it first")])
def test_bad_outputs_are_refused_before_any_work(tmp_path, name, message):
    with pytest.raises(ConfigError, match=message):
        table_format(tmp_path / name)
