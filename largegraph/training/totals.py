"""An epoch's running totals (loss, correct predictions, examples, batches, seconds) over all ranks."""
from __future__ import annotations

from largegraph.training import distributed
from largegraph.training.distributed import DistEnv

_SUMMED = ("loss_sum", "correct", "seen")  # per-rank parts that add up to the epoch's figures


class EpochTotals:
    """What an epoch's metrics record reports, kept resumable: a checkpoint taken mid-epoch stores
    the totals so far (summed over ranks, carried by rank 0) and the resumed epoch adds to them."""

    def __init__(self, state: dict | None = None):
        self.values = {"loss_sum": 0.0, "correct": 0, "seen": 0, "batches": 0, "seconds": 0.0, "input_nodes": 0,
                       "sampled_edges": 0, **(state or {})}

    def add(self, loss: float, size: int, correct: int, input_nodes: int = 0, sampled_edges: int = 0) -> None:
        """One batch: its loss and size, and (this rank's) input nodes and message-passing edges."""
        v = self.values
        v["batches"] += 1
        v["input_nodes"] += input_nodes
        v["sampled_edges"] += sampled_edges
        v["loss_sum"] += loss * size
        v["correct"] += correct
        v["seen"] += size

    def add_batch(self, loss: float, batch, correct: int) -> None:
        """One batch record (:class:`~largegraph.training.protocols.Batch`): its size, input nodes and
        message-passing edges (zero for records without blocks)."""
        nodes = batch.input_nodes
        # typed batches hold their input nodes per type
        count = sum(map(len, nodes.values())) if isinstance(nodes, dict) else len(nodes) if nodes is not None else 0
        self.add(loss, batch.size, correct, count,
                 sum(b.num_edges() for b in batch.blocks))

    def add_seconds(self, seconds: float) -> None:
        self.values["seconds"] += seconds

    def gather_on_main(self, dist: DistEnv) -> None:
        """Move every rank's sums into rank 0's (a collective); the others keep zero."""
        if not dist.enabled:
            return
        total = distributed.all_sum([self.values[k] for k in _SUMMED], dist)
        mine = (total[0], int(total[1]), int(total[2])) if dist.is_main else (0.0, 0, 0)
        self.values.update(zip(_SUMMED, mine))

    def record(self, dist: DistEnv) -> dict:
        """The epoch's figures, the same on every rank (after :meth:`gather_on_main`)."""
        loss_sum, correct, seen = distributed.broadcast(tuple(self.values[k] for k in _SUMMED), dist)
        seconds, batches = self.values["seconds"], self.values["batches"]
        return {"loss": loss_sum / max(seen, 1), "batch_train_acc": correct / max(seen, 1), "seeds": seen,
                "time_s": seconds, "batches_per_s": batches / max(seconds, 1e-9),
                "nodes_per_s": seen / max(seconds, 1e-9),
                # this rank's, what the time per epoch grows with (largegraph bench --sweep)
                "input_nodes_per_batch": self.values["input_nodes"] / max(batches, 1),
                "sampled_edges": self.values["sampled_edges"]}

    def state_dict(self) -> dict:
        return dict(self.values)

    @classmethod
    def resumed(cls, state: dict, rank: int) -> "EpochTotals":
        totals = cls(state)
        if rank:  # saved sums are over the ranks that wrote them; rank 0 carries them
            totals.values.update(loss_sum=0.0, correct=0, seen=0)
        return totals
