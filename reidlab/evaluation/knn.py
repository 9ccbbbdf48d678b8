"""Exact k-nearest-neighbour lists of N items under squared Euclidean distance, in O(N * k) memory.

One pass over the *upper triangle* of the N x N distance matrix in square blocks: each block serves
its rows and, transposed, its columns (half the matrix products of a full pass). Per item a pool keeps
the ``k + 1`` smallest distances seen so far; the first block of a row fills it with ``topk``, later
blocks only contribute the few entries below the pool's current worst distance (a cheap comparison
filters them). The pass also records each row's maximum and the query x gallery part of the matrix,
which k-reciprocal re-ranking needs.

Lists are ordered by (distance / row max, index): ties break by item index, as a stable argsort
would. A tie across the k-th place is resolved exactly by recomputing that row in full.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class NeighbourLists:
    index: torch.Tensor  # (N, k) nearest items, ordered by (normalised distance, index)
    dist: torch.Tensor  # (N, k) their distances divided by the row maximum
    row_max: torch.Tensor  # (N,) maximum squared distance of every row
    query_gallery: torch.Tensor  # (n_q, N - n_q) raw squared distances of the query rows


def block_distance(x: torch.Tensor, sq: torch.Tensor, a: slice, b: slice) -> torch.Tensor:
    """Squared Euclidean distances between ``x[a]`` and ``x[b]``, clamped at 0."""
    block = torch.addmm(sq[b][None, :], x[a], x[b].T, alpha=-2.0)
    block += sq[a][:, None]
    return block.clamp_(min=0.0)


class _Pool:
    """Per-row running set of the ``width`` smallest (distance, index) pairs."""

    def __init__(self, n: int, width: int, dtype: torch.dtype, device: torch.device):
        self.n, self.width = n, width
        self.d = torch.full((n, width), float("inf"), dtype=dtype, device=device)
        self.i = torch.full((n, width), n, dtype=torch.int64, device=device)
        self.worst = torch.full((n,), float("inf"), dtype=dtype, device=device)

    def _merge(self, rows: torch.Tensor | slice, cand_d: torch.Tensor, cand_i: torch.Tensor) -> None:
        both_d = torch.cat([self.d[rows], cand_d], dim=1)
        both_i = torch.cat([self.i[rows], cand_i], dim=1)
        best_d, best = torch.topk(both_d, self.width, dim=1, largest=False, sorted=False)
        self.d[rows] = best_d
        self.i[rows] = both_i.gather(1, best)
        self.worst[rows] = best_d.amax(1)

    def add_block(self, rows: slice, block: torch.Tensor, col0: int) -> None:
        """Merge a whole ``(rows, cols)`` block via ``topk`` (a row's first block)."""
        vals, idx = torch.topk(block, min(self.width, block.shape[1]), dim=1, largest=False, sorted=False)
        self._merge(rows, vals, idx + col0)

    def add_below_worst(self, rows: slice, block: torch.Tensor, col0: int, transposed: bool = False) -> None:
        """Merge only the entries smaller than each row's current worst (``block.T`` when ``transposed``)."""
        if transposed:
            c, r = (block < self.worst[rows][None, :]).nonzero(as_tuple=True)
            order = torch.sort(r, stable=True).indices  # group the candidates by their row
            r, c = r[order], c[order]
            vals = block[c, r]
        else:
            r, c = (block < self.worst[rows][:, None]).nonzero(as_tuple=True)
            vals = block[r, c]
        if len(r) == 0:
            return
        groups, counts = torch.unique_consecutive(r, return_counts=True)
        group = torch.repeat_interleave(torch.arange(len(groups), device=r.device), counts)
        slot = torch.arange(len(r), device=r.device) - (torch.cumsum(counts, 0) - counts)[group]
        width = int(counts.max())
        pad_d = torch.full((len(groups), width), float("inf"), dtype=block.dtype, device=block.device)
        pad_i = torch.full((len(groups), width), self.n, dtype=torch.int64, device=block.device)
        pad_d[group, slot] = vals
        pad_i[group, slot] = c + col0
        self._merge(groups + rows.start, pad_d, pad_i)


def nearest_neighbours(x: torch.Tensor, n_q: int, k: int, max_block_bytes: int) -> NeighbourLists:
    """The ``k`` nearest items of every row of ``x`` (itself included), see the module docstring."""
    n = len(x)
    k = min(k, n)
    sq = (x * x).sum(1)
    size = max(64, min(1024 if x.device.type == "cpu" else 8192, math.isqrt(max(1, max_block_bytes // 12))))
    pool = _Pool(n, min(k + 1, n), x.dtype, x.device)
    row_max = torch.zeros(n, dtype=x.dtype, device=x.device)
    query_gallery = torch.empty(n_q, n - n_q, dtype=x.dtype, device=x.device)
    starts = list(range(0, n, size))
    for a0 in starts:
        a = slice(a0, min(a0 + size, n))
        for b0 in starts[a0 // size :]:
            b = slice(b0, min(b0 + size, n))
            block = block_distance(x, sq, a, b)
            row_max[a] = torch.maximum(row_max[a], block.amax(1))
            _store_query_gallery(query_gallery, block, a, b, n_q)
            if a0 == b0 == 0:  # the first block rows 0.. see
                pool.add_block(a, block, b0)
            else:
                pool.add_below_worst(a, block, b0)
            if b0 != a0:
                row_max[b] = torch.maximum(row_max[b], block.amax(0))
                _store_query_gallery(query_gallery, block.T, b, a, n_q)
                if a0 == 0:  # the first block these rows see
                    pool.add_block(b, block.T.contiguous(), a0)
                else:
                    pool.add_below_worst(b, block, a0, transposed=True)
            del block
    scale = row_max.clamp(min=torch.finfo(x.dtype).tiny)
    pool_d = pool.d / scale[:, None]
    index, dist = _order(pool_d, pool.i, k)
    if pool.width > k:  # a tie across the k-th place: order that row exactly from its full row
        tied = torch.nonzero(dist[:, k - 1] == _kth_smallest(pool_d, k)).squeeze(1)
        for i in tied.tolist():
            row = block_distance(x, sq, slice(i, i + 1), slice(0, n))[0] / scale[i]
            order = torch.sort(row, stable=True).indices[:k]
            index[i], dist[i] = order, row[order]
    return NeighbourLists(index=index, dist=dist, row_max=row_max, query_gallery=query_gallery)


def _store_query_gallery(out: torch.Tensor, block: torch.Tensor, rows: slice, cols: slice, n_q: int) -> None:
    r0, r1 = rows.start, min(rows.stop, n_q)
    c0, c1 = max(cols.start, n_q), cols.stop
    if r0 < r1 and c0 < c1:
        out[r0:r1, c0 - n_q : c1 - n_q] = block[: r1 - r0, c0 - cols.start : c1 - cols.start]


def _kth_smallest(values: torch.Tensor, k: int) -> torch.Tensor:
    return torch.sort(values, dim=1).values[:, k]


def _order(pool_d: torch.Tensor, pool_i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``k`` pool entries of each row in (distance, index) order, with their distances."""
    by_index, order = torch.sort(pool_i, dim=1)
    dist_by_index = pool_d.gather(1, order)
    dist, by_dist = torch.sort(dist_by_index, dim=1, stable=True)
    return by_index.gather(1, by_dist)[:, :k], dist[:, :k]
