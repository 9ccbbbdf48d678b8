"""Evaluation protocols: which gallery items each query ranks, and how its CMC is counted.

Camera ids are **0-based** as produced by the lab's loaders (camera ``cN`` of a dataset is camid ``N - 1``).

* ``"market"`` (torchreid / fast-reid / BoT / TransReID / CLIP-ReID rule): gallery items with the
  query's pid **and** camera are removed; same pid in another camera is a match; distractors
  (pid 0) are ordinary negatives. CMC = first match among the kept items; max rank 50.
* ``"cuhk03_classic"``: market removal; CMC is *single-gallery-shot* — per repeat one random kept
  image per gallery identity, averaged over ``num_repeats`` (10) seeded repeats (see
  :func:`single_shot_priorities`); AP/mINP on the full kept list. Because only same-pid items are ever
  removed, the sampled image of every *other* identity is shared by all queries of a repeat.
* ``"sysu"`` (SYSU-MM01, AGW's code): for queries from camera ``sysu_exclude[0]`` every gallery item
  from camera ``sysu_exclude[1]`` is removed (default ``(2, 1)`` = SYSU cam3 queries lose cam2 gallery
  items); nothing else is removed. CMC over the identity-deduplicated ranking (the query identity's
  position among the distinct identities in first-occurrence order); mAP/mINP on the full kept list;
  max rank 20.
* ``"regdb"`` (RegDB): nothing removed; plain CMC; max rank 20.

In every protocol a query with no match left is skipped. Ties are broken by gallery index.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reidlab.evaluation.ranking import PositiveRanks, precedes


@dataclass(frozen=True)
class Protocol:
    name: str
    default_max_rank: int
    cmc: str  # "first_match" | "distinct_ids" | "single_shot"
    removal: str  # "same_pid_same_cam" | "sysu_cameras" | "none"


PROTOCOLS: dict[str, Protocol] = {
    "market": Protocol("market", 50, "first_match", "same_pid_same_cam"),
    "cuhk03_classic": Protocol("cuhk03_classic", 50, "single_shot", "same_pid_same_cam"),
    "sysu": Protocol("sysu", 20, "distinct_ids", "sysu_cameras"),
    "regdb": Protocol("regdb", 20, "first_match", "none"),
}


def get_protocol(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {tuple(PROTOCOLS)}, got {name!r}")
    return PROTOCOLS[name]


class IdentityIndex:
    """Gallery items grouped by pid, to list each query's same-identity items without a (c, G) mask."""

    def __init__(self, g_pids: torch.Tensor):
        self.order = torch.sort(g_pids, stable=True).indices  # ascending gallery index within a pid
        self.sorted_pids = g_pids[self.order]

    def same_identity(self, q_pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, cols)``: every gallery item sharing row ``r``'s pid, row by row, ascending columns."""
        first = torch.searchsorted(self.sorted_pids, q_pids, right=False)
        lengths = torch.searchsorted(self.sorted_pids, q_pids, right=True) - first
        rows = torch.repeat_interleave(torch.arange(len(q_pids), device=q_pids.device), lengths)
        offsets = torch.arange(len(rows), device=q_pids.device) - (torch.cumsum(lengths, 0) - lengths)[rows]
        return rows, self.order[first[rows] + offsets]


@dataclass
class GallerySplit:
    """One chunk's partition of the gallery: same-identity items (kept ones = positives), removed
    other-identity items (dense mask or None); everything else is a negative."""

    same_rows: torch.Tensor
    same_cols: torch.Tensor
    is_pos: torch.Tensor
    removed: torch.Tensor | None

    def negatives(self, q_pids: torch.Tensor, g_pids: torch.Tensor) -> torch.Tensor:
        """The dense ``(c, G)`` negative mask (only built where a protocol needs it)."""
        neg = q_pids[:, None] != g_pids[None, :]
        return neg if self.removed is None else neg & ~self.removed


def split_gallery(
    protocol: Protocol,
    index: IdentityIndex,
    q_pids: torch.Tensor,
    q_camids: torch.Tensor,
    g_camids: torch.Tensor,
    sysu_exclude: tuple[int, int] = (2, 1),
) -> GallerySplit:
    """Apply the protocol's removal rule to a chunk of queries."""
    rows, cols = index.same_identity(q_pids)
    removed = None
    if protocol.removal == "same_pid_same_cam":
        is_pos = g_camids[cols] != q_camids[rows]
    elif protocol.removal == "sysu_cameras":
        query_cam, gallery_cam = sysu_exclude
        hit_rows = q_camids == query_cam
        is_pos = ~(hit_rows[rows] & (g_camids[cols] == gallery_cam))
        if bool(hit_rows.any()):
            removed = hit_rows[:, None] & (g_camids == gallery_cam)[None, :]
    else:
        is_pos = torch.ones_like(rows, dtype=torch.bool)
    return GallerySplit(rows, cols, is_pos, removed)


def distinct_identity_rank(
    dist: torch.Tensor, neg: torch.Tensor, ranked: PositiveRanks, g_ids: torch.Tensor, num_ids: int
) -> torch.Tensor:
    """1 + number of distinct negative identities ranked before each query's first match."""
    before = precedes(dist, ranked.pos_dist[:, 0], ranked.pos_index[:, 0]).logical_and_(neg)
    seen = torch.zeros(dist.shape[0], num_ids, dtype=torch.int32, device=dist.device)
    seen.scatter_reduce_(1, g_ids[None, :].expand_as(dist), before.to(torch.int32), reduce="amax")
    return 1 + seen.sum(1)


def single_shot_priorities(num_gallery: int, num_repeats: int, seed: int) -> torch.Tensor:
    """``(num_repeats, G)`` random priorities: per repeat each identity is represented by its kept
    gallery image of highest priority. Drawn on CPU from ``torch.Generator().manual_seed(seed)``."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.stack([torch.randperm(num_gallery, generator=generator) for _ in range(num_repeats)])


def single_shot_samples(g_ids: torch.Tensor, num_ids: int, priorities: torch.Tensor) -> list[torch.Tensor]:
    """Per repeat, the gallery index of each identity's highest-priority image (ascending index)."""
    out = []
    for priority in priorities.to(g_ids.device):
        best = torch.full((num_ids,), -1, dtype=priority.dtype, device=g_ids.device)
        best.scatter_reduce_(0, g_ids, priority, reduce="amax")
        out.append(torch.nonzero(priority == best[g_ids]).squeeze(1))
    return out


def single_shot_ranks(
    dist: torch.Tensor,
    split: GallerySplit,
    q_pids: torch.Tensor,
    g_pids: torch.Tensor,
    priorities: torch.Tensor,
    samples: list[torch.Tensor],
) -> torch.Tensor:
    """``(num_repeats, c)`` single-gallery-shot rank of the query identity (0 for rows without positives).

    ``samples[r]`` (from :func:`single_shot_samples`) represents every identity in repeat ``r``; the
    query's own identity is represented by its kept match of highest priority instead.
    """
    c = dist.shape[0]
    rows, cols = split.same_rows[split.is_pos], split.same_cols[split.is_pos]
    has_pos = torch.bincount(rows, minlength=c) > 0
    out = []
    for priority, sample in zip(priorities.to(dist.device), samples, strict=True):
        pos_priority = priority[cols]
        top = torch.full((c,), -1, dtype=priority.dtype, device=dist.device)
        top.scatter_reduce_(0, rows, pos_priority, reduce="amax")
        winner = pos_priority == top[rows]
        chosen = torch.zeros(c, dtype=torch.int64, device=dist.device)
        chosen[rows[winner]] = cols[winner]
        chosen_dist = dist.gather(1, chosen[:, None])
        sample_dist = dist[:, sample]
        before = (sample_dist < chosen_dist) | ((sample_dist == chosen_dist) & (sample[None, :] < chosen[:, None]))
        before &= g_pids[sample][None, :] != q_pids[:, None]
        out.append(torch.where(has_pos, 1 + before.sum(1), torch.zeros_like(chosen)))
    return torch.stack(out)
