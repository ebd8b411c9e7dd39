"""A tiny ogbn-mag-shaped typed graph built with dgl.heterograph, for unit tests of typed sampling,
models and tasks (imported as ``from typed_graphs import ...``; tests/ is on sys.path)."""
from __future__ import annotations

import dgl
import torch

from largegraph.data.hetero import HeteroGraphData, HeteroLinkData, reverse_name

RELATIONS = [("paper", "cites", "paper"), ("author", "writes", "paper"), ("paper", "has_topic", "field")]


def mag_toy(seed: int = 0, papers: int = 300, authors: int = 200, fields: int = 20, classes: int = 4,
            reverse: bool = True) -> dgl.DGLHeteroGraph:
    """Papers with 16-d features and labels that follow a feature direction; featureless authors and
    fields; reverse relations ``rev_<rel>`` (edge i the reverse of edge i) unless ``reverse`` is False."""
    gen = torch.Generator().manual_seed(seed)
    sizes = {"paper": papers, "author": authors, "field": fields}
    counts = {"cites": 1200, "writes": 900, "has_topic": 600}
    edges = {r: (torch.randint(0, sizes[r[0]], (counts[r[1]],), generator=gen),
                 torch.randint(0, sizes[r[2]], (counts[r[1]],), generator=gen)) for r in RELATIONS}
    if reverse:
        edges.update({reverse_name(r): (v, u) for r, (u, v) in list(edges.items())})
    g = dgl.heterograph(edges, num_nodes_dict=sizes)
    feat = torch.randn(papers, 16, generator=gen)
    g.nodes["paper"].data["feat"] = feat
    g.nodes["paper"].data["label"] = (feat[:, :classes]).argmax(dim=1)
    return g


def mag_toy_data(**kwargs) -> HeteroGraphData:
    """Node classification of the toy graph's papers: 200 train, 50 valid, 50 test."""
    g = mag_toy(**kwargs)
    split = {"train": torch.arange(0, 200), "valid": torch.arange(200, 250), "test": torch.arange(250, 300)}
    return HeteroGraphData("mag-toy", g, "paper", 4, split)


def mag_toy_links(relation=("author", "writes", "paper")) -> HeteroLinkData:
    """Link prediction of ``relation`` on the toy graph (held-out pairs without stored negatives)."""
    pairs = {part: {"source_node": torch.arange(lo, lo + 20), "target_node": torch.arange(lo, lo + 20)}
             for part, lo in (("train", 0), ("valid", 20), ("test", 40))}
    return HeteroLinkData("mag-toy-links", mag_toy(), relation, pairs)
