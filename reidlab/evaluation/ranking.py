"""The vectorised ranking core: ranks of every positive among the kept gallery items, without sorting.

For one query the gallery is split into *positives* (true matches that are kept), *negatives* (other
kept items) and removed items (not ranked at all). The caller passes the query's same-identity items
as a sparse list (positives are among them) plus, optionally, a dense mask of removed other-identity
items; every other item is a negative. No ``(c, G)`` identity mask is needed. Ranking order is
ascending distance with ties broken by gallery index (a stable sort), i.e. item ``a`` precedes ``b``
iff ``(d_a, a) < (d_b, b)``.

Every metric needs only the 1-based rank of each positive among the kept items:
``rank_m = m + 1 + #{negatives preceding positive m}`` for the ``m``-th positive in ranking order.
AP, mINP and CMC follow from these ranks, so no ``argsort`` of the gallery is ever formed.

Counting the negatives before each positive uses a per-query histogram: distances are mapped to
``num_buckets`` equal-width buckets between the query's smallest distance and its last positive's
distance (a monotone map). A negative in a bucket holding no positive precedes exactly the positives
in higher buckets, so a bincount + cumsum counts those; negatives sharing a bucket with a positive
(a few per query) are compared with the positives one by one, ties included. The result is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PositiveRanks:
    """Ranks of one chunk of queries' positives, in ranking order (padded past ``num_pos``)."""

    ranks: torch.Tensor  # (c, R) int64, 1-based rank among kept items; 0 in padding slots
    num_pos: torch.Tensor  # (c,) int64
    pos_dist: torch.Tensor  # (c, R) distances of the positives in ranking order; +inf padding
    pos_index: torch.Tensor  # (c, R) gallery indices of the positives in ranking order; G padding


def default_num_buckets(num_gallery: int) -> int:
    """About 8 gallery items per histogram bucket, between 16 and 4096 buckets."""
    return int(min(4096, max(16, num_gallery // 8)))


def precedes(dist: torch.Tensor, ref_dist: torch.Tensor, ref_index: torch.Tensor) -> torch.Tensor:
    """``(c, G)`` mask of gallery items ranked before the reference item of each row (stable ties)."""
    index = torch.arange(dist.shape[1], device=dist.device)
    ref_dist, ref_index = ref_dist[:, None], ref_index[:, None]
    return (dist < ref_dist) | ((dist == ref_dist) & (index[None, :] < ref_index))


def _sorted_positives(dist: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, num_pos: torch.Tensor, width: int):
    """Positive distances and indices per row, ordered by (distance, index), padded with (+inf, G).

    ``rows``/``cols`` list the positives row by row with ascending columns within a row.
    """
    starts = torch.cumsum(num_pos, 0) - num_pos
    slot = torch.arange(len(rows), device=dist.device) - starts[rows]
    pos_dist = torch.full((dist.shape[0], width), float("inf"), dtype=dist.dtype, device=dist.device)
    pos_index = torch.full((dist.shape[0], width), dist.shape[1], dtype=torch.int64, device=dist.device)
    pos_dist[rows, slot] = dist[rows, cols]
    pos_index[rows, slot] = cols
    # stable sort keeps equal distances in index order; real +inf distances stay before the padding
    pos_dist, order = torch.sort(pos_dist, dim=1, stable=True)
    return pos_dist, pos_index.gather(1, order)


def _count_exact(rows, cols, dist, pos_dist, pos_index, width, max_elements):
    """For selected negatives, a (c, width + 1) count of how many positives precede each of them."""
    counts = torch.zeros(pos_dist.shape[0], width + 1, dtype=torch.int64, device=dist.device)
    step = max(1, max_elements // max(1, width))
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        d = dist[r, c][:, None]
        pd, pi = pos_dist[r], pos_index[r]
        before = ((pd < d) | ((pd == d) & (pi < c[:, None]))).sum(1)
        counts.index_put_((r, before), torch.ones_like(before), accumulate=True)
    return counts


def _buckets(dist: torch.Tensor, lo: torch.Tensor, scale: torch.Tensor, exact_row: torch.Tensor | None):
    """``(d - lo) * scale`` per row, monotone in ``d`` (the same float ops for negatives and positives)."""
    scaled = (dist - lo[:, None]).mul_(scale[:, None])
    if exact_row is not None:
        scaled.masked_fill_(exact_row[:, None], 0.0)  # degenerate rows: one bucket, compared exactly
    return scaled


def rank_positives(
    dist: torch.Tensor,
    same_rows: torch.Tensor,
    same_cols: torch.Tensor,
    is_pos: torch.Tensor,
    removed: torch.Tensor | None = None,
    *,
    row_min: torch.Tensor | None = None,
    num_buckets: int | None = None,
    max_exact_elements: int = 1 << 22,
) -> PositiveRanks:
    """Exact 1-based ranks of every positive among the kept items (see the module docstring).

    ``dist``: ``(c, G)`` distances without NaN. ``same_rows``/``same_cols``: every gallery item of the
    query's identity, row by row with ascending columns; ``is_pos`` marks the kept ones (the others are
    removed). ``removed``: optional ``(c, G)`` mask of removed other-identity items. Everything else is
    a negative. ``row_min`` may pass ``dist.amin(1)`` when already computed.
    """
    c, num_gallery = dist.shape
    device = dist.device
    rows, cols = same_rows[is_pos], same_cols[is_pos]
    num_pos = torch.bincount(rows, minlength=c)
    width = max(1, int(num_pos.max()) if c else 1)
    pos_dist, pos_index = _sorted_positives(dist, rows, cols, num_pos, width)
    slots = torch.arange(width, device=device)
    real = slots[None, :] < num_pos[:, None]

    buckets = num_buckets or default_num_buckets(num_gallery)
    dummy = buckets + 2  # never marked: removed items, positives and negatives past the last positive
    lo = dist.amin(1) if row_min is None else row_min
    hi = pos_dist.gather(1, (num_pos - 1).clamp(min=0)[:, None]).squeeze(1)
    span = hi - lo
    scale = buckets / span
    exact_row = ~(torch.isfinite(lo) & torch.isfinite(hi) & (span > 0) & torch.isfinite(scale))
    scale = torch.where(exact_row, torch.zeros_like(scale), scale)
    lo = torch.where(exact_row, torch.zeros_like(lo), lo)
    exact_row = exact_row if bool(exact_row.any()) else None

    # bucket of every negative (monotone in distance); non-negatives go to the dummy bucket
    scaled = _buckets(dist, lo, scale, exact_row)
    if removed is not None:
        scaled.add_(removed, alpha=dummy)
    bucket = scaled.clamp_(max=dummy).long()
    del scaled
    bucket[same_rows, same_cols] = dummy
    pos_bucket = _buckets(pos_dist, lo, scale, exact_row).clamp_(max=dummy).long().masked_fill_(~real, dummy)
    marked = torch.zeros(c, buckets + 3, dtype=torch.bool, device=device)
    marked.scatter_(1, pos_bucket, True)
    marked[:, dummy] = False

    exact = marked.gather(1, bucket)  # negatives sharing a bucket with a positive
    ex_rows, ex_cols = exact.nonzero(as_tuple=True)
    del exact
    counts = torch.zeros(c, buckets + 3, dtype=torch.int64, device=device)
    counts.scatter_add_(1, bucket, torch.ones((), dtype=torch.int64, device=device).expand(c, num_gallery))
    counts.index_put_((ex_rows, bucket[ex_rows, ex_cols]), torch.full_like(ex_rows, -1), accumulate=True)
    del bucket
    before_bucket = counts.cumsum(1) - counts  # negatives in strictly lower buckets, exact ones excluded
    coarse_before = before_bucket.gather(1, pos_bucket)

    fine = _count_exact(ex_rows, ex_cols, dist, pos_dist, pos_index, width, max_exact_elements)
    fine_before = fine.cumsum(1)[:, :width]  # exact negatives preceded by at most m positives

    ranks = (slots[None, :] + 1 + coarse_before + fine_before).masked_fill_(~real, 0)
    return PositiveRanks(ranks=ranks, num_pos=num_pos, pos_dist=pos_dist, pos_index=pos_index)


def average_precision(ranks: torch.Tensor, num_pos: torch.Tensor, flavour: str = "standard") -> torch.Tensor:
    """Per-row AP from positive ranks (rows without positives get NaN).

    ``"standard"``: non-interpolated, ``mean_m (m + 1) / rank_m``.
    ``"devkit"``: Market-1501 MATLAB devkit trapezoid, ``mean_m (P_{m-1} + P_m) / 2`` with
    ``P_m = (m + 1) / rank_m`` and ``P_{m-1} = m / (rank_m - 1)`` (1 when ``rank_m == 1``).
    """
    real = ranks > 0
    hits = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.float64)[None, :]
    r = ranks.to(torch.float64).clamp(min=1.0)
    precision = hits / r
    if flavour == "devkit":
        previous = torch.where(r > 1, (hits - 1) / (r - 1).clamp(min=1.0), torch.ones_like(r))
        precision = (previous + precision) / 2
    elif flavour != "standard":
        raise ValueError(f"ap must be 'standard' or 'devkit', got {flavour!r}")
    total = (precision * real).sum(1)
    return torch.where(num_pos > 0, total / num_pos.clamp(min=1), torch.full_like(total, float("nan")))


def inverse_negative_penalty(ranks: torch.Tensor, num_pos: torch.Tensor) -> torch.Tensor:
    """Per-row INP = ``num_pos / rank of the last positive`` (NaN without positives)."""
    last = ranks.gather(1, (num_pos - 1).clamp(min=0)[:, None]).squeeze(1).to(torch.float64)
    value = num_pos.to(torch.float64) / last.clamp(min=1.0)
    return torch.where(num_pos > 0, value, torch.full_like(value, float("nan")))


def cmc_curve(first_ranks: np.ndarray, max_rank: int) -> np.ndarray:
    """``cmc[k]`` = fraction of the given (valid) first-match ranks that are ``<= k + 1``."""
    clipped = np.minimum(first_ranks, max_rank + 1)
    hist = np.bincount(clipped, minlength=max_rank + 2)[1 : max_rank + 1]
    return np.cumsum(hist) / max(1, len(first_ranks))
