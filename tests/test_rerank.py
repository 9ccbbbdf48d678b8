"""k-reciprocal re-ranking against a dense NumPy transcription of the authors' algorithm."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from reidlab.bench.eval import dense_re_ranking
from reidlab.evaluation import re_ranking


def clustered_features(seed, n_q=30, n_g=120, dim=12, n_ids=25, noise=0.6, dtype=np.float64):
    """Identity clusters, so that k-reciprocal sets and their expansions are non-trivial."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_ids, dim))
    ids = rng.integers(0, n_ids, n_q + n_g)
    feats = (centres[ids] + noise * rng.standard_normal((n_q + n_g, dim))).astype(dtype)
    return feats[:n_q], feats[n_q:]


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value"),
    [(20, 6, 0.3), (7, 1, 0.5), (5, 3, 0.0), (4, 8, 1.0), (11, 2, 0.3)],
)
def test_matches_dense_transcription(k1, k2, lambda_value):
    q, g = clustered_features(k1 * 10 + k2)
    expected = dense_re_ranking(q, g, k1=k1, k2=k2, lambda_value=lambda_value)
    got = re_ranking(q, g, k1=k1, k2=k2, lambda_value=lambda_value, max_chunk_bytes=1)  # smallest blocks
    assert isinstance(got, np.ndarray) and got.shape == (30, 120)
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    assert np.abs(got - expected).max() < 1e-9  # float64: identical up to rounding


def test_float32_features_match_to_1e4():
    q, g = clustered_features(1, n_q=50, n_g=200, dim=32, dtype=np.float32)
    expected = dense_re_ranking(q, g)
    got = re_ranking(torch.from_numpy(q), torch.from_numpy(g))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4, rtol=0)


def test_ties_break_by_index_like_a_stable_argsort():
    # small integer features (exact float64 arithmetic) with duplicated rows: many exact distance ties
    rng = np.random.default_rng(3)
    base = rng.integers(-2, 3, (40, 3)).astype(np.float64)
    feats = np.concatenate([base, base[:30]])  # 30 exact duplicates
    q, g = feats[:25], feats[25:]
    expected = dense_re_ranking(q, g, k1=6, k2=3)
    got = re_ranking(q, g, k1=6, k2=3, max_chunk_bytes=1)
    np.testing.assert_allclose(got, expected, atol=1e-9, rtol=0)


def test_tiny_problems_and_lambda_one_gives_normalised_distance():
    q, g = clustered_features(5, n_q=3, n_g=4)
    expected = dense_re_ranking(q, g, k1=20, k2=6)  # k1 + 1 > N: every list is the whole set
    np.testing.assert_allclose(re_ranking(q, g), expected, atol=1e-9)
    feats = np.concatenate([q, g])
    sq = ((feats[:, None, :] - feats[None, :, :]) ** 2).sum(-1)
    normalised = (sq / sq.max(axis=0)).T[:3, 3:]  # the reference: transpose(d / max(d, axis=0))
    np.testing.assert_allclose(re_ranking(q, g, lambda_value=1.0), normalised, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    q, g = clustered_features(2, dtype=np.float32)
    cpu = re_ranking(torch.from_numpy(q), torch.from_numpy(g))
    gpu = re_ranking(torch.from_numpy(q).cuda(), torch.from_numpy(g).cuda())
    assert gpu.device.type == "cuda"
    np.testing.assert_allclose(gpu.cpu().numpy(), cpu.numpy(), atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k1": 0}, "k1"),
        ({"k2": 1.5}, "k2"),
        ({"lambda_value": 1.5}, "lambda_value"),
        ({"max_chunk_bytes": 0}, "max_chunk_bytes"),
    ],
)
def test_bad_arguments(kwargs, message):
    q, g = clustered_features(0, n_q=4, n_g=6)
    with pytest.raises(ValueError, match=message):
        re_ranking(q, g, **kwargs)


def test_bad_features():
    q, g = clustered_features(0, n_q=4, n_g=6)
    with pytest.raises(ValueError, match="q_feats contains NaN"):
        re_ranking(np.full_like(q, np.nan), g)
    with pytest.raises(ValueError, match="same dimension"):
        re_ranking(q, g[:, :3])
    with pytest.raises(ValueError, match="g_feats must not be empty"):
        re_ranking(q, g[:0])
    with pytest.raises(ValueError, match="q_feats must be a 2-D"):
        re_ranking(q[0], g)


@pytest.mark.parametrize("value", [0.0, 0.7])
def test_collapsed_features_give_the_all_zero_distances_with_a_warning(value):
    q, g = np.full((3, 4), value), np.full((5, 4), value)
    with pytest.warns(UserWarning, match=r"all 8 features are identical"):
        out = re_ranking(q, g)
    assert isinstance(out, np.ndarray) and out.shape == (3, 5)
    assert np.array_equal(out, np.zeros((3, 5)))
    with pytest.warns(UserWarning, match="identical"):
        tensor = re_ranking(torch.ones(2, 3), torch.ones(4, 3), k1=2, k2=1)
    assert torch.equal(tensor, torch.zeros(2, 4))


def test_duplicated_items_are_not_collapse():
    q, g = clustered_features(4, n_q=4, n_g=10)
    g[:5] = q[0]  # many exact duplicates of one query, other items distinct
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = re_ranking(q, g)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, dense_re_ranking(q, g, k1=20, k2=6), atol=1e-9)
