"""Convert a Planetoid release (Cora, CiteSeer, PubMed: Yang, Cohen & Salakhutdinov 2016) into OGB's layout.

The release is a set of Python 2 pickles ``<prefix>.{x,y,allx,ally,tx,ty,graph}`` and a text file
``<prefix>.test.index``. They are read exactly as the original GCN loader (Kipf & Welling) reads them:

* nodes ``0 .. len(allx)-1`` take the rows of ``allx``/``ally``; test row i (of ``tx``/``ty``) belongs
  to node ``test.index[i]`` -- the test ids are not in file order, hence the reordering;
* labels are the argmax of the one-hot rows (a node whose row is all zero, as some CiteSeer test nodes,
  is unlabelled: -1, and is left out of the test split);
* the public split: train = the first ``len(y)`` nodes, valid = the next 500, test = ``test.index``.

Features stay the raw binary bag-of-words; row normalisation is ``data.feature_norm`` in the job config.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from largegraph.data.dataset_format import SPLITS
from largegraph.data.ogb_writer import write_node_dataset
from largegraph.core.errors import DatasetError

PICKLES = ("x", "y", "allx", "ally", "tx", "ty", "graph")
NUM_VALID = 500  # the public split's validation size, as in the GCN and Planetoid papers

# The only globals a Planetoid pickle refers to; anything else would run foreign code on load.
_SAFE_GLOBALS = {
    ("__builtin__", "list"), ("builtins", "list"), ("__builtin__", "object"), ("builtins", "object"),
    ("collections", "defaultdict"), ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
}


class _PlanetoidUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        sparse_class = module.startswith("scipy.sparse") and name.endswith(("_matrix", "_array"))
        if (module, name) not in _SAFE_GLOBALS and not sparse_class:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} (not a Planetoid array)")
        return super().find_class(module, name)


def _load_pickle(path: Path):
    try:
        with open(path, "rb") as handle, warnings.catch_warnings():
            # scipy warns about the old "scipy.sparse.csr" module path these Python 2 pickles name.
            warnings.simplefilter("ignore", DeprecationWarning)
            return _PlanetoidUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError,
            TypeError, IndexError) as exc:
        raise DatasetError(f"cannot read Planetoid file {path}: {' '.join(str(exc).split())}; "
                           f"restore it from the Planetoid release") from None


def _files(src: Path, prefix: str) -> dict[str, Path]:
    files = {key: src / f"{prefix}.{key}" for key in PICKLES + ("test.index",)}
    if not src.is_dir():
        raise DatasetError(f"Planetoid directory {src} does not exist; expected the release files "
                           f"{prefix}.{{x,y,allx,ally,tx,ty,graph,test.index}} there")
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise DatasetError(f"Planetoid files missing in {src}: {', '.join(missing)}; expected "
                           f"{prefix}.{{x,y,allx,ally,tx,ty,graph,test.index}} (wrong --prefix?)")
    return files


def _test_index(path: Path) -> np.ndarray:
    try:
        return np.array([int(line) for line in path.read_text().split()], dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path}: {' '.join(str(exc).split())}; "
                           f"it must hold one node id per line") from None


def _dense(matrix, path: Path) -> np.ndarray:
    if sp.issparse(matrix):
        matrix = matrix.toarray()
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise DatasetError(f"Planetoid file {path} holds an array of shape {matrix.shape}; expected a matrix")
    return matrix


def _undirected_edges(graph, path: Path) -> np.ndarray:
    """Unique undirected pairs (smaller id first) of an adjacency-list dict, without self-loops."""
    if not isinstance(graph, dict):
        raise DatasetError(f"Planetoid file {path} holds a {type(graph).__name__}; expected a dict of adjacency lists")
    src = np.fromiter((u for u, nbrs in graph.items() for _ in nbrs), dtype=np.int64)
    dst = np.fromiter((v for nbrs in graph.values() for v in nbrs), dtype=np.int64)
    keep = src != dst
    pairs = np.stack([np.minimum(src, dst)[keep], np.maximum(src, dst)[keep]], axis=1)
    return np.unique(pairs, axis=0)


def read_planetoid(src_dir: str | os.PathLike, prefix: str = "ind.cora") -> dict:
    """Read a Planetoid release as the GCN loader does.

    Returns:
        dict with ``edges`` (E, 2) undirected unique pairs, ``num_nodes``, ``feat`` (N, D) float32,
        ``labels`` (N,) int64 with -1 for unlabelled, ``num_classes`` and the public ``split``.
    """
    files = _files(Path(src_dir).expanduser(), prefix)
    arrays = {key: _load_pickle(files[key]) for key in PICKLES}
    x, y, allx, ally, tx, ty = (_dense(arrays[k], files[k]) for k in ("x", "y", "allx", "ally", "tx", "ty"))
    test_index = _test_index(files["test.index"])
    if len(test_index) != len(tx) or len(tx) != len(ty) or len(allx) != len(ally) or len(x) != len(y):
        raise DatasetError(f"Planetoid files in {files['x'].parent} disagree in size (x {len(x)}, y {len(y)}, "
                           f"allx {len(allx)}, ally {len(ally)}, tx {len(tx)}, ty {len(ty)}, test.index "
                           f"{len(test_index)}); restore them from one release")
    edges = _undirected_edges(arrays["graph"], files["graph"])
    num_nodes = int(max(len(allx), test_index.max(initial=-1) + 1, edges.max(initial=-1) + 1))
    if test_index.min(initial=num_nodes) < len(allx):
        raise DatasetError(f"{files['test.index']} lists node {test_index.min()} below {len(allx)}, "
                           f"which is a training-pool node (allx); restore the file from the release")

    # Nodes absent from allx and tx (CiteSeer's isolated test-range nodes) keep zero features, no label.
    feat = np.zeros((num_nodes, allx.shape[1]), dtype=np.float32)
    onehot = np.zeros((num_nodes, ally.shape[1]), dtype=np.int64)
    feat[: len(allx)], onehot[: len(allx)] = allx, ally
    feat[test_index], onehot[test_index] = tx, ty
    labels = np.where(onehot.any(axis=1), onehot.argmax(axis=1), -1)

    test = np.sort(test_index)
    train = np.arange(len(y), dtype=np.int64)
    valid = np.arange(len(y), len(y) + NUM_VALID, dtype=np.int64)
    split = dict(zip(SPLITS, (train, valid, test[labels[test] >= 0])))
    return {"edges": edges, "num_nodes": num_nodes, "feat": feat, "labels": labels,
            "num_classes": int(ally.shape[1]), "split": split}


def convert_planetoid(src_dir: str | os.PathLike, root: str | os.PathLike, name: str = "cora",
                      prefix: str = "ind.cora") -> Path:
    """Convert a Planetoid release in ``src_dir`` into ``root/<name>`` (OGB layout, csv files).

    Args:
        src_dir: directory holding ``<prefix>.x``, ``.y``, ``.allx``, ``.ally``, ``.tx``, ``.ty``, ``.graph``
            and ``.test.index``. It is only read.
        root: directory that holds datasets.
        name: dataset name to write.
        prefix: file name prefix (``ind.cora``, ``ind.citeseer``, ``ind.pubmed``).

    Returns:
        The dataset directory.

    Raises:
        DatasetError: missing or unreadable release files.
    """
    src = Path(src_dir).expanduser()
    data = read_planetoid(src, prefix)
    info = {
        "source": "planetoid",
        "src_dir": str(src.absolute()),
        "prefix": prefix,
        "split": "public (train = first len(y), valid = next 500, test = test.index)",
        "features": "raw binary bag-of-words (not row-normalised)",
    }
    return write_node_dataset(
        root, name, edges=data["edges"], num_nodes=data["num_nodes"], feat=data["feat"],
        labels=data["labels"], num_classes=data["num_classes"], split=data["split"], raw_format="csv", info=info,
    )
