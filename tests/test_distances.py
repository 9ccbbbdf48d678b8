"""Distances against direct per-pair formulas; chunking, dtypes and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidlab.evaluation import (
    compute_distance,
    cosine_distance,
    euclidean_squared_distance,
    iter_distance_chunks,
    masked_cosine_distance,
)


def features(seed=0, n_q=7, n_g=11, dim=5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_q, dim)).astype(dtype), rng.standard_normal((n_g, dim)).astype(dtype)


def test_euclidean_is_squared_distance():
    q, g = features()
    expected = np.array([[np.sum((a - b) ** 2) for b in g] for a in q])
    got = euclidean_squared_distance(q, g)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    assert float(euclidean_squared_distance(q, q).diagonal().abs().max()) < 1e-10  # clamped, never negative


def test_cosine_distance():
    q, g = features(1)
    expected = np.array([[1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in g] for a in q])
    np.testing.assert_allclose(cosine_distance(torch.from_numpy(q), torch.from_numpy(g)).numpy(), expected, atol=1e-12)


def test_masked_cosine_matches_dpm_per_query_loop():
    q, g = features(2)
    masks = np.random.default_rng(3).random(q.shape)
    expected = np.empty((len(q), len(g)))
    for i, (query, mask) in enumerate(zip(q, masks, strict=True)):
        q_hat = query / np.linalg.norm(query)
        for j, gallery in enumerate(g):
            weighted = mask * gallery / np.linalg.norm(gallery)
            similarity = q_hat @ (weighted / np.linalg.norm(weighted))
            expected[i, j] = np.arccos(np.clip(similarity, -1 + 1e-5, 1 - 1e-5))
    np.testing.assert_allclose(masked_cosine_distance(q, g, masks).numpy(), expected, atol=1e-10)
    # an all-ones mask gives arccos of the plain cosine similarity
    ones = masked_cosine_distance(q, g, np.ones_like(q)).numpy()
    plain = 1 - cosine_distance(q, g).numpy()
    np.testing.assert_allclose(ones, np.arccos(np.clip(plain, -1 + 1e-5, 1 - 1e-5)), atol=1e-10)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "masked_cosine"])
def test_chunks_cover_all_rows_and_respect_the_budget(metric):
    q, g = features(4, n_q=23, n_g=9, dtype=np.float32)
    masks = np.ones_like(q) if metric == "masked_cosine" else None
    full = compute_distance(q, g, metric=metric, q_masks=masks)
    chunks = list(iter_distance_chunks(q, g, metric=metric, q_masks=masks, max_chunk_bytes=3 * 9 * 4))
    assert [start for start, _ in chunks] == list(range(0, 23, 3))
    assert all(chunk.shape[0] <= 3 for _, chunk in chunks)
    np.testing.assert_allclose(torch.cat([c for _, c in chunks]).numpy(), full.numpy(), atol=1e-6)


def test_half_precision_is_promoted():
    q, g = features(5, dtype=np.float32)
    got = compute_distance(torch.from_numpy(q).half(), torch.from_numpy(g).half(), metric="cosine")
    assert got.dtype == torch.float32


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda q, g: compute_distance(q, g[:, :3]), "same dimension"),
        (lambda q, g: compute_distance(q[0], g), "q_feats must be a 2-D"),
        (lambda q, g: compute_distance(q, np.where(g > 1, np.nan, g)), "g_feats contains NaN"),
        (lambda q, g: compute_distance(q, np.where(g > 1, np.inf, g)), "g_feats contains NaN or infinite"),
        (lambda q, g: compute_distance(q, g[:0]), "g_feats must not be empty"),
        (lambda q, g: compute_distance(q, g, metric="l1"), "metric"),
        (lambda q, g: compute_distance(q, g, metric="masked_cosine"), "needs q_masks"),
        (lambda q, g: compute_distance(q, g, metric="masked_cosine", q_masks=q[:2]), "q_masks must have the shape"),
        (lambda q, g: compute_distance(q, g, metric="cosine", q_masks=q), "only used with metric='masked_cosine'"),
        (lambda q, g: compute_distance(q.astype(int), g), "q_feats must hold floating-point"),
        (lambda q, g: compute_distance("q.npy", g), "q_feats must be a NumPy array or torch tensor"),
    ],
)
def test_bad_input(call, message):
    q, g = features(6)
    with pytest.raises(ValueError, match=message):
        call(q, g)
