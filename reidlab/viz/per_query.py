"""Per-query retrieval results under the Market rules (what the figures need to pick and colour queries).

Junk gallery entries (same identity *and* same camera as the query) are removed from each
ranking, exactly as in :func:`reidlab.evaluation.evaluate_rank` with ``protocol="market"`` (the
dataset parsers already drop Market's pid -1 junk images); AP is the standard (non-interpolated)
average precision over the kept ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | list


def _np(x: ArrayLike, name: str, dtype=None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if dtype is not None:
        arr = arr.astype(dtype, copy=False)
    if arr.ndim == 0:
        raise ValueError(f"{name}: expected an array, got a scalar")
    return arr


def check_ranking_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    """Convert to NumPy and check that the shapes agree; errors name the argument."""
    dist = _np(distmat, "distmat", np.float32)
    if dist.ndim != 2:
        raise ValueError(f"distmat: expected (num_query, num_gallery), got shape {dist.shape}")
    arrays = [_np(a, n, np.int64) for a, n in ((q_pids, "q_pids"), (g_pids, "g_pids"))]
    arrays += [_np(a, n, np.int64) for a, n in ((q_camids, "q_camids"), (g_camids, "g_camids"))]
    q_pids, g_pids, q_camids, g_camids = arrays
    for arr, name, n in ((q_pids, "q_pids", dist.shape[0]), (q_camids, "q_camids", dist.shape[0]),
                         (g_pids, "g_pids", dist.shape[1]), (g_camids, "g_camids", dist.shape[1])):  # fmt: skip
        if arr.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},) to match distmat {dist.shape}, got {arr.shape}")
    return dist, q_pids, g_pids, q_camids, g_camids


@dataclass
class PerQueryResult:
    """One entry per query: ``ap`` (NaN when the query has no valid match), ``rank1`` hit,
    ``first_match`` (0-based position of the first true match in the kept ranking, -1 if none)
    and ``num_matches`` (valid matches in the gallery)."""

    ap: np.ndarray
    rank1: np.ndarray
    first_match: np.ndarray
    num_matches: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.num_matches > 0

    @property
    def failures(self) -> np.ndarray:
        """Indices of valid queries whose top-1 result is a wrong identity."""
        return np.flatnonzero(self.valid & ~self.rank1)


def per_query_metrics(distmat, q_pids, g_pids, q_camids, g_camids, *, chunk: int = 512) -> PerQueryResult:
    """AP, rank-1 hit and first-match position of every query, from the evaluation core (Market rule).

    ``chunk`` bounds how many queries' match counts are formed at once.
    """
    from reidlab.evaluation import evaluate_rank

    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    nq = dist.shape[0]
    nmatch = np.zeros(nq, dtype=np.int64)
    for start in range(0, nq, chunk):
        sl = slice(start, min(start + chunk, nq))
        nmatch[sl] = ((g_pids == q_pids[sl, None]) & (g_camids != q_camids[sl, None])).sum(axis=1)
    ap = np.full(nq, np.nan, dtype=np.float64)
    first = np.full(nq, -1, dtype=np.int64)
    if nmatch.any():  # evaluate_rank refuses a problem where no query has a match
        result = evaluate_rank(dist, q_pids, g_pids, q_camids, g_camids, protocol="market", ap="standard")
        ap = result.query_ap.astype(np.float64)
        first = np.where(nmatch > 0, result.first_match_rank.astype(np.int64) - 1, -1)
    return PerQueryResult(ap=ap, rank1=first == 0, first_match=first, num_matches=nmatch)


def top_k(distmat, q_pids, g_pids, q_camids, g_camids, query_index: int, k: int, *, remove_junk: bool = True):
    """Gallery indices of the ``k`` nearest kept entries for one query, with their distances and match flags."""
    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    if not 0 <= query_index < dist.shape[0]:
        raise IndexError(f"query_index {query_index} out of range for {dist.shape[0]} queries")
    order = np.argsort(dist[query_index], kind="stable")
    if remove_junk:
        junk = (g_pids[order] == q_pids[query_index]) & (g_camids[order] == q_camids[query_index])
        order = order[~junk]
    order = order[:k]
    return order, dist[query_index, order], g_pids[order] == q_pids[query_index]


def pick_queries(result, mode: str = "worst", n: int = 4) -> np.ndarray:
    """Indices of the ``n`` worst (lowest AP) or best (highest AP) valid queries.

    ``result`` is a :class:`PerQueryResult`, an evaluation ``RankResult`` (its ``query_ap``), an
    array of per-query AP values (NaN = no valid match), or any object with a ``query_ap`` /
    ``per_query_ap`` / ``ap`` array attribute. Ties keep query order.
    """
    if mode not in ("worst", "best"):
        raise ValueError(f"mode: expected 'worst' or 'best', got {mode!r}")
    if n < 0:
        raise ValueError(f"n: expected a non-negative count, got {n}")
    ap = result
    if not isinstance(result, np.ndarray | torch.Tensor | list | tuple):
        arrays = [getattr(result, a, None) for a in ("query_ap", "per_query_ap", "ap")]
        arrays = [a for a in arrays if isinstance(a, np.ndarray | torch.Tensor | list)]
        if not arrays:
            raise TypeError(f"{type(result).__name__} carries no per-query AP array (query_ap / per_query_ap / ap)")
        ap = arrays[0]
    ap = _np(ap, "per-query AP", np.float64)
    valid = np.flatnonzero(~np.isnan(ap))
    key = ap[valid] if mode == "worst" else -ap[valid]
    return valid[np.argsort(key, kind="stable")[:n]]
