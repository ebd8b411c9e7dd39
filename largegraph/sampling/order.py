"""An epoch's seed order and its sharding over data-parallel ranks."""
from __future__ import annotations

import torch

from largegraph.core.rng import mix_seed


def count_batches(num_seeds: int, batch_size: int, world_size: int = 1, drop_last: bool = False) -> int:
    """How many batches each of ``world_size`` ranks runs over ``num_seeds`` seeds (see BatchList)."""
    step = batch_size * world_size
    if drop_last:
        return num_seeds // step
    count = -(-num_seeds // step)
    # A last global batch too small to give every rank a seed is folded into the one before it.
    if count > 1 and num_seeds - (count - 1) * step < world_size:
        count -= 1
    return count


class BatchList(torch.utils.data.Dataset):
    """An epoch's seed order cut into batches, as a map-style dataset of whole batches.

    DGL's own tensor dataset hands each worker a contiguous range of batches, and torch then
    interleaves the workers, so batches would arrive in a different order with 0 and N workers.
    A map-style dataset is delivered in index order however many workers sample it.

    Data parallelism: the order is cut into *global* batches of ``batch_size * world_size`` seeds
    and rank ``r`` trains on the r-th of ``world_size`` equal slices of each. The ranks' shards are
    therefore disjoint and together cover the order, every rank runs the same number of steps
    (DDP needs that), and after ``k`` global batches exactly a prefix of the order is consumed,
    whatever the world size: that is what lets a run resume with another number of workers.
    DGL's ``use_ddp`` pads each rank's shard with repeated seeds and fixes which seeds a rank gets
    for the whole epoch, so neither property would hold with it.
    """

    def __init__(self, order: torch.Tensor, batch_size: int, drop_last: bool, rank: int = 0, world_size: int = 1):
        self.order = order
        self.step = batch_size * world_size
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.device = order.device  # DGL's DataLoader asks a custom dataset where its indices live
        self.length = count_batches(len(order), batch_size, world_size, drop_last)

    def __len__(self) -> int:
        return self.length

    def end(self, i: int) -> int:
        """How many seeds of the order are consumed once global batch ``i`` is done."""
        if i == self.length - 1 and not self.drop_last:
            return len(self.order)
        return (i + 1) * self.step

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.length:
            raise IndexError(i)  # ends plain iteration, which DGL uses to inspect datasets
        chunk = self.order[i * self.step:self.end(i)]
        piece = torch.tensor_split(chunk, self.world_size)[self.rank]
        # Only when a run resumes with more ranks than seeds left in the epoch: a rank with nothing
        # to do repeats the batch's last seed rather than stalling its peers in DDP.
        return piece if len(piece) else chunk[-1:]


def epoch_order(seeds: torch.Tensor, base_seed: int, epoch: int, shuffle: bool) -> torch.Tensor:
    """The seed order of one epoch: a function of (base_seed, epoch) only."""
    if not shuffle:
        return seeds
    gen = torch.Generator().manual_seed(mix_seed(base_seed, epoch, 0x5EED))
    return seeds[torch.randperm(len(seeds), generator=gen)]
