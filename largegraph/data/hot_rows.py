"""A small in-RAM cache of the most-sampled feature rows in front of memory-mapped features.

When the feature matrix is larger than the memory left for the page cache, every batch reads some
rows from disk. Neighbour sampling draws a node about in proportion to its degree, so the rows of the
highest-degree nodes are the ones read again and again; keeping those (up to ``data.feature_cache_mb``
per process) in the process's own memory turns most of those reads into memory copies. Rows keep
their stored dtype; the loader converts a batch to float32 as for uncached rows.
"""
from __future__ import annotations

import torch


class HotRows:
    """The rows of the highest in-degree nodes, copied out of ``feat`` once.

    Args:
        feat: the (mapped) ``(N, D)`` feature matrix.
        in_degrees: ``(N,)`` in-degree of every node (how often a node is sampled as a neighbour).
        budget_bytes: most bytes the copied rows may take.
    """

    def __init__(self, feat: torch.Tensor, in_degrees: torch.Tensor, budget_bytes: int):
        self.feat = feat
        row_bytes = max(1, feat.shape[1] * feat.element_size())
        count = min(feat.shape[0], budget_bytes // row_bytes)
        hot = torch.argsort(in_degrees, descending=True, stable=True)[:count]
        # Sorted ids read the mapped file front to back once, instead of seeking for every row.
        hot = torch.sort(hot).values
        self.rows = feat[hot].clone()
        self.slot = torch.full((feat.shape[0],), -1, dtype=torch.int32)
        self.slot[hot] = torch.arange(count, dtype=torch.int32)

    @property
    def num_rows(self) -> int:
        return self.rows.shape[0]

    def __getitem__(self, ids: torch.Tensor) -> torch.Tensor:
        """``feat[ids]``, served from the copied rows where it can."""
        slot = self.slot[ids]
        hit = slot >= 0
        out = torch.empty((len(ids), self.feat.shape[1]), dtype=self.feat.dtype)
        out[hit] = self.rows[slot[hit].long()]
        miss = ~hit
        out[miss] = self.feat[ids[miss]]
        return out
