"""``evaluate_rank`` (from a distance matrix) and ``evaluate`` (from features): chunked over queries.

Only one chunk of query rows (sized by ``max_chunk_bytes``) is worked on at a time, on the device of
the inputs (or ``device``); no argsort of the gallery is formed (see :mod:`reidlab.evaluation.ranking`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from reidlab.evaluation.distances import GalleryDistance, prepare_features
from reidlab.evaluation.inputs import (
    ArrayLike,
    as_tensor,
    check_matrix,
    choice,
    labels,
    positive_int,
    resolve_device,
    rows_per_chunk,
)
from reidlab.evaluation.protocols import (
    IdentityIndex,
    distinct_identity_rank,
    get_protocol,
    single_shot_priorities,
    single_shot_ranks,
    single_shot_samples,
    split_gallery,
)
from reidlab.evaluation.ranking import average_precision, cmc_curve, inverse_negative_penalty, rank_positives
from reidlab.evaluation.result import RankResult

AP_FLAVOURS = ("standard", "devkit")
CPU_CHUNK_BYTES = 128 * 2**20  # fast on an idle CPU, and few enough chunks to tolerate busy cores
GPU_CHUNK_BYTES = 1024 * 2**20
_BYTES_PER_ELEMENT = 40  # working set of the ranking core per query x gallery element
_MIN_DISTANCE_ROWS = 256


def evaluate_rank(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    *,
    max_rank: int | None = None,
    ap: str = "standard",
    protocol: str = "market",
    sysu_exclude: tuple[int, int] = (2, 1),
    num_repeats: int = 10,
    seed: int = 0,
    device: torch.device | str | None = None,
    max_chunk_bytes: int | None = None,
) -> RankResult:
    """CMC / mAP / mINP of a ``(n_q, n_g)`` distance matrix (NumPy or torch, any device; smaller = closer).

    ``max_rank`` defaults to the protocol's (50 for market / cuhk03_classic, 20 for sysu / regdb); the
    CMC keeps that length even when fewer items are ranked (the tail repeats the last value).
    ``ap="standard"`` is non-interpolated AP, ``ap="devkit"`` the Market-1501 devkit trapezoid
    (MuDeep's numbers; note MuDeep divides by all queries, we by the valid ones — identical when every
    query has a match). ``sysu_exclude=(query_camid, gallery_camid)`` is the SYSU removal rule in
    0-based camids; ``num_repeats``/``seed`` drive the cuhk03_classic single-shot sampling.
    Protocols are described in :mod:`reidlab.evaluation.protocols`; ties rank by gallery index.

    Work happens on ``device`` (default: the distmat's; CPU for NumPy) one chunk of query rows at a
    time, each using about ``max_chunk_bytes`` of working memory (default 128 MiB on CPU, where
    mid-sized chunks run fastest, and 1 GiB on GPU); a NumPy distmat is read in place, chunk by chunk.
    Queries without a match are skipped; if none has one, ``ValueError``.
    """
    check_matrix(distmat, "distmat", allow_inf=True)
    n_q, n_g = distmat.shape
    device = resolve_device(device, distmat)
    step = rows_per_chunk(n_g, _BYTES_PER_ELEMENT, chunk_bytes(max_chunk_bytes, device))

    def chunks() -> Iterable[tuple[int, torch.Tensor]]:
        for start in range(0, n_q, step):
            yield start, as_tensor(distmat[start : start + step], "distmat", device=device)

    return _evaluate_chunks(
        chunks(), q_pids, g_pids, q_camids, g_camids, n_q=n_q, n_g=n_g, device=device,
        max_rank=max_rank, ap=ap, protocol=protocol, sysu_exclude=sysu_exclude, num_repeats=num_repeats, seed=seed,
    )  # fmt: skip


def evaluate(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    *,
    metric: str = "cosine",
    q_masks: ArrayLike | None = None,
    rerank: bool | Mapping[str, Any] = False,
    max_rank: int | None = None,
    ap: str = "standard",
    protocol: str = "market",
    sysu_exclude: tuple[int, int] = (2, 1),
    num_repeats: int = 10,
    seed: int = 0,
    device: torch.device | str | None = None,
    max_chunk_bytes: int | None = None,
) -> RankResult:
    """Evaluate features directly: distances are computed chunk by chunk and never held in full.

    ``metric``: ``"euclidean"`` (squared), ``"cosine"`` or ``"masked_cosine"`` (DPM; needs ``q_masks``).
    ``rerank``: ``True`` or a dict of :func:`reidlab.evaluation.re_ranking` keyword arguments applies
    k-reciprocal re-ranking first (on L2-normalised features for ``metric="cosine"``, on the raw
    features for ``"euclidean"``); the re-ranked ``(n_q, n_g)`` matrix is then held in memory.
    Other arguments as in :func:`evaluate_rank`.
    """
    device = resolve_device(device, q_feats, g_feats)
    q, g, masks = prepare_features(q_feats, g_feats, metric=metric, q_masks=q_masks, device=device)
    common = dict(max_rank=max_rank, ap=ap, protocol=protocol, sysu_exclude=sysu_exclude,
                  num_repeats=num_repeats, seed=seed, device=device, max_chunk_bytes=max_chunk_bytes)  # fmt: skip
    if rerank:
        from reidlab.evaluation.rerank import re_ranking

        if metric == "masked_cosine":
            raise ValueError("rerank is defined on plain features; use metric='cosine' or 'euclidean' with it")
        if metric == "cosine":
            q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
        options = dict(rerank) if isinstance(rerank, Mapping) else {}
        if max_chunk_bytes is not None:
            options.setdefault("max_chunk_bytes", max_chunk_bytes)
        distmat = re_ranking(q, g, **options)
        return evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, **common)

    distance = GalleryDistance(g, metric)
    step = rows_per_chunk(len(g), _BYTES_PER_ELEMENT, chunk_bytes(max_chunk_bytes, device))
    # distances in blocks of >= 256 rows (matmul efficiency), ranked ``step`` rows at a time
    block = step * max(1, -(-_MIN_DISTANCE_ROWS // step))

    def chunks() -> Iterable[tuple[int, torch.Tensor]]:
        for start in range(0, len(q), block):
            stop = min(start + block, len(q))
            dist = distance(q[start:stop], None if masks is None else masks[start:stop])
            for offset in range(0, stop - start, step):
                yield start + offset, dist[offset : offset + step]

    common.pop("max_chunk_bytes")
    return _evaluate_chunks(chunks(), q_pids, g_pids, q_camids, g_camids, n_q=len(q), n_g=len(g), **common)


def chunk_bytes(max_chunk_bytes: int | None, device: torch.device) -> int:
    """The working-memory budget per chunk: as given, else 128 MiB on CPU and 1 GiB on GPU."""
    if max_chunk_bytes is None:
        return GPU_CHUNK_BYTES if device.type == "cuda" else CPU_CHUNK_BYTES
    return positive_int(max_chunk_bytes, "max_chunk_bytes")


def _evaluate_chunks(
    chunks: Iterable[tuple[int, torch.Tensor]],
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    *,
    n_q: int,
    n_g: int,
    device: torch.device,
    max_rank: int | None,
    ap: str,
    protocol: str,
    sysu_exclude: tuple[int, int],
    num_repeats: int,
    seed: int,
) -> RankResult:
    proto = get_protocol(protocol)
    choice(ap, "ap", AP_FLAVOURS)
    max_rank = proto.default_max_rank if max_rank is None else positive_int(max_rank, "max_rank")
    if len(sysu_exclude) != 2:
        raise ValueError(f"sysu_exclude must be (query_camid, gallery_camid), got {sysu_exclude!r}")
    q_pid = labels(q_pids, "q_pids", n_q, device)
    g_pid = labels(g_pids, "g_pids", n_g, device)
    q_cam = labels(q_camids, "q_camids", n_q, device)
    g_cam = labels(g_camids, "g_camids", n_g, device)
    index = IdentityIndex(g_pid)
    g_ids, g_ids_count = None, 0
    if proto.cmc in ("distinct_ids", "single_shot"):
        unique, g_ids = torch.unique(g_pid, return_inverse=True)
        g_ids_count = len(unique)
    priorities, samples = None, []
    if proto.cmc == "single_shot":
        priorities = single_shot_priorities(n_g, positive_int(num_repeats, "num_repeats"), seed).to(device)
        samples = single_shot_samples(g_ids, g_ids_count, priorities)

    query_ap = np.full(n_q, np.nan)
    query_inp = np.full(n_q, np.nan)
    first_full = np.zeros(n_q, dtype=np.int64)
    first_cmc = np.zeros((1 if priorities is None else len(priorities), n_q), dtype=np.int64)
    for start, dist in chunks:
        stop = start + dist.shape[0]
        row_min = dist.amin(1)
        if bool(torch.isnan(row_min).any()):  # amin propagates NaN: a cheap full check
            raise ValueError("distmat contains NaN values")
        qp, qc = q_pid[start:stop], q_cam[start:stop]
        split = split_gallery(proto, index, qp, qc, g_cam, tuple(int(c) for c in sysu_exclude))
        ranked = rank_positives(dist, split.same_rows, split.same_cols, split.is_pos, split.removed, row_min=row_min)
        query_ap[start:stop] = average_precision(ranked.ranks, ranked.num_pos, ap).cpu().numpy()
        query_inp[start:stop] = inverse_negative_penalty(ranked.ranks, ranked.num_pos).cpu().numpy()
        first = ranked.ranks[:, 0]
        first_full[start:stop] = first.cpu().numpy()
        if proto.cmc == "first_match":
            first_cmc[0, start:stop] = first_full[start:stop]
        elif proto.cmc == "distinct_ids":
            dedup = distinct_identity_rank(dist, split.negatives(qp, g_pid), ranked, g_ids, g_ids_count)
            first_cmc[0, start:stop] = torch.where(ranked.num_pos > 0, dedup, 0).cpu().numpy()
        else:
            first_cmc[:, start:stop] = (
                single_shot_ranks(dist, split, qp, g_pid, priorities, samples).cpu().numpy()
            )
        del dist, split, ranked

    valid = first_full > 0
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            f"no query has a true match in the gallery under the {protocol!r} protocol "
            "(check q_pids/g_pids and the camera ids)"
        )
    cmc = np.mean([cmc_curve(ranks[valid], max_rank) for ranks in first_cmc], axis=0)
    return RankResult(
        cmc=cmc,
        mAP=float(np.mean(query_ap[valid])),
        mINP=float(np.mean(query_inp[valid])),
        num_valid_queries=num_valid,
        num_queries=n_q,
        protocol=protocol,
        ap=ap,
        query_ap=query_ap,
        first_match_rank=first_full,
    )
