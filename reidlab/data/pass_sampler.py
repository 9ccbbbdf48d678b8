"""MuDeep v2's identity sampler: an epoch is ``passes`` passes over every identity, K images each.

Each pass shuffles all identities and takes K images of each (without replacement when the identity has at least
K, otherwise with replacement); the passes are concatenated and cut into consecutive batches of P·K, the last
partial batch dropped. On Market-1501 (751 identities, K = 6, 3 passes) that is 13,518 images, 187 batches of 72.
Unlike :class:`~reidlab.data.PKSampler`, every identity is seen equally often whatever its image count; at a pass
boundary one batch may hold an identity in two blocks (harmless with label-based mining). Epochs, seeds, resuming
and DDP sharding behave as in :mod:`reidlab.data.samplers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from reidlab.data.records import Sample
from reidlab.data.samplers import _EpochBatchSampler, group_indices


class IdentityPassSampler(_EpochBatchSampler):
    """``passes`` shuffled passes over the identities, K images each, in consecutive batches of P·K."""

    def __init__(
        self,
        pids: Sequence[int],
        p: int,
        k: int,
        passes: int = 3,
        seed: int = 0,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if p < 1 or k < 1 or passes < 1:
            raise ValueError(f"IdentityPassSampler needs p, k and passes >= 1, got p={p}, k={k}, passes={passes}")
        super().__init__(batch_size=p * k, seed=seed, rank=rank, world_size=world_size)
        self.p, self.k, self.passes = p, k, passes
        self.groups = group_indices(pids)
        if len(self.groups) * k * passes < self.batch_size:
            raise ValueError(f"IdentityPassSampler: {len(self.groups)} identities x {passes} passes x K={k} images "
                             f"cannot fill one batch of {self.batch_size}")  # fmt: skip

    @classmethod
    def from_samples(cls, samples: Sequence[Sample], p: int, k: int, passes: int = 3, seed: int = 0,
                     **kwargs: Any) -> IdentityPassSampler:  # fmt: skip
        return cls([s.pid for s in samples], p, k, passes, seed, **kwargs)

    def build_epoch(self, rng: np.random.Generator) -> np.ndarray:
        pids = np.array(list(self.groups))
        drawn = []
        for _ in range(self.passes):
            for pid in rng.permutation(pids):
                group = self.groups[int(pid)]
                drawn.append(rng.choice(group, self.k, replace=len(group) < self.k))
        order = np.concatenate(drawn)
        usable = len(order) // self.batch_size * self.batch_size
        return order[:usable].reshape(-1, self.batch_size)
