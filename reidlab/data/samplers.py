"""Identity samplers: P identities x K images per batch (:class:`PKSampler`) and its cross-modality form.

Both are epoch-based torch ``Sampler``s yielding dataset indices in consecutive batches (use them
with ``DataLoader(..., sampler=s, batch_size=s.batch_size, drop_last=True)``):

* An epoch is fully determined by ``(seed, epoch)`` (NumPy ``default_rng([seed, epoch])``).
  Iterating uses the current epoch and then advances it, so successive epochs differ even if
  ``set_epoch`` is never called; calling ``set_epoch(e)`` before each epoch (the DDP idiom) gives
  the same result. ``state_dict()`` / ``load_state_dict()`` restore the position exactly, and
  ``set_epoch(e, start_batch=n)`` resumes inside an epoch.
* Under DDP every rank builds the same epoch and takes every ``world_size``-th whole batch of
  the first ``world_size * (B // world_size)`` batches: disjoint, equal shares, no partial batch.
  ``rank`` / ``world_size`` default to ``torch.distributed`` when it is initialised.

Epoch construction (spec §0.4): for each identity shuffle its images (fewer than K: draw K with
replacement) and cut them into chunks of K, dropping the remainder; then repeatedly pick P
distinct identities uniformly among those with chunks left and emit one chunk of each; stop
when fewer than P identities have chunks left.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

from reidlab.data.records import Sample


def distributed_rank_world(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Explicit values, else ``torch.distributed``'s when initialised, else (0, 1)."""
    initialised = torch.distributed.is_available() and torch.distributed.is_initialized()
    if world_size is None:
        world_size = torch.distributed.get_world_size() if initialised else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialised else 0
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    return rank, world_size


def group_indices(labels: Sequence[int]) -> dict[int, np.ndarray]:
    """``{label: sorted indices}`` with labels in ascending order."""
    labels = np.asarray(labels, dtype=np.int64)
    order = np.argsort(labels, kind="stable")
    unique, starts = np.unique(labels[order], return_index=True)
    return {int(label): group for label, group in zip(unique, np.split(order, starts[1:]), strict=True)}


def draw(rng: np.random.Generator, group: np.ndarray, count: int) -> np.ndarray:
    """``count`` indices: a shuffle of ``group`` topped up with replacement when it is too small."""
    shuffled = rng.permutation(group)
    if len(shuffled) >= count:
        return shuffled[:count]
    return np.concatenate([shuffled, rng.choice(group, count - len(shuffled), replace=True)])


def assemble_batches(chunks: list[np.ndarray], p: int, rng: np.random.Generator) -> np.ndarray:
    """Batches of ``p`` chunks from ``p`` distinct identities; ``chunks[i]`` is identity i's (n_i, L) array."""
    chunk_len = next((c.shape[1] for c in chunks if c.size), 0)
    remaining = np.array([len(c) for c in chunks], dtype=np.int64)
    taken = np.zeros_like(remaining)
    batches = []
    while (remaining > 0).sum() >= p:
        available = np.flatnonzero(remaining > 0)
        chosen = rng.choice(available, size=p, replace=False)
        batches.append(np.concatenate([chunks[i][taken[i]] for i in chosen]))
        taken[chosen] += 1
        remaining[chosen] -= 1
    if not batches:
        return np.zeros((0, p * chunk_len), dtype=np.int64)
    return np.stack(batches)


class _EpochBatchSampler(Sampler[int]):
    """Shared epoch / seed / DDP / resume logic; subclasses build one epoch's batches for all ranks."""

    def __init__(self, *, batch_size: int, seed: int, rank: int | None, world_size: int | None) -> None:
        self.batch_size = batch_size
        self.seed = int(seed)
        self.rank, self.world_size = distributed_rank_world(rank, world_size)
        self.epoch = 0
        self.start_batch = 0
        self._cache: tuple[int, np.ndarray] | None = None

    def build_epoch(self, rng: np.random.Generator) -> np.ndarray:  # (B, batch_size) for all ranks
        raise NotImplementedError

    def epoch_batches(self, epoch: int | None = None) -> np.ndarray:
        """This rank's batches of ``epoch`` (default: the next one), shape (B_rank, batch_size)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            everything = self.build_epoch(np.random.default_rng([self.seed, epoch]))
            usable = len(everything) // self.world_size * self.world_size
            self._cache = (epoch, everything[self.rank : usable : self.world_size])
        return self._cache[1]

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Make the next iteration epoch ``epoch``, starting at this rank's batch ``start_batch``."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start_batch": self.start_batch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["seed"]) != self.seed:
            raise ValueError(f"sampler state has seed {state['seed']}, this sampler uses {self.seed}")
        self.set_epoch(state["epoch"], state.get("start_batch", 0))

    @property
    def num_batches(self) -> int:
        """Batches this rank yields in the next epoch."""
        return max(len(self.epoch_batches()) - self.start_batch, 0)

    def __len__(self) -> int:
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        batches = self.epoch_batches()[self.start_batch :]
        self.epoch, self.start_batch = self.epoch + 1, 0
        return iter(batches.reshape(-1).tolist())


class PKSampler(_EpochBatchSampler):
    """P identities x K images per batch; identities with fewer than K images are drawn with replacement."""

    def __init__(
        self,
        pids: Sequence[int],
        p: int,
        k: int,
        seed: int = 0,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"PKSampler needs p >= 1 and k >= 1, got p={p}, k={k}")
        super().__init__(batch_size=p * k, seed=seed, rank=rank, world_size=world_size)
        self.p, self.k = p, k
        self.groups = group_indices(pids)
        if len(self.groups) < p:
            raise ValueError(f"PKSampler: {len(self.groups)} identities cannot fill batches of p={p} identities")

    @classmethod
    def from_samples(cls, samples: Sequence[Sample], p: int, k: int, seed: int = 0, **kwargs: Any) -> PKSampler:
        return cls([s.pid for s in samples], p, k, seed, **kwargs)

    def build_epoch(self, rng: np.random.Generator) -> np.ndarray:
        chunks = []
        for group in self.groups.values():
            count = max(len(group) // self.k, 1) * self.k
            chunks.append(draw(rng, group, count).reshape(-1, self.k))
        return assemble_batches(chunks, self.p, rng)


class CrossModalitySampler(_EpochBatchSampler):
    """P identities x (K RGB + K IR images) per batch, identity by identity: ``[K rgb, K ir] * P``.

    Only identities with images in both modalities are sampled (others are listed in
    ``excluded_pids``). Per identity and epoch, ``max(1, min(#rgb, #ir) // K)`` chunks are formed;
    a modality with fewer images than needed is topped up with replacement. The training loop
    must take modality labels from the batch (``ImageDataset`` items carry ``"modality"``), never
    from positions.
    """

    def __init__(
        self,
        pids: Sequence[int],
        modalities: Sequence[str | int],
        p: int,
        k: int,
        seed: int = 0,
        *,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if p < 1 or k < 1:
            raise ValueError(f"CrossModalitySampler needs p >= 1 and k >= 1, got p={p}, k={k}")
        if len(pids) != len(modalities):
            raise ValueError(f"got {len(pids)} pids but {len(modalities)} modalities")
        super().__init__(batch_size=2 * p * k, seed=seed, rank=rank, world_size=world_size)
        self.p, self.k = p, k
        codes = np.array([{"rgb": 0, "ir": 1}.get(m, m) if isinstance(m, str) else int(m) for m in modalities])
        if not np.isin(codes, (0, 1)).all():
            raise ValueError("modalities must be 'rgb'/'ir' or 0/1")
        pids = np.asarray(pids, dtype=np.int64)
        rgb, ir = group_indices(pids[codes == 0]), group_indices(pids[codes == 1])
        rgb_index, ir_index = np.flatnonzero(codes == 0), np.flatnonzero(codes == 1)
        shared = sorted(set(rgb) & set(ir))
        self.excluded_pids = sorted(set(rgb) ^ set(ir))
        self.groups = {pid: (rgb_index[rgb[pid]], ir_index[ir[pid]]) for pid in shared}
        if len(self.groups) < p:
            raise ValueError(f"CrossModalitySampler: {len(self.groups)} identities with both modalities < p={p}")

    @classmethod
    def from_samples(
        cls, samples: Sequence[Sample], p: int, k: int, seed: int = 0, **kwargs: Any
    ) -> CrossModalitySampler:
        return cls([s.pid for s in samples], [s.modality for s in samples], p, k, seed, **kwargs)

    def build_epoch(self, rng: np.random.Generator) -> np.ndarray:
        chunks = []
        for rgb, ir in self.groups.values():
            n = max(min(len(rgb), len(ir)) // self.k, 1)
            rgb_chunks = draw(rng, rgb, n * self.k).reshape(n, self.k)
            ir_chunks = draw(rng, ir, n * self.k).reshape(n, self.k)
            chunks.append(np.concatenate([rgb_chunks, ir_chunks], axis=1))
        return assemble_batches(chunks, self.p, rng)
