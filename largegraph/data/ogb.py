"""Node-property datasets through OGB's own DGL loader, for official OGB names and for datasets
that largegraph wrote in OGB's layout.

OGB's loader downloads missing files and asks questions on stdin (large downloads; "update the
dataset?" when the ``RELEASE_v*.txt`` marker is missing). Machines running largegraph often have no
internet and no terminal, so every file OGB would look for is checked here first, and stdin is
closed while OGB runs: a question that slips through fails instead of hanging a job.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import io
import os
import sys
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from largegraph.data.graph import GraphData
from largegraph.data.ogb_layout import META_FILE, dataset_dir_name, read_meta
from largegraph.errors import DatasetError


def official_node_meta() -> pd.DataFrame:
    """OGB's master table of node-property datasets (one column per dataset)."""
    import ogb.nodeproppred

    path = Path(ogb.nodeproppred.__file__).parent / "master.csv"
    return pd.read_csv(path, index_col=0, keep_default_na=False)


def _official_dir(root: Path, name: str) -> Path:
    plain = root / dataset_dir_name(name)
    # OGB prefers a previously downloaded "<name>_dgl" folder when it exists; so do we.
    dgl_variant = root / (dataset_dir_name(name) + "_dgl")
    return dgl_variant if dgl_variant.exists() else plain


def _require_files(directory: Path, meta: dict, name: str, how_to_get: str) -> None:
    raw_needed = ["data.npz", "node-label.npz"] if meta["binary"] == "True" else ["edge.csv.gz"]
    require_raw_and_marker(directory, meta, name, how_to_get, raw_needed)
    split_dir = directory / "split" / meta["split"]
    if not (split_dir / "split_dict.pt").exists():
        for part in ("train", "valid", "test"):
            path = split_dir / f"{part}.csv.gz"
            if not path.exists():
                raise DatasetError(f"split file {path} is missing; re-extract the dataset")
            if _gzip_is_empty(path):
                raise DatasetError(f"{name}: the {part} split is empty ({path}); every split needs nodes")


def require_raw_and_marker(directory: Path, meta: dict, name: str, how_to_get: str,
                           raw_needed: list[str]) -> None:
    """Check what OGB's loaders (node and link alike) would otherwise download or prompt about: the
    raw files (unless OGB's processed cache exists) and the ``RELEASE_v*.txt`` marker."""
    processed = directory / "processed" / "dgl_data_processed"
    missing = [f"raw/{f}" for f in raw_needed if not (directory / "raw" / f).exists()]
    if not directory.is_dir() or (missing and not processed.exists()):
        raise DatasetError(f"dataset {name} not found: expected {directory}/{missing[0] if missing else ''}; {how_to_get}")
    marker = directory / f"RELEASE_v{meta['version']}.txt"
    if not marker.exists():
        raise DatasetError(
            f"{marker} is missing, so OGB would ask to re-download {name}; restore the marker file from "
            f"OGB's zip (or `touch` it if the files are OGB release v{meta['version']})"
        )


def _gzip_is_empty(path: Path) -> bool:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read(1) == b""
    except (OSError, EOFError):
        raise DatasetError(f"{path} is not a readable gzip file; re-extract the dataset") from None


@contextlib.contextmanager
def _quiet_and_closed_stdin():
    """OGB prints progress to stdout and may call input(); keep stdout for our own output and make
    any prompt fail immediately instead of blocking a headless job."""
    saved = sys.stdin
    sys.stdin = io.StringIO("")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdin = saved


@contextlib.contextmanager
def _dataset_lock(directory: Path):
    """OGB caches the processed graph on first load; concurrent first loads (several ranks or jobs)
    would otherwise write the cache file at the same time."""
    lock_path = directory / ".largegraph.lock"
    try:
        handle = open(lock_path, "a+")
    except OSError:
        # A read-only dataset directory needs no lock: nobody can write its cache either.
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def resolve_dataset(name: str, root: Path, task: str, master: pd.DataFrame,
                    require_files: Callable[[Path, dict, str, str], None],
                    how_to_make: str) -> tuple[Path, dict, bool, dict]:
    """Find dataset ``name`` under ``root``: one largegraph wrote, else an official OGB one.

    Args:
        task: ``node`` or ``link``; a largegraph dataset of the other task is refused.
        master: OGB's master table for that task (one column per official dataset).
        require_files: checks a directory holds every file OGB will read (raises DatasetError).
        how_to_make: the CLI hint for an unknown name.

    Returns:
        (dataset directory, OGB meta_dict, is_official, largegraph.json contents or {}).
    """
    if not root.is_dir():
        raise DatasetError(f"data.root {root} does not exist or is not a directory; create it or point data.root at your datasets")
    own = root / dataset_dir_name(name)
    if (own / META_FILE).exists():
        meta = read_meta(own)
        if meta.get("task") != task:
            kind = {"node": "node-classification", "link": "link-prediction"}[task]
            raise DatasetError(f"{own} holds a {meta.get('task')} dataset, not a {kind} one")
        ogb_meta = dict(meta["ogb_meta"], dir_path=str(own))
        require_files(own, ogb_meta, name, "rewrite it with `largegraph data`")
        return own, ogb_meta, False, meta
    if name in master:
        directory = _official_dir(root, name)
        meta = dict(master[name])
        how = (f"this machine cannot download; fetch {meta['url']} elsewhere and unzip it into {root} "
               f"so that {root / dataset_dir_name(name)}/raw exists")
        require_files(directory, meta, name, how)
        return directory, meta, True, {}
    known = ", ".join(master.columns)
    raise DatasetError(
        f"unknown dataset {name!r}: not an OGB {task} dataset ({known}) and no largegraph dataset at {own}; "
        f"create one with {how_to_make}"
    )


def read_with_ogb(dataset_cls, split_method: str, name: str, directory: Path, meta: dict, official: bool):
    """Open a dataset with one of OGB's DGL loaders and return ``(dataset, its split)``.

    Under the dataset's lock, with stdin closed (OGB must never prompt), and with OGB's failures
    turned into one DatasetError. ``split_method``: ``get_idx_split`` or ``get_edge_split``.
    """
    with _dataset_lock(directory), _quiet_and_closed_stdin(), warnings.catch_warnings():
        # OGB wraps read-only numpy arrays; the tensors are copied right after, so harmless.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        # OGB's official split files are pickled numpy arrays, which torch 2.6+ refuses by default.
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*weights_only.*")
        try:
            if official:
                dataset = dataset_cls(name, root=str(directory.parent))
            else:
                dataset = dataset_cls(name, meta_dict=meta)
            split = getattr(dataset, split_method)()
        except (EOFError, FileNotFoundError, RuntimeError, ValueError, KeyError, OSError) as exc:
            raise DatasetError(f"OGB could not read {name} from {directory}: {exc}") from None
    return dataset, split


def _read_with_ogb(name: str, directory: Path, meta: dict, official: bool):
    from ogb.nodeproppred import DglNodePropPredDataset

    dataset, split = read_with_ogb(DglNodePropPredDataset, "get_idx_split", name, directory, meta, official)
    return dataset.graph[0], dataset.labels, split


def _labels_to_int(labels: torch.Tensor) -> torch.Tensor:
    labels = labels.reshape(labels.shape[0], -1)
    if labels.shape[1] != 1:
        raise DatasetError(f"labels have {labels.shape[1]} columns; only single-label classification is supported")
    labels = labels[:, 0]
    if labels.is_floating_point():
        # OGB keeps NaN for unlabelled nodes (ogbn-papers100M); -1 marks them for us.
        labels = torch.where(torch.isnan(labels), torch.full_like(labels, -1), labels)
    return labels.to(torch.int64)


def load_ogb_node_dataset(name: str, root: str | os.PathLike) -> GraphData:
    """Load a node dataset exactly as OGB stores it (no reverse edges or self-loops added yet).

    Args:
        name: an official OGB name (``ogbn-arxiv``) or a dataset largegraph wrote under ``root``.
        root: the directory holding dataset folders.

    Returns:
        GraphData with raw OGB graph, int64 labels (-1 = unlabelled) and the dataset's own split.

    Raises:
        DatasetError: unknown name, missing files, or malformed contents.
    """
    root = Path(root).expanduser()
    directory, meta, official, _ = resolve_dataset(
        name, root, "node", official_node_meta(), _require_files,
        "`largegraph data synth node` or `largegraph data import`")
    if meta["is hetero"] == "True":
        raise DatasetError(f"{name} is a heterogeneous graph; largegraph trains on homogeneous graphs")
    if int(meta["num tasks"]) != 1 or "multiclass" not in meta["task type"]:
        raise DatasetError(f"{name} is a {meta['task type']} task with {meta['num tasks']} targets; "
                           f"node classification here needs single-label multiclass data")
    graph, labels, split = _read_with_ogb(name, directory, meta, official)
    if "feat" not in graph.ndata:
        raise DatasetError(f"{name} has no node features; node classification needs them")
    feat = graph.ndata.pop("feat")
    for key in list(graph.ndata.keys()):
        graph.ndata.pop(key)  # e.g. ogbn-arxiv's 'year': never used, never held
    graph.ndata["feat"] = feat if feat.dtype == torch.float32 else feat.to(torch.float32)
    graph.ndata["label"] = _labels_to_int(labels)
    return GraphData(
        name=name,
        graph=graph,
        num_classes=int(meta["num classes"]),
        split={k: torch.as_tensor(np.asarray(v), dtype=torch.int64) for k, v in split.items()},
        metric=meta["eval metric"],
        evaluator_name=name if official else "ogbn-arxiv",
        info={"dir": str(directory), "official": official,
              "inverse_edges_added_by_ogb": meta["add_inverse_edge"] == "True"},
    )
