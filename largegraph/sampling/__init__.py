"""Mini-batches for training: which seeds, in what order, sampled how, delivered where.

* :mod:`~largegraph.sampling.order`: an epoch's seed order and its sharding over ranks.
* :mod:`~largegraph.sampling.samplers`: what is sampled per batch (neighbours, negatives), seeded.
* :mod:`~largegraph.sampling.loaders`: delivery (DGL's DataLoader, in-process or in workers).
* :mod:`~largegraph.sampling.batches`: the batch records the trainer consumes.

The trainer sees only batch records from a loader's ``epoch(e, start)``; a loader over a DistGraph
or a pipelined one can replace these without touching it.

Reproducibility: the seed order of epoch ``e`` is a permutation drawn from ``(seed, e)``, and DGL's
sampling RNG is re-seeded before every batch from ``(seed, e, first seed of the batch)``. Batch ``b``
of epoch ``e`` is therefore the same whether or not the run was interrupted, whichever worker process
samples it, and whatever the number of workers: sampling runs on one OpenMP thread, because DGL's
multi-threaded CPU sampler is not repeatable for a fixed seed.
"""
from largegraph.sampling.batches import EdgeMiniBatch, MiniBatch
from largegraph.sampling.loaders import EdgeBatchLoader, NodeBatchLoader
from largegraph.sampling.order import BatchList, count_batches, epoch_order
from largegraph.sampling.samplers import SeededNegatives, SeededNeighborSampler, SeedOnlySampler

__all__ = ["BatchList", "EdgeBatchLoader", "EdgeMiniBatch", "MiniBatch", "NodeBatchLoader", "SeedOnlySampler",
           "SeededNegatives", "SeededNeighborSampler", "count_batches", "epoch_order"]
