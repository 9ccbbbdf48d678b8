"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) in torch, in O(N*k) memory, on CPU or GPU.

Semantics are those of the authors' reference code with squared Euclidean distances between the
features (N = n_q + n_g items, query rows first):

1. ``d = |x_i - x_j|^2``; the N x N matrix is column-max normalised and transposed
   (``transpose(d / max(d, axis=0))``). ``d`` is symmetric, so row ``i`` becomes ``d[i, :] / max_k d[i, k]``.
2. ``N(i, k)`` = the ``k`` nearest items of ``i`` (itself included) in that normalised row.
   ``R(i) = {j in N(i, k1 + 1) : i in N(j, k1 + 1)}``; for each ``c in R(i)`` its half set
   ``R_h(c)`` (same rule with ``round(k1 / 2) + 1``, NumPy rounding) is added when
   ``|R_h(c) & R(i)| > 2/3 |R_h(c)|``.
3. ``V[i, j] = exp(-d_ij) / sum`` over the expanded set; local query expansion replaces ``V[i]`` by
   the mean of ``V`` over ``N(i, k2)`` (skipped when ``k2 == 1``).
4. Jaccard distance for query rows: ``1 - s / (2 - s)``, ``s = sum_k min(V[i, k], V[j, k])``.
5. ``final = (1 - lambda) * jaccard + lambda * d_normalised``, returned as ``(n_q, n_g)``.

Neighbour lists rank by (normalised distance, index): ties break by item index (NumPy's stable
``argsort``; the reference's default quicksort leaves tie order unspecified). V is float32 (float64
with float64 features), as in the authors' Python version.

How it is computed: one pass over the *upper triangle* of the distance matrix in square blocks
(each block serves its rows and, transposed, its columns) keeps, per item, its running row max and
its ``max(k1 + 1, k2) + 1`` smallest distances; the q x g block values go straight into the output.
Reciprocal sets, the expansion and V are then sparse (<= ``(k1 + 1)(round(k1/2) + 2)`` entries a row),
and the Jaccard sums join query and gallery entries of V through an inverted index. Memory is
O(N * k) plus the ``(n_q, n_g)`` output; nothing N x N is ever held.

Relation to the peers' variants (see the peers spec §2.3):

* BoT / AGW (features, squared Euclidean) compute the same thing with float16 V; TransReID and
  CLIP-ReID have the same code but hard-code ``k1=50, k2=15`` in their evaluator.
* torchreid and layumi's CPU version take *distance matrices* and square them again: fed the
  squared Euclidean (torchreid) or ``2 - 2cos`` (layumi), they weight by the **4th power** of the
  Euclidean distance, in the Gaussian weights and in the lambda mix alike, so their "+RR" numbers
  are not comparable with this function's.
* fast-reid's ``compute_jaccard_distance`` skips the column normalisation, uses faiss kNN and mixes
  the Jaccard term with the cosine distance.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from reidlab.evaluation.distances import prepare_features
from reidlab.evaluation.inputs import ArrayLike, positive_int, resolve_device
from reidlab.evaluation.knn import NeighbourLists, nearest_neighbours


def re_ranking(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    device: torch.device | str | None = None,
    max_chunk_bytes: int = 256 * 2**20,
) -> np.ndarray | torch.Tensor:
    """Re-ranked ``(n_q, n_g)`` distance matrix (see the module docstring for the exact semantics).

    Features are used as given (L2-normalise them first for the BoT/TransReID setting). Returns a
    torch tensor on the features' device, or a NumPy array when both inputs are NumPy arrays.
    ``max_chunk_bytes`` bounds each temporary block (distance blocks, expansion and Jaccard chunks).

    Collapsed features (all ``n_q + n_g`` identical, e.g. a diverged model or all-zero embeddings):
    the reference code divides 0 by 0 and returns NaN. Here a ``UserWarning`` is raised and the
    all-zero matrix returned, i.e. the original distances: re-ranking cannot separate identical
    items, and the evaluator then ranks ties by gallery index exactly as without re-ranking, so a
    run reports its (chance-level) metrics instead of failing. A row whose maximum distance is 0
    for numerical reasons is normalised as 0, never NaN.
    """
    k1, k2 = positive_int(k1, "k1"), positive_int(k2, "k2")
    if not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value!r}")
    budget = positive_int(max_chunk_bytes, "max_chunk_bytes")
    device = resolve_device(device, q_feats, g_feats)
    q, g, _ = prepare_features(q_feats, g_feats, metric="euclidean", device=device)
    x = torch.cat([q, g])
    n_q, n = len(q), len(x)
    k_forward, k_half, k_expand = min(k1 + 1, n), min(round(k1 / 2) + 1, n), min(k2, n)

    lists = nearest_neighbours(x, n_q, max(k_forward, k_expand), budget)
    if not bool((lists.row_max > 0).any()):
        return _collapsed(n, lists.query_gallery, q_feats, g_feats)
    lists.row_max.clamp_(min=torch.finfo(lists.row_max.dtype).tiny)  # 0 / tiny = 0, never 0 / 0
    neighbours = lists.index
    recip = _reciprocal(neighbours[:, :k_forward], budget)
    recip_half = _reciprocal(neighbours[:, :k_half], budget)
    rows, cols = _expanded_sets(neighbours[:, :k_forward], recip, neighbours[:, :k_half], recip_half, budget)
    dist = _pair_distances(x, rows, cols, lists, budget)
    v_rows, v_cols, v_vals = rows, cols, _row_normalise(torch.exp(-dist), rows, n)
    del dist, rows, cols, recip, recip_half
    if k2 != 1:
        v_rows, v_cols, v_vals = _query_expansion(v_rows, v_cols, v_vals, neighbours[:, :k_expand], n, budget)
    out = lists.query_gallery.div_(lists.row_max[:n_q, None])
    del lists, neighbours
    _mix_jaccard(out, v_rows, v_cols, v_vals, n_q, n, float(lambda_value), budget)
    return _as_input_type(out, q_feats, g_feats)


def _as_input_type(out: torch.Tensor, q_feats: ArrayLike, g_feats: ArrayLike) -> np.ndarray | torch.Tensor:
    """A NumPy array when both inputs are NumPy arrays, else the tensor."""
    if isinstance(q_feats, np.ndarray) and isinstance(g_feats, np.ndarray):
        return out.cpu().numpy()
    return out


def _collapsed(n: int, query_gallery: torch.Tensor, q_feats: ArrayLike, g_feats: ArrayLike):
    """The all-zero (original) distances of collapsed features, with a warning (see :func:`re_ranking`)."""
    warnings.warn(
        f"re_ranking: all {n} features are identical (every pairwise distance is 0); re-ranking cannot "
        "separate them, returning the all-zero original distances (ties rank by gallery index)",
        UserWarning,
        stacklevel=3,
    )
    return _as_input_type(torch.zeros_like(query_gallery), q_feats, g_feats)


def _row_chunks(n: int, bytes_per_row: int, budget: int):
    step = max(1, budget // max(1, bytes_per_row))
    for start in range(0, n, step):
        yield slice(start, min(start + step, n))


def _reciprocal(nn: torch.Tensor, budget: int) -> torch.Tensor:
    """``recip[i, s]``: is ``i`` among the neighbours of its ``s``-th neighbour ``nn[i, s]``?"""
    n, k = nn.shape
    recip = torch.empty(n, k, dtype=torch.bool, device=nn.device)
    for rows in _row_chunks(n, k * k * 9, budget):
        ids = torch.arange(rows.start, rows.stop, device=nn.device)
        recip[rows] = (nn[nn[rows]] == ids[:, None, None]).any(-1)
    return recip


def _expanded_sets(nn, recip, nn_half, recip_half, budget):
    """``(rows, cols)`` of every item's expanded k-reciprocal set, sorted by row then column."""
    n, k = nn.shape
    kh = nn_half.shape[1]
    out_rows, out_cols = [], []
    for rows in _row_chunks(n, k * kh * (k + 24) + k * 16, budget):
        cand, cand_ok = nn[rows], recip[rows]  # R(i) = cand[cand_ok]
        sub, sub_ok = nn_half[cand], recip_half[cand]  # R_h(c) for every candidate c
        in_r = ((sub[..., None] == cand[:, None, None, :]) & cand_ok[:, None, None, :]).any(-1)
        overlap = (in_r & sub_ok).sum(-1)
        accept = cand_ok & (3 * overlap > 2 * sub_ok.sum(-1))
        cols = torch.cat(
            [cand.masked_fill(~cand_ok, n), sub.masked_fill(~(sub_ok & accept[..., None]), n).flatten(1)], dim=1
        )
        cols = torch.sort(cols, dim=1).values
        keep = cols < n
        keep[:, 1:] &= cols[:, 1:] != cols[:, :-1]
        r, s = keep.nonzero(as_tuple=True)
        out_rows.append(r + rows.start)
        out_cols.append(cols[r, s])
    return torch.cat(out_rows), torch.cat(out_cols)


def _pair_distances(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, lists: NeighbourLists, budget: int):
    """Normalised distance of each (row, col) pair: looked up in the row's neighbour list when there
    (most pairs), else computed from the features."""
    k = lists.index.shape[1]
    out = torch.empty(len(rows), dtype=x.dtype, device=x.device)
    step = max(1, budget // (k * 32))
    missing = []
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        hit = lists.index[r] == c[:, None]
        out[start : start + step] = lists.dist[r, hit.to(torch.uint8).argmax(1)]
        missing.append(torch.nonzero(~hit.any(1)).squeeze(1) + start)
    missing = torch.cat(missing)
    step = max(1, budget // (4 * x.shape[1] * x.element_size()))
    for start in range(0, len(missing), step):
        pairs = missing[start : start + step]
        xr, xc = x[rows[pairs]], x[cols[pairs]]
        dist = ((xr * xr).sum(1) + (xc * xc).sum(1) - 2.0 * (xr * xc).sum(1)).clamp_(min=0.0)
        out[pairs] = dist / lists.row_max[rows[pairs]]
    return out


def _row_normalise(vals: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    totals = torch.zeros(n, dtype=vals.dtype, device=vals.device).index_add_(0, rows, vals)
    return vals / totals[rows]


def _csr_pointers(rows: torch.Tensor, n: int) -> torch.Tensor:
    counts = torch.bincount(rows, minlength=n)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _gather_segments(ptr: torch.Tensor, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each requested segment id, the positions ``ptr[id]..ptr[id + 1]``: ``(owner, position)``."""
    lengths = ptr[segments + 1] - ptr[segments]
    owner = torch.repeat_interleave(torch.arange(len(segments), device=ptr.device), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    position = ptr[segments][owner] + torch.arange(len(owner), device=ptr.device) - first[owner]
    return owner, position


def _query_expansion(v_rows, v_cols, v_vals, nn, n, budget):
    """``V_qe[i] = mean(V[nn[i, :k2]])`` as a sparse (rows, cols, vals) triple sorted by row, column."""
    k2 = nn.shape[1]
    ptr = _csr_pointers(v_rows, n)
    mean_nnz = max(1, len(v_rows) // n)
    out_rows, out_cols, out_vals = [], [], []
    for rows in _row_chunks(n, k2 * mean_nnz * 48, budget):
        owner, position = _gather_segments(ptr, nn[rows].reshape(-1))
        row = owner // k2 + rows.start
        keys = row * n + v_cols[position]
        unique, inverse = torch.unique(keys, return_inverse=True)
        sums = torch.zeros(len(unique), dtype=v_vals.dtype, device=v_vals.device).index_add_(
            0, inverse, v_vals[position]
        )
        out_rows.append(unique // n)
        out_cols.append(unique % n)
        out_vals.append(sums / k2)
    return torch.cat(out_rows), torch.cat(out_cols), torch.cat(out_vals)


def _mix_jaccard(out, v_rows, v_cols, v_vals, n_q, n, lam, budget) -> None:
    """``out[i, j] <- lam * out[i, j] + (1 - lam) * (1 - s / (2 - s))`` with the sparse min-sums ``s``."""
    n_g = n - n_q
    gallery = v_rows >= n_q
    g_rows, g_cols, g_vals = v_rows[gallery] - n_q, v_cols[gallery], v_vals[gallery]
    order = torch.sort(g_cols, stable=True).indices  # inverted index: gallery entries grouped by column
    g_rows, g_vals = g_rows[order], g_vals[order]
    col_ptr = _csr_pointers(g_cols[order], n)
    query = v_rows < n_q
    q_rows, q_cols, q_vals = v_rows[query], v_cols[query], v_vals[query]
    row_ptr = _csr_pointers(q_rows, n_q)
    pairs_per_row = torch.zeros(n_q, dtype=torch.int64, device=out.device).index_add_(
        0, q_rows, col_ptr[q_cols + 1] - col_ptr[q_cols]
    )
    pair_budget = max(1, budget // 64)
    start = 0
    cumulative = torch.cumsum(pairs_per_row, 0).cpu()
    while start < n_q:
        base = int(cumulative[start - 1]) if start else 0
        stop = max(start + 1, int(torch.searchsorted(cumulative, base + pair_budget, right=True)))
        stop = min(stop, n_q, start + max(1, budget // max(1, 8 * n_g)))
        entries = torch.arange(int(row_ptr[start]), int(row_ptr[stop]), device=out.device)
        owner, position = _gather_segments(col_ptr, q_cols[entries])
        shared = torch.minimum(q_vals[entries][owner], g_vals[position])
        target = (q_rows[entries][owner] - start) * n_g + g_rows[position]
        s = torch.zeros((stop - start) * n_g, dtype=out.dtype, device=out.device).index_add_(0, target, shared)
        del owner, position, shared, target
        s.div_(2.0 - s)  # jaccard = 1 - s / (2 - s)
        block = out[start:stop]
        block.mul_(lam).add_(1.0 - lam).sub_(s.view(stop - start, n_g), alpha=1.0 - lam)
        start = stop
