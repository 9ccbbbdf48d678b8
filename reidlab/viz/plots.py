"""Summary plots: CMC curves, positive/negative distance histograms, per-camera accuracy, t-SNE map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib import pyplot as plt
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from reidlab.viz.figures import save_figure
from reidlab.viz.per_query import check_ranking_inputs, per_query_metrics


def _cmc_and_map(run: Any) -> tuple[np.ndarray, float | None]:
    if isinstance(run, Mapping):
        cmc, mAP = run.get("cmc"), run.get("mAP")
    elif hasattr(run, "cmc"):
        cmc, mAP = run.cmc, getattr(run, "mAP", None)
    else:
        cmc, mAP = run, None
    if cmc is None:
        raise ValueError("each run must be a RankResult, a dict with 'cmc', or a CMC array")
    cmc = np.asarray(cmc.detach().cpu() if isinstance(cmc, torch.Tensor) else cmc, dtype=np.float64).reshape(-1)
    return cmc, (None if mAP is None else float(mAP))


def plot_cmc(runs: Mapping[str, Any], *, max_rank: int = 20, title: str = "CMC curves", save=None) -> Figure:
    """CMC curves (matching rate vs rank, in %) for several runs; the legend gives rank-1 and mAP.

    Each value is a ``RankResult``, a dict with ``"cmc"`` (and optional ``"mAP"``) or a CMC array
    with values in ``[0, 1]``.
    """
    if not runs:
        raise ValueError("runs: expected at least one named run")
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for name, run in runs.items():
        cmc, mAP = _cmc_and_map(run)
        n = min(max_rank, len(cmc))
        label = f"{name}: R1 {100 * cmc[0]:.1f}%" + (f", mAP {100 * mAP:.1f}%" if mAP is not None else "")
        ax.plot(np.arange(1, n + 1), 100 * cmc[:n], marker="o", markersize=3, label=label)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(1, max_rank)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def distance_histograms(
    distmat, q_pids, g_pids, q_camids, g_camids, *, bins: int = 60, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Histogram ``(edges, positive_counts, negative_counts)`` of query-gallery distances, chunked.

    Positives: same identity from another camera; negatives: other identities; junk (same
    identity and camera) is left out, as in the Market protocol.
    """
    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(distmat, q_pids, g_pids, q_camids, g_camids)

    def chunks():
        for start in range(0, dist.shape[0], chunk):
            sl = slice(start, start + chunk)
            same = q_pids[sl, None] == g_pids[None]
            keep = ~(same & (q_camids[sl, None] == g_camids[None]))
            yield dist[sl], same & keep, ~same & keep

    lo, hi = np.inf, -np.inf
    for d, positive, negative in chunks():
        kept = d[positive | negative]
        if kept.size:
            lo, hi = min(lo, float(kept.min())), max(hi, float(kept.max()))
    if not np.isfinite(lo):
        raise ValueError("distance_histograms: no query-gallery pair is left after removing junk")
    edges = np.linspace(lo, hi + 1e-6, bins + 1)
    pos = np.zeros(bins, dtype=np.int64)
    neg = np.zeros(bins, dtype=np.int64)
    for d, positive, negative in chunks():
        pos += np.histogram(d[positive], edges)[0]
        neg += np.histogram(d[negative], edges)[0]
    return edges, pos, neg


def plot_distance_histograms(
    distmat, q_pids, g_pids, q_camids, g_camids, *, bins: int = 60, title: str | None = None, save=None
) -> Figure:
    """Densities of positive (same identity) and negative query-gallery distances; less overlap = easier."""
    edges, pos, neg = distance_histograms(distmat, q_pids, g_pids, q_camids, g_camids, bins=bins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    width = np.diff(edges)
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    groups = ((neg, "negatives (different ID)", "#d62728"), (pos, "positives (same ID, other camera)", "#2ca02c"))
    for counts, name, color in groups:
        total = counts.sum()
        density = counts / (total * width) if total else counts.astype(float)
        mean = float((counts * centers).sum() / total) if total else float("nan")
        ax.bar(centers, density, width=width, alpha=0.5, color=color, label=f"{name}: n={total:,}, mean {mean:.3f}")
        ax.axvline(mean, color=color, linestyle="--", linewidth=1)
    ax.set_xlabel("query-gallery distance")
    ax.set_ylabel("density")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.25)  # room for the legend
    ax.set_title(title or "Distances of positive and negative pairs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def per_camera_accuracy(distmat, q_pids, g_pids, q_camids, g_camids) -> pd.DataFrame:
    """Rank-1 and mAP (in %) per query camera, over queries with at least one valid match."""
    dist, q_pids, g_pids, q_camids, g_camids = check_ranking_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    res = per_query_metrics(dist, q_pids, g_pids, q_camids, g_camids)
    frame = pd.DataFrame({"query camera": q_camids, "rank-1 (%)": 100.0 * res.rank1, "mAP (%)": 100.0 * res.ap})
    frame = frame[res.valid]
    table = frame.groupby("query camera").agg(
        queries=("rank-1 (%)", "size"), **{"rank-1 (%)": ("rank-1 (%)", "mean"), "mAP (%)": ("mAP (%)", "mean")}
    )
    return table.reset_index()


def plot_per_camera_accuracy(
    distmat, q_pids, g_pids, q_camids, g_camids, *, title: str | None = None, save=None
) -> Figure:
    """Grouped bars of rank-1 and mAP per query camera (query counts under the bars)."""
    table = per_camera_accuracy(distmat, q_pids, g_pids, q_camids, g_camids)
    x = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(max(4.5, 0.9 * len(table) + 2), 4.0))
    for offset, column, color in ((-0.2, "rank-1 (%)", "#1f77b4"), (0.2, "mAP (%)", "#ff7f0e")):
        bars = ax.bar(x + offset, table[column], width=0.4, label=column, color=color)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(x, [f"cam {c}\n({n} q)" for c, n in zip(table["query camera"], table["queries"], strict=True)])
    ax.set_xlabel("query camera")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.legend(fontsize=8)
    ax.set_title(title or "Accuracy per query camera")
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def embed_2d(features: np.ndarray | torch.Tensor, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """t-SNE of L2-normalised features to 2-D (perplexity capped for small sets)."""
    from sklearn.manifold import TSNE

    x = features.detach().float().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"features: expected (N, D) with N >= 3, got shape {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    perplexity = min(perplexity, (len(x) - 1) / 3)
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x)


def plot_embedding_map(
    features,
    pids,
    camids,
    *,
    max_identities: int = 20,
    seed: int = 0,
    perplexity: float = 30.0,
    title: str | None = None,
    save=None,
) -> Figure:
    """2-D t-SNE map of embeddings, coloured by identity (left) and by camera (right).

    At most ``max_identities`` identities (chosen at random with ``seed``) are drawn so colours
    stay distinguishable; a good embedding groups identities and mixes cameras.
    """
    pids = np.asarray(pids.cpu() if isinstance(pids, torch.Tensor) else pids)
    camids = np.asarray(camids.cpu() if isinstance(camids, torch.Tensor) else camids)
    feats = features.detach().float().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if not len(feats) == len(pids) == len(camids):
        raise ValueError(f"features, pids, camids: lengths differ ({len(feats)}, {len(pids)}, {len(camids)})")
    ids = np.unique(pids)
    if len(ids) > max_identities:
        ids = np.sort(np.random.default_rng(seed).choice(ids, max_identities, replace=False))
    keep = np.isin(pids, ids)
    xy = embed_2d(feats[keep], seed=seed, perplexity=perplexity)
    pids, camids = pids[keep], camids[keep]
    fig, (ax_id, ax_cam) = plt.subplots(1, 2, figsize=(11.0, 4.8))
    id_index = np.searchsorted(ids, pids)
    n_ids = len(ids)
    if n_ids <= 20:  # one distinct colour per identity, every identity named on the colour bar
        cmap = ListedColormap(matplotlib.colormaps["tab20"].colors[:n_ids])
        ticks = np.arange(n_ids)
    else:
        cmap = matplotlib.colormaps["nipy_spectral"].resampled(n_ids)
        ticks = np.linspace(0, n_ids - 1, 10).round().astype(int)
    norm = BoundaryNorm(np.arange(n_ids + 1) - 0.5, cmap.N)
    sc = ax_id.scatter(xy[:, 0], xy[:, 1], c=id_index, cmap=cmap, norm=norm, s=14)
    ax_id.set_title(f"coloured by identity ({n_ids} IDs, {keep.sum()} images)")
    cbar = fig.colorbar(sc, ax=ax_id, label="identity", ticks=ticks)
    cbar.ax.set_yticklabels([str(ids[t]) for t in ticks], fontsize=7)
    cams = np.unique(camids)
    for cam in cams:
        m = camids == cam
        ax_cam.scatter(xy[m, 0], xy[m, 1], s=14, label=f"cam {cam}", alpha=0.8)
    ax_cam.set_title("coloured by camera")
    ax_cam.legend(fontsize=8, markerscale=1.5, loc="best")
    for ax in (ax_id, ax_cam):
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
    fig.suptitle(title or "Embedding map (t-SNE of L2-normalised features)")
    fig.tight_layout()
    save_figure(fig, save)
    return fig
