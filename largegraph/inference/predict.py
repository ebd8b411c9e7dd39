"""A finished run applied again: `largegraph predict` and `largegraph embed`.

The model is rebuilt from the run's resolved config and ``model.pt`` and run by exact layer-wise
inference over a dataset: the run's own, or another one given with ``--data`` (the same graph after
new edges or nodes arrived, say), which must fit the model (feature width, classes, and for a learned
node table its number of nodes). Everything users see is under their own node ids and class names,
from the ``mapping/`` tables that ``largegraph data import`` saved; datasets without them use node
indices. On a typed graph every node type has its own ids (``mapping/<type>/nodeidx2id``): predictions
are for the labelled type's nodes, embeddings for every type's, with a ``type`` column. Long work shows progress bars on stderr; scores and tables are made chunk by chunk.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from largegraph.config import JobConfig, load_config
from largegraph.data import GraphData, LinkData
from largegraph.data.input_files import id_column, read_csv_table
from largegraph.data.node_ids import NodeIds
from largegraph.data.dataset_format import MAPPING_DIR, dataset_dir, read_meta
from largegraph.data.hetero import HeteroGraphData
from largegraph.data.hetero_import import id_mapping_key
from largegraph.core.errors import ConfigError, DatasetError
from largegraph.models import evaluating
from largegraph.training.rundir import RunDir
from largegraph.training.typed import is_typed
from largegraph.core.tables import table_format, write_matrix_npy, write_table

CHUNK = 65536  # output rows per chunk
# Scores held at once when ranking candidate neighbours: (sources x targets) of a block, and its
# (pairs x width) activations for an MLP scorer.
SCORE_BLOCK_VALUES = 1 << 22
ID_MAPPING = "nodeidx2id.csv.gz"
LABEL_MAPPING = "labelidx2label.csv.gz"


@dataclass
class LoadedRun:
    """A run's model on a dataset, ready for inference.

    Attributes:
        run: the run directory.
        cfg: its resolved config (``data`` pointed at the dataset predicted on).
        data: the loaded, prepared dataset (GraphData or LinkData).
        model: the run's weights, in eval mode, on ``device``.
        nodes: original node ids (index i = node i).
        device: where inference runs.
    """

    run: RunDir
    cfg: JobConfig
    data: GraphData | LinkData
    model: torch.nn.Module
    nodes: NodeIds
    device: torch.device

    @property
    def is_link(self) -> bool:
        return self.cfg.task == "link_prediction"

    @property
    def typed(self) -> bool:
        """Whether the model is a typed one (its embeddings come per node type)."""
        return is_typed(self.data)

    def type_ids(self, ntype: str) -> NodeIds:
        """Original ids of the nodes of type ``ntype`` of a typed dataset."""
        return node_ids(self.cfg, self.data.graph.num_nodes(ntype), ntype)

    def embeddings(self) -> torch.Tensor | dict[str, torch.Tensor]:
        """(N, width) exact full-neighbour embeddings of every node (layer-wise inference); for a
        typed model ``{type: (N_t, width)}``."""
        g = self.data.graph
        if self.typed:
            return self.model.encoder.inference(g, self.model.input_features(g), self.cfg.sampler.eval_batch_size,
                                                self.device, progress=True)
        sparse = self.data.sparse_feat  # node data only; link data is dense
        feat = self.model.input_features(g, sparse) if sparse is not None else self.model.input_features(g)
        return self.model.encoder.inference(g, feat, self.cfg.sampler.eval_batch_size, self.device, progress=True)


def load_run(run_dir: str, data: str | None = None, root: str | None = None, device: str = "auto") -> LoadedRun:
    """Rebuild a finished run's model on its dataset (or ``data`` under ``root``).

    Raises:
        ConfigError: not a finished run directory.
        DatasetError: the dataset is missing or does not fit the model (one line saying why).
    """
    from largegraph.core.device import resolve_device
    from largegraph.backends.local import LocalBackend
    from largegraph.training.assembly import build_model

    run = RunDir.existing(run_dir, RunDir.CONFIG)
    if not run.model_path.is_file():
        raise ConfigError(f"{run.path} has no {RunDir.MODEL}: the run has not finished; let it finish "
                          f"(largegraph resume {run.path}) or pick a finished run")
    cfg = load_config(run.config_path)
    trained_on = f"{cfg.data.name} (root {cfg.data.root})"
    if data:
        cfg.data.name = data
    if root:
        cfg.data.root = root
    dev = resolve_device(device)
    dataset = LocalBackend().load_data(cfg)  # inference runs over the whole graph in this process
    model = build_model(cfg, dataset)
    state = torch.load(run.model_path, map_location="cpu", weights_only=True)
    check_fits(state, model.state_dict(), dataset, run, trained_on)
    model.load_state_dict(state)
    model.to(dev).eval()
    return LoadedRun(run, cfg, dataset, model, node_ids(cfg, dataset.num_nodes, labelled_type(cfg, dataset)), dev)


def check_fits(saved: dict, fresh: dict, data, run: RunDir, trained_on: str) -> None:
    """Refuse, in one line, a dataset whose shape the saved weights cannot take."""
    where = f"the model of {run.path} (trained on {trained_on})"
    table = "embedding.weight"
    if table in saved and table not in fresh:
        raise DatasetError(f"{data.name} has {data.feat_dim}-d node features, but {where} learned a node "
                           f"embedding table instead (its graph had none); predict on a featureless graph "
                           f"with the same nodes")
    if table in fresh and table not in saved:
        raise DatasetError(f"{data.name} has no node features, but {where} reads node features; import the "
                           f"graph with the same --features (or --structural) as the training data")
    if set(saved) != set(fresh):
        raise DatasetError(f"{run.model_path} does not match the model its {RunDir.CONFIG} describes "
                           f"(e.g. {sorted(set(saved) ^ set(fresh))[0]}); was it copied from another run?")
    for key, value in saved.items():
        got, want = tuple(value.shape), tuple(fresh[key].shape)
        if got == want:
            continue
        if key == table:
            raise DatasetError(f"{data.name} has {want[0]} nodes, but {where} learned an embedding table of "
                               f"{got[0]} nodes; a learned node table applies only to the graph it was "
                               f"trained on (same nodes), so retrain on the grown graph")
        if key.startswith("head."):
            raise DatasetError(f"{data.name} has {want[0]} classes, but {where} predicts {got[0]}; use a "
                               f"dataset labelled with the training data's classes")
        trained = next((g for g, w in zip(got, want) if g != w), "?")
        raise DatasetError(f"{data.name} has {data.feat_dim}-d node features, but {where} takes {trained}-d "
                           f"features ({key} has shape {got}); use features with the training data's columns")


# --- ids and class names -------------------------------------------------------------------------------
def _mapping(cfg: JobConfig, file: str) -> pd.DataFrame | None:
    path = dataset_dir(cfg.data.root, cfg.data.name) / MAPPING_DIR / file
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def labelled_type(cfg: JobConfig, data) -> str | None:
    """The node type whose nodes a node-classification run predicts when its dataset is typed (also
    for an MLP, which sees that type alone); None for an untyped dataset or a link run."""
    if isinstance(data, HeteroGraphData):
        return data.target
    if cfg.task == "link_prediction" or is_typed(data):
        return None
    return read_meta(dataset_dir(cfg.data.root, cfg.data.name)).get("label_type")


def node_ids(cfg: JobConfig, num_nodes: int, ntype: str | None = None) -> NodeIds:
    """Original ids of the dataset's nodes, or of its nodes of type ``ntype`` (node indices when it
    has no id mapping)."""
    file = ID_MAPPING if ntype is None else f"{id_mapping_key(ntype)}.csv.gz"
    table = _mapping(cfg, file)
    if table is None or len(table) != num_nodes:
        return NodeIds([np.arange(num_nodes).astype(str).astype(object)], integer=True)
    id_type = read_meta(dataset_dir(cfg.data.root, cfg.data.name)).get("info", {}).get("id_type")
    integer = (id_type.get(ntype) if isinstance(id_type, dict) else id_type) == "int"  # typed: one per type
    ids = NodeIds([table["id"].to_numpy(dtype=object)], integer)
    if len(ids) != num_nodes:
        raise DatasetError(f"{cfg.data.name}: {MAPPING_DIR}/{file} lists {len(ids)} distinct ids for "
                           f"{num_nodes} nodes; re-import the dataset")
    return ids


def class_names(run_cfg: JobConfig, cfg: JobConfig, num_classes: int) -> list[str]:
    """The run's class names (its training dataset's label mapping, else class ids); a predicted
    dataset that names its classes otherwise is refused."""
    trained = _mapping(run_cfg, LABEL_MAPPING)
    here = _mapping(cfg, LABEL_MAPPING)
    if trained is not None and here is not None and not trained["label"].equals(here["label"]):
        raise DatasetError(f"{cfg.data.name} names its classes differently from the run's training data "
                           f"{run_cfg.data.name}; import it with the same labels")
    table = trained if trained is not None else here
    if table is None or len(table) != num_classes:
        return [str(c) for c in range(num_classes)]
    return table["label"].tolist()


def read_node_list(path: str, nodes: NodeIds, data_name: str, id_col: str = "id") -> np.ndarray:
    """Node indices of the original ids in a CSV (column ``id_col``, or its only column)."""
    frame = read_csv_table(Path(path), "nodes")
    col = id_col if id_col in frame.columns or frame.shape[1] != 1 else frame.columns[0]
    return lookup(nodes, id_column(frame, col, Path(path), "nodes", "a column named id"), path, data_name)


def lookup(nodes: NodeIds, raw: np.ndarray, path: str, data_name: str) -> np.ndarray:
    idx = nodes.lookup(raw)
    if (idx < 0).any():
        bad = np.flatnonzero(idx < 0)
        raise DatasetError(f"{path}: {len(bad)} id(s) are not nodes of {data_name} (first {raw[bad[0]]!r} on line "
                           f"{bad[0] + 2}); list ids of the dataset's graph")
    return idx


# --- node classification --------------------------------------------------------------------------------
def predict_nodes(loaded: LoadedRun, out: str, selected: np.ndarray | None, top_k: int | None) -> int:
    """Write ``id, pred`` and the class probabilities (or the top-k classes) of the selected nodes."""
    run_cfg = load_config(loaded.run.config_path)
    names = class_names(run_cfg, loaded.cfg, loaded.data.num_classes)
    if top_k is not None and top_k > len(names):
        raise ConfigError(f"--top-k {top_k} exceeds the model's {len(names)} classes")
    emb = loaded.embeddings()
    if loaded.typed:
        emb = emb[loaded.data.target]  # the labelled type's; loaded.nodes holds its ids
    rows = np.arange(loaded.data.num_nodes) if selected is None else selected
    head = loaded.model.head
    names_arr = np.array(names, dtype=object)

    def chunks():
        for start in tqdm(range(0, len(rows), CHUNK), desc="predict", disable=len(rows) <= CHUNK):
            idx = rows[start:start + CHUNK]
            with torch.no_grad():
                prob = torch.softmax(head(emb[idx].to(loaded.device)).float(), dim=1).cpu().numpy()
            frame = pd.DataFrame({"id": loaded.nodes.ids[idx], "pred": names_arr[prob.argmax(axis=1)]})
            if top_k is None:
                for c, name in enumerate(names):
                    frame[f"prob_{name}"] = prob[:, c]
            else:
                best = np.argsort(-prob, axis=1, kind="stable")[:, :top_k]
                for k in range(top_k):
                    frame[f"top{k + 1}"] = names_arr[best[:, k]]
                    frame[f"top{k + 1}_prob"] = prob[np.arange(len(idx)), best[:, k]]
            yield frame

    return write_table(out, chunks())


# --- link prediction ------------------------------------------------------------------------------------
def _scores(loaded: LoadedRun, emb: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    chunk = max(1, SCORE_BLOCK_VALUES // emb.shape[1])
    out = [loaded.model.scorer(emb[s].to(loaded.device), emb[d].to(loaded.device)).float().cpu()
           for s, d in zip(src.split(chunk), dst.split(chunk))]
    return torch.cat(out) if out else torch.empty(0)


def score_pairs(loaded: LoadedRun, pairs_path: str, out: str, src_col: str | None, dst_col: str | None) -> int:
    """Write ``src, dst, score`` for every candidate pair of original ids in ``pairs_path``."""
    from largegraph.data.input_files import read_edges

    src_raw, dst_raw, _ = read_edges(Path(pairs_path), src_col, dst_col)
    src = lookup(loaded.nodes, src_raw, pairs_path, loaded.data.name)
    dst = lookup(loaded.nodes, dst_raw, pairs_path, loaded.data.name)
    emb = loaded.embeddings()
    with torch.no_grad(), evaluating(loaded.model):
        scores = _scores(loaded, emb, torch.from_numpy(src), torch.from_numpy(dst)).numpy()
    ids = loaded.nodes.ids
    return write_table(out, (pd.DataFrame({"src": ids[src[s:s + CHUNK]], "dst": ids[dst[s:s + CHUNK]],
                                            "score": scores[s:s + CHUNK]}) for s in range(0, len(src), CHUNK)))


def _known_neighbours(data, sources: np.ndarray) -> list[set]:
    """Nodes already joined to each source by an edge of any split (either direction)."""
    from largegraph.data.dataset_format import SPLITS, positive_pairs

    pairs = np.concatenate([positive_pairs({k: v.numpy() for k, v in data.split[p].items()}, data.split_style)
                            for p in SPLITS])
    wanted = np.zeros(data.num_nodes, dtype=bool)
    wanted[sources] = True
    known: dict[int, set] = {int(s): set() for s in sources}
    for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        hit = wanted[a]
        for u, v in zip(a[hit].tolist(), b[hit].tolist()):
            known[u].add(v)
    return [known[int(s)] for s in sources]


def top_k_neighbours(loaded: LoadedRun, for_path: str, k: int, out: str) -> int:
    """Write ``id, rank, neighbour, score``: each listed node's ``k`` best-scored nodes it has no edge
    to yet (itself excluded), scoring every node in blocks."""
    sources = read_node_list(for_path, loaded.nodes, loaded.data.name)
    n = loaded.data.num_nodes
    if k >= n:
        raise ConfigError(f"--top-k {k} must be below the graph's {n} nodes")
    emb = loaded.embeddings()
    known = _known_neighbours(loaded.data, sources)
    per_source = max(1, SCORE_BLOCK_VALUES // (n * emb.shape[1]))
    ids = loaded.nodes.ids

    def chunks():
        targets = torch.arange(n)
        for start in tqdm(range(0, len(sources), per_source), desc="top-k", disable=len(sources) <= per_source):
            block = sources[start:start + per_source]
            src = torch.from_numpy(block).repeat_interleave(n)
            with torch.no_grad(), evaluating(loaded.model):
                scores = _scores(loaded, emb, src, targets.repeat(len(block))).view(len(block), n)
            for row, s in enumerate(block):
                scores[row, [int(s), *known[start + row]]] = -torch.inf
            best = torch.topk(scores, k, dim=1)
            frame = pd.DataFrame({
                "id": np.repeat(ids[block], k), "rank": np.tile(np.arange(1, k + 1), len(block)),
                "neighbour": ids[best.indices.reshape(-1).numpy()], "score": best.values.reshape(-1).numpy()})
            yield frame[np.isfinite(frame["score"].to_numpy())]  # a node joined to nearly all others has fewer

    return write_table(out, chunks())


# --- embeddings -----------------------------------------------------------------------------------------
def export_embeddings(loaded: LoadedRun, out: str, selected: np.ndarray | None) -> int:
    """Write the embeddings of the selected nodes: ``.npy`` (rows in node order, original ids in
    ``<out stem>.ids.csv`` beside it), or a CSV / Parquet table of ``id, e0, e1, ...``."""
    fmt = table_format(out, {".npy": "npy"})
    if loaded.typed:
        return _export_typed_embeddings(loaded, out, fmt)
    emb = loaded.embeddings()
    rows = np.arange(loaded.data.num_nodes) if selected is None else selected
    ids = loaded.nodes.ids
    if fmt == "npy":
        path = Path(out)
        write_table(path.with_name(path.stem + ".ids.csv"),
                    (pd.DataFrame({"id": ids[rows[s:s + CHUNK]]}) for s in range(0, len(rows), CHUNK)))
        write_matrix_npy(path, (emb[rows[s:s + CHUNK]].numpy() for s in range(0, len(rows), CHUNK)),
                         (len(rows), emb.shape[1]))
        return len(rows)

    def chunks():
        for s in range(0, len(rows), CHUNK):
            idx = rows[s:s + CHUNK]
            frame = pd.DataFrame(emb[idx].numpy(), columns=[f"e{j}" for j in range(emb.shape[1])])
            frame.insert(0, "id", ids[idx])
            yield frame

    return write_table(out, chunks())



def _export_typed_embeddings(loaded: LoadedRun, out: str, fmt: str) -> int:
    """Every node of every type, types in name order: ``type, id, e0, ...`` tables, or one ``.npy``
    of all rows with ``type, id`` in ``<out stem>.ids.csv`` beside it."""
    emb = loaded.embeddings()
    types = sorted(emb)
    ids = {t: loaded.type_ids(t).ids for t in types}

    def id_frames():
        for t in types:
            for s in range(0, len(ids[t]), CHUNK):
                yield pd.DataFrame({"type": t, "id": ids[t][s:s + CHUNK]})

    total = sum(len(ids[t]) for t in types)
    if fmt == "npy":
        path = Path(out)
        write_table(path.with_name(path.stem + ".ids.csv"), id_frames())
        write_matrix_npy(path, (emb[t][s:s + CHUNK].numpy() for t in types for s in range(0, len(ids[t]), CHUNK)),
                         (total, loaded.model.encoder.out_dim))
        return total

    def chunks():
        for frame, rows in zip(id_frames(), (emb[t][s:s + CHUNK] for t in types for s in range(0, len(ids[t]), CHUNK))):
            yield pd.concat([frame, pd.DataFrame(rows.numpy(), columns=[f"e{j}" for j in range(rows.shape[1])])], axis=1)

    write_table(out, chunks())
    return total
