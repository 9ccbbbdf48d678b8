"""Pictures of DPM's dynamic prototype masks: which channels a mask keeps, and where in the image those channels live.

DPM's mask ``m ∈ (0, 1)^D`` weights the *channels* of the feature (and of the identity prototypes); it has no
spatial extent. To see which body regions it keeps, each patch token of the last block (after the final norm,
the space the global feature lives in) is scored by the share of its energy in the kept channels,
``r_p = Σ_c m_c t_pc² / Σ_c t_pc²``: a patch whose feature lies in channels the mask keeps scores high. With a
flat mask (0.5 everywhere, DPM at initialisation) every patch scores the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import nn

from reidlab.preprocessing import get_preprocessing
from reidlab.viz.figures import save_figure
from reidlab.viz.images import as_rgb, overlay_heatmap


def mask_region_map(masks: torch.Tensor, patch_tokens: torch.Tensor, grid: Sequence[int]) -> torch.Tensor:
    """``r_p = Σ_c m_c t_pc² / Σ_c t_pc²`` for masks ``(B, D)`` and patch tokens ``(B, rows·cols, D)``:
    ``(B, rows, cols)``."""
    energy = patch_tokens.float().pow(2)
    share = (energy * masks.float()[:, None]).sum(-1) / energy.sum(-1).clamp_min(1e-12)
    return share.reshape(share.shape[0], int(grid[0]), int(grid[1]))


@torch.no_grad()
def dpm_masks(model: nn.Module, images: torch.Tensor, camids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """``{"mask": (B, D), "region": (B, rows, cols)}`` of a DPM model (eval mode) on normalised images."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        images = images.to(device)
        camids = None if camids is None else camids.to(device)
        mask = model(images, camids=camids)["mask"]
        tokens, _ = model.vit.forward_tokens(images, camids)
        patches = model.vit.norm(tokens)[:, 1:]
    finally:
        model.train(was_training)
    return {"mask": mask.cpu(), "region": mask_region_map(mask, patches, model.vit.grid_size).cpu()}


def plot_dpm_masks(
    model: nn.Module,
    images: torch.Tensor,
    camids: torch.Tensor | None = None,
    *,
    titles: Sequence[str] | None = None,
    channels: int = 48,
    alpha: float = 0.55,
    save=None,
) -> Figure:
    """Top: the images and their mask-region maps (min-max per image, the share of each patch's feature in the kept
    channels; uniform when the mask is flat). Bottom: the masks themselves, one row per image, over the ``channels``
    channels whose mask values differ most between the images (sorted by the first image's value)."""
    out = dpm_masks(model, images, camids)
    pre = get_preprocessing(model)
    n = len(images)
    fig = plt.figure(figsize=(max(1.3 * n, 6.5) + 1.0, 6.8))
    grid = fig.add_gridspec(3, n, height_ratios=(1.0, 1.0, 0.7))
    for i in range(n):
        rgb = as_rgb(images[i], mean=pre.mean, std=pre.std)
        region = out["region"][i]
        flat = float(region.max() - region.min()) < 1e-3  # a flat mask: nothing to stretch (min-max would show noise)
        heat = overlay_heatmap(rgb, np.full(region.shape, 0.5) if flat else region.numpy(), alpha, normalize=not flat)
        for row, picture in enumerate((rgb, heat)):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(picture, interpolation="bilinear")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[i] if titles else f"image {i + 1}", fontsize=7)
            if i == 0:
                ax.set_ylabel("image" if row == 0 else "kept-channel share", fontsize=8)
            if row == 1:
                ax.set_xlabel(f"{region.min():.2f}–{region.max():.2f}", fontsize=7)
    masks = out["mask"].numpy()
    spread = masks.max(0) - masks.min(0)
    chosen = np.argsort(-spread)[: min(channels, masks.shape[1])]
    chosen = chosen[np.argsort(-masks[0, chosen])]
    ax = fig.add_subplot(grid[2, :])
    shown = ax.imshow(masks[:, chosen], aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    labels = [t.replace("\n", " ")[:24] for t in titles] if titles else [f"image {i + 1}" for i in range(n)]
    ax.set_yticks(range(n), labels, fontsize=7)
    ax.set_xlabel(f"the {len(chosen)} channels whose mask differs most between these images (of {masks.shape[1]}); "
                  f"mean mask per image: {', '.join(f'{v:.2f}' for v in masks.mean(1))}", fontsize=7)  # fmt: skip
    ax.set_xticks([])
    fig.colorbar(shown, ax=ax, fraction=0.02, pad=0.01, label="mask")
    fig.suptitle("DPM's dynamic prototype masks: kept channels and where they live", fontsize=10)
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def mask_agreement(masks_a: torch.Tensor, masks_b: torch.Tensor) -> np.ndarray:
    """Per pair: the mean absolute difference of two masks (0: identical channel selection)."""
    return (masks_a.float() - masks_b.float()).abs().mean(-1).numpy()
