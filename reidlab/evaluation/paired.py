"""Paired comparisons of two models on the same queries: the difference of a per-query score with a bootstrap interval.

Small test sets (the synthetic worlds' mini sizes have ~100 queries) make mAP differences of a few points
common by chance; resampling the *queries* (the same resample for both models) says how large a difference the
test set can resolve.
"""

from __future__ import annotations

import numpy as np


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, num_samples: int = 2000, level: float = 0.95, seed: int = 0
) -> dict[str, float]:
    """Mean of ``b − a`` over queries valid in both (finite values), in the units given, with a percentile
    bootstrap interval over queries: ``{"difference", "low", "high", "queries"}``."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be 1-D per-query values of the same length, got {a.shape} and {b.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    diff = (b - a)[np.isfinite(a) & np.isfinite(b)]
    if diff.size == 0:
        raise ValueError("no query is valid for both models")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(int(num_samples), diff.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return {"difference": float(diff.mean()), "low": float(np.quantile(means, tail)),
            "high": float(np.quantile(means, 1.0 - tail)), "queries": int(diff.size)}  # fmt: skip
