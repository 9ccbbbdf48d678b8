"""Query x gallery distances, vectorised and computed in chunks of query rows on any device.

Metrics (smaller = more similar):

* ``"euclidean"``: **squared** Euclidean ``|q|^2 + |g|^2 - 2 q.g`` clamped at 0 (torchreid's and BoT's
  ``euclidean``; after L2 normalisation it ranks exactly like cosine).
* ``"cosine"``: ``1 - cos(q, g)``.
* ``"masked_cosine"``: DPM's test-time distance (methods spec §2.6). The query's mask re-weights the
  L2-normalised gallery feature, ``s = <q^, normalize(m_q * g^)>``, vectorised as
  ``((Q^ * M) G^T) / sqrt((M * M)(G^ * G^)^T)``; the distance is ``arccos(clip(s, -1 + 1e-5, 1 - 1e-5))``.
  Gallery masks are not used (as in DPM).

Half-precision features are promoted to float32; float64 stays float64.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from reidlab.evaluation.inputs import ArrayLike, as_tensor, check_matrix, choice, resolve_device, rows_per_chunk

METRICS = ("euclidean", "cosine", "masked_cosine")
_CLIP = 1e-5


def _features(value: ArrayLike, name: str, device: torch.device) -> torch.Tensor:
    tensor = as_tensor(value, name)
    check_matrix(tensor, name, allow_inf=False)
    if tensor.dtype not in (torch.float32, torch.float64):
        tensor = tensor.float()
    return tensor.to(device)


def prepare_features(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    *,
    metric: str,
    q_masks: ArrayLike | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate features (and DPM query masks) and move them to one device and dtype."""
    choice(metric, "metric", METRICS)
    device = resolve_device(device, q_feats, g_feats)
    q = _features(q_feats, "q_feats", device)
    g = _features(g_feats, "g_feats", device)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"q_feats and g_feats must have the same dimension, got {q.shape[1]} and {g.shape[1]}")
    dtype = torch.float64 if torch.float64 in (q.dtype, g.dtype) else torch.float32
    q, g = q.to(dtype), g.to(dtype)
    masks = None
    if metric == "masked_cosine":
        if q_masks is None:
            raise ValueError("metric='masked_cosine' needs q_masks (one mask per query, shaped like q_feats)")
        masks = _features(q_masks, "q_masks", device).to(dtype)
        if masks.shape != q.shape:
            raise ValueError(f"q_masks must have the shape of q_feats {tuple(q.shape)}, got {tuple(masks.shape)}")
    elif q_masks is not None:
        raise ValueError(f"q_masks is only used with metric='masked_cosine', got metric={metric!r}")
    return q, g, masks


class GalleryDistance:
    """Distances from query rows to a fixed gallery; gallery-side terms are computed once."""

    def __init__(self, g: torch.Tensor, metric: str):
        self.metric = choice(metric, "metric", METRICS)
        if metric == "euclidean":
            self.g = g
            self.g_sq = (g * g).sum(1)
        elif metric == "cosine":
            self.g = F.normalize(g, dim=1)
        else:
            self.g = F.normalize(g, dim=1)
            self.g_sq = self.g * self.g

    def __call__(self, q: torch.Tensor, q_masks: torch.Tensor | None = None) -> torch.Tensor:
        """``(len(q), len(gallery))`` distances of the query rows ``q``."""
        if self.metric == "euclidean":
            dist = torch.addmm(self.g_sq[None, :], q, self.g.T, alpha=-2.0)
            dist += (q * q).sum(1, keepdim=True)
            return dist.clamp_(min=0.0)
        if self.metric == "cosine":
            return torch.mm(F.normalize(q, dim=1), self.g.T).neg_().add_(1.0)
        if q_masks is None:
            raise ValueError("metric='masked_cosine' needs q_masks")
        q_hat = F.normalize(q, dim=1)
        sim = torch.mm(q_hat * q_masks, self.g.T)
        norm = torch.mm(q_masks * q_masks, self.g_sq.T).sqrt_().clamp_(min=1e-12)
        return sim.div_(norm).clamp_(-1.0 + _CLIP, 1.0 - _CLIP).arccos_()


def iter_distance_chunks(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    *,
    metric: str = "cosine",
    q_masks: ArrayLike | None = None,
    device: torch.device | str | None = None,
    max_chunk_bytes: int = 256 * 2**20,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(first_query_index, distances)`` for consecutive chunks of query rows.

    Each chunk holds at most ``max_chunk_bytes`` of distances (at least one row), so the full query x
    gallery matrix is never materialised.
    """
    q, g, masks = prepare_features(q_feats, g_feats, metric=metric, q_masks=q_masks, device=device)
    distance = GalleryDistance(g, metric)
    step = rows_per_chunk(len(g), q.element_size(), max_chunk_bytes)
    for start in range(0, len(q), step):
        stop = min(start + step, len(q))
        yield start, distance(q[start:stop], None if masks is None else masks[start:stop])


def compute_distance(
    q_feats: ArrayLike,
    g_feats: ArrayLike,
    *,
    metric: str = "cosine",
    q_masks: ArrayLike | None = None,
    device: torch.device | str | None = None,
    max_chunk_bytes: int = 256 * 2**20,
) -> torch.Tensor:
    """The full ``(n_q, n_g)`` distance matrix as a torch tensor (computed chunk by chunk)."""
    chunks = [
        chunk
        for _, chunk in iter_distance_chunks(
            q_feats, g_feats, metric=metric, q_masks=q_masks, device=device, max_chunk_bytes=max_chunk_bytes
        )
    ]
    return torch.cat(chunks, dim=0)


def euclidean_squared_distance(q_feats: ArrayLike, g_feats: ArrayLike) -> torch.Tensor:
    """Squared Euclidean distance matrix (clamped at 0)."""
    return compute_distance(q_feats, g_feats, metric="euclidean")


def cosine_distance(q_feats: ArrayLike, g_feats: ArrayLike) -> torch.Tensor:
    """``1 - cosine similarity`` matrix."""
    return compute_distance(q_feats, g_feats, metric="cosine")


def masked_cosine_distance(q_feats: ArrayLike, g_feats: ArrayLike, q_masks: ArrayLike) -> torch.Tensor:
    """DPM's query-mask-weighted arccos distance matrix (see the module docstring)."""
    return compute_distance(q_feats, g_feats, metric="masked_cosine", q_masks=q_masks)
