"""Ranking grids: each query with its top-k gallery images (green border = same identity, red = not)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reidlab.viz.figures import save_figure
from reidlab.viz.images import IMAGENET_MEAN, IMAGENET_STD, as_rgb, load_tensor, overlay_heatmap
from reidlab.viz.per_query import per_query_metrics, top_k

QUERY_COLOR = "#1f77b4"  # blue
MATCH_COLOR = "#2ca02c"  # green
MISMATCH_COLOR = "#d62728"  # red
BORDER_WIDTH = 4.0


def _ids(samples: Sequence[Any], name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        return np.array([s.pid for s in samples], dtype=np.int64), np.array([s.camid for s in samples], dtype=np.int64)
    except AttributeError as err:
        raise TypeError(f"{name}: expected samples with .path, .pid and .camid (reidlab.data.Sample)") from err


def draw_panel(ax: Axes, image: np.ndarray, title: str, color: str, kind: str) -> None:
    """Show one image with a coloured border; ``kind`` ("query", "match", "mismatch") is stored as the gid."""
    ax.imshow(image, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(color)
        spine.set_linewidth(BORDER_WIDTH)
    ax.set_title(title, fontsize=7.5, color=color)
    ax.set_gid(kind)


def ranking_cams(
    cam, query_sample, gallery_samples, *, image_size=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, transform=None
) -> tuple[np.ndarray, np.ndarray]:
    """Grad-CAM maps for one ranking row: the query explained against its top-1 gallery embedding,
    each gallery image explained against the query embedding (with the samples' cameras, for SIE)."""
    q = load_tensor(query_sample.path, image_size, mean, std, transform)[None]
    g = torch.stack([load_tensor(s.path, image_size, mean, std, transform) for s in gallery_samples])
    q_cam, g_cams = [query_sample.camid], [s.camid for s in gallery_samples]
    emb = cam.embed(torch.cat([q, g]), q_cam + g_cams)
    q_map = cam(q, emb[1:2], q_cam)[0]
    g_maps = cam(g, emb[0:1].expand(len(g), -1), g_cams)
    return q_map, g_maps


def plot_ranking(
    distmat: np.ndarray | torch.Tensor,
    query: Sequence[Any],
    gallery: Sequence[Any],
    query_indices: Sequence[int],
    *,
    topk: int = 10,
    remove_junk: bool = True,
    cam: Any = None,
    image_size: tuple[int, int] | None = None,
    display_size: tuple[int, int] = (128, 64),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    transform: Callable | None = None,
    title: str | None = None,
    save=None,
) -> Figure:
    """One row per query: the query (blue) then its ``topk`` nearest gallery images.

    Borders are green for the same identity, red otherwise; titles give rank, distance,
    identity and camera. Junk entries (same identity *and* camera) are skipped as in the Market
    protocol unless ``remove_junk=False``. With ``cam`` (an :class:`~reidlab.viz.gradcam.EmbeddingCAM`)
    and the model's input recipe (``transform``, or ``image_size`` + ``mean``/``std``), Grad-CAM
    overlays are drawn: each gallery image against the query, the query against its top-1.
    Every image is shown at ``display_size`` (height, width).
    """
    if topk < 1:
        raise ValueError(f"topk: expected at least 1, got {topk}")
    query_indices = [int(i) for i in query_indices]
    if not query_indices:
        raise ValueError("query_indices: expected at least one query index")
    if cam is not None and image_size is None and transform is None:
        raise ValueError("cam= needs the model's input recipe: transform= or image_size=(height, width)")
    q_pids, q_cams = _ids(query, "query")
    g_pids, g_cams = _ids(gallery, "gallery")
    dist = distmat.detach().cpu().numpy() if isinstance(distmat, torch.Tensor) else np.asarray(distmat)
    sel = np.asarray(query_indices)
    if sel.min() < 0 or sel.max() >= dist.shape[0]:
        raise IndexError(f"query_indices must lie in [0, {dist.shape[0]}), got {query_indices}")
    metrics = per_query_metrics(dist[sel], q_pids[sel], g_pids, q_cams[sel], g_cams)
    ncols = 1 + topk
    fig, axes = plt.subplots(len(sel), ncols, figsize=(1.15 * ncols, 2.75 * len(sel) + 0.5), squeeze=False)
    for row, qi in enumerate(sel):
        order, dists, matches = top_k(dist, q_pids, g_pids, q_cams, g_cams, int(qi), topk, remove_junk=remove_junk)
        q_img = as_rgb(query[qi].path, display_size)
        g_imgs = [as_rgb(gallery[gi].path, display_size) for gi in order]
        if cam is not None:
            q_map, g_maps = ranking_cams(
                cam, query[qi], [gallery[gi] for gi in order], image_size=image_size, mean=mean, std=std,
                transform=transform,
            )  # fmt: skip
            q_img = overlay_heatmap(q_img, q_map, normalize=False)
            g_imgs = [overlay_heatmap(img, m, normalize=False) for img, m in zip(g_imgs, g_maps, strict=True)]
        ap = metrics.ap[row]
        ap_text = "no match" if np.isnan(ap) else f"AP {ap:.2f}"
        draw_panel(axes[row, 0], q_img, f"query #{qi}\nID {q_pids[qi]} · cam {q_cams[qi]}\n{ap_text}", QUERY_COLOR,
                   "query")  # fmt: skip
        for col in range(topk):
            ax = axes[row, col + 1]
            if col >= len(order):
                ax.axis("off")
                continue
            gi = order[col]
            color, kind = (MATCH_COLOR, "match") if matches[col] else (MISMATCH_COLOR, "mismatch")
            draw_panel(ax, g_imgs[col], f"#{col + 1}  d={dists[col]:.3f}\nID {g_pids[gi]} · cam {g_cams[gi]}", color,
                       kind)  # fmt: skip
    heading = title or f"Top-{topk} retrieval"
    legend = "blue = query, green border = same identity, red = different identity"
    if cam is not None:
        legend += f"; overlay: {cam.method} (red = most relevant)"
    fig.suptitle(f"{heading}\n{legend}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    save_figure(fig, save)
    return fig
