"""Grad-CAM pair figures: one row per (query, gallery) pair, each image explained against the other's embedding.

Rows may come from different models (:class:`CamPair` carries its own :class:`~reidlab.viz.gradcam.EmbeddingCAM`,
camera ids and normalisation), so one figure can hold a pair per method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from matplotlib import pyplot as plt
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import nn

from reidlab.viz.figures import save_figure
from reidlab.viz.gradcam import EmbeddingCAM, LayerSpec
from reidlab.viz.images import IMAGENET_MEAN, IMAGENET_STD, as_rgb, overlay_heatmap


@dataclass
class CamPair:
    """One figure row: normalised model inputs ``query`` / ``gallery`` ``(C, H, W)`` explained by ``cam``;
    ``camids`` are their camera ids (models with SIE), ``mean`` / ``std`` their normalisation."""

    cam: EmbeddingCAM
    query: torch.Tensor
    gallery: torch.Tensor
    camids: tuple[int, int] | None = None
    titles: tuple[str, str] = ("query", "gallery")
    label: str = ""
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD


def plot_cam_pairs(rows: Sequence[CamPair], *, alpha: float = 0.5, suptitle: str | None = None, save=None) -> Figure:
    """One row per :class:`CamPair`: query | query + CAM | gallery + CAM | gallery; the row label gives the
    cosine similarity of the two embeddings. Maps are normalised per image (colour bar 0-1)."""
    if not rows:
        raise ValueError("rows: expected at least one CamPair")
    n = len(rows)
    height = 2.9 * n + 0.6
    fig, axes = plt.subplots(n, 4, figsize=(7.6, height), squeeze=False)
    for row, pair in enumerate(rows):
        q_map, g_map, sim = pair.cam.pair(pair.query, pair.gallery, pair.camids)
        q_rgb = as_rgb(pair.query, mean=pair.mean, std=pair.std)
        g_rgb = as_rgb(pair.gallery, mean=pair.mean, std=pair.std)
        method = pair.cam.method
        panels = [
            (q_rgb, pair.titles[0]),
            (overlay_heatmap(q_rgb, q_map, alpha=alpha, normalize=False), f"{method} on query"),
            (overlay_heatmap(g_rgb, g_map, alpha=alpha, normalize=False), f"{method} on gallery"),
            (g_rgb, pair.titles[1]),
        ]
        for ax, (img, title) in zip(axes[row], panels, strict=True):
            ax.imshow(img, interpolation="bilinear")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{pair.label or f'pair {row + 1}'}\ncos = {sim:.3f}", fontsize=9)
    methods = sorted({pair.cam.method for pair in rows})
    fig.suptitle(suptitle or f"What made each pair match ({', '.join(methods)}, target = cosine to the other image)",
                 fontsize=10, y=1 - 0.1 / height)  # fmt: skip
    fig.subplots_adjust(top=1 - 0.75 / height, bottom=0.2 / height, right=0.86, wspace=0.08, hspace=0.35)
    cax = fig.add_axes((0.89, 0.15, 0.025, 0.7))
    fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap="jet"), cax=cax, label="relevance (normalised per image)")
    save_figure(fig, save)
    return fig


def plot_gradcam_pairs(
    model: nn.Module | EmbeddingCAM,
    query_images: torch.Tensor | Sequence[torch.Tensor],
    gallery_images: torch.Tensor | Sequence[torch.Tensor],
    *,
    titles: Sequence[tuple[str, str]] | None = None,
    row_labels: Sequence[str] | None = None,
    camids: Sequence[tuple[int, int]] | None = None,
    method: str = "gradcam",
    target_layer: LayerSpec = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    alpha: float = 0.5,
    suptitle: str | None = None,
    save=None,
) -> Figure:
    """One model, one row per (query, gallery) pair (see :func:`plot_cam_pairs`); ``camids`` gives each pair's
    (query, gallery) camera ids for models with SIE. Images are normalised model inputs ``(C, H, W)``."""
    cam = model if isinstance(model, EmbeddingCAM) else EmbeddingCAM(model, method=method, target_layer=target_layer)
    queries, galleries = list(query_images), list(gallery_images)
    if len(queries) != len(galleries) or not queries:
        raise ValueError(f"expected the same non-zero number of query and gallery images, got {len(queries)} and "
                         f"{len(galleries)}")  # fmt: skip
    for name, values in (("titles", titles), ("row_labels", row_labels), ("camids", camids)):
        if values is not None and len(values) != len(queries):
            raise ValueError(f"{name}: expected one entry per pair ({len(queries)}), got {len(values)}")
    rows = [
        CamPair(cam, q, g, camids=None if camids is None else tuple(camids[i]),
                titles=tuple(titles[i]) if titles is not None else ("query", "gallery"),
                label=row_labels[i] if row_labels is not None else "", mean=mean, std=std)
        for i, (q, g) in enumerate(zip(queries, galleries, strict=True))
    ]  # fmt: skip
    return plot_cam_pairs(rows, alpha=alpha, suptitle=suptitle, save=save)
