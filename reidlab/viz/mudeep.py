"""MuDeep v2 pictures: where each scale responds and where the leader's attention changes it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from reidlab.viz.figures import save_figure
from reidlab.viz.images import as_rgb, overlay_heatmap


def plot_scale_attention(
    images: torch.Tensor,
    maps: dict[str, Any],
    *,
    labels: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    save: str | os.PathLike | None = None,
) -> Figure:
    """One row per image: the image, then per scale the stream's response |x_s| and the attention's update
    |γ_s·A_s V_s| over the image, each min-max scaled on its own, titled with ‖γ_s A_s V_s‖ / ‖x_s‖.

    ``images`` are the normalised model inputs (B, 3, H, W); ``maps`` is
    :func:`reidlab.methods.mudeep_v2_analysis.scale_attention_maps` of them.
    """
    num, scales = len(images), len(maps["stream"])
    if num == 0 or any(len(m) != num for m in maps["stream"]):
        raise ValueError(f"maps must hold one entry per image for every scale ({num} images)")
    stats = {k: v for k, v in (("mean", mean), ("std", std)) if v is not None}
    fig, axes = plt.subplots(num, 1 + 2 * scales, figsize=(1.1 * (1 + 2 * scales), 2.2 * num), squeeze=False)
    for row in range(num):
        rgb = as_rgb(images[row], **stats)
        axes[row, 0].imshow(rgb)
        axes[row, 0].set_title(labels[row] if labels is not None else f"image {row}", fontsize=7)
        for s in range(scales):
            stream, update = maps["stream"][s][row], maps["update"][s][row]
            axes[row, 1 + 2 * s].imshow(overlay_heatmap(rgb, stream))
            axes[row, 1 + 2 * s].set_title(f"s{s + 1} |x|", fontsize=7)
            flat = np.ptp(update) == 0
            axes[row, 2 + 2 * s].imshow(rgb if flat else overlay_heatmap(rgb, update))
            axes[row, 2 + 2 * s].set_title(f"s{s + 1} att {maps['ratio'][s][row]:.3f}", fontsize=7)
    for ax in axes.ravel():
        ax.axis("off")
    gates = ", ".join(f"γ{s + 1} = {g:+.3f}" for s, g in enumerate(maps["gamma"]))
    fig.suptitle(f"response of each scale and the leader's update ({gates})", fontsize=8)
    fig.tight_layout()
    save_figure(fig, save)
    return fig
