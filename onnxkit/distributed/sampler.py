"""DistributedSampler: torch.utils.data.distributed.DistributedSampler's arguments and behaviour
(pad to a multiple of the world size or drop the tail, then every num_replicas-th index from
`rank`), shuffled with numpy's generator seeded by (seed, epoch) -- the same order on every rank,
so the shards are disjoint and together cover the epoch."""
import math

import numpy as np

from ..utils.data import Sampler

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None or rank is None:
            from .group import group
            g = group()
            num_replicas = g.world_size if num_replicas is None else num_replicas
            rank = g.rank if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        n = len(dataset) if not isinstance(dataset, int) else dataset
        self._n = n
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self):
        n = self._n
        if self.shuffle:
            indices = np.random.default_rng([self.seed, self.epoch]).permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad <= len(indices):
                indices += indices[:pad]
            else:
                indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self):
        return self.num_samples

    def set_epoch(self, epoch):
        """Shuffle differently in each epoch (call before iterating, as with torch)."""
        self.epoch = epoch
