"""Attention pictures of the lab's ReID ViTs (TransReID, DPM): CLS attention and rollout with the cameras the
models' SIE needs, the CLS attention of each head in the last block, and how much the heads overlap.

The maps come from :class:`reidlab.viz.attention.AttentionRecorder` (softmax attention recomputed from each block's
qkv) while the model runs on ``(images, camids)``. With JPM the global branch is the backbone's own last block, so
every block the global feature passes through is recorded (JPM's local copy is not).

Head overlap, per image: the mean pairwise correlation between the heads' CLS→patch attention maps (1: the same
pattern, 0: unrelated, negative: complementary), and DPM's head-enrich loss on the pre-softmax logits
(:func:`reidlab.losses.dpm.head_orthogonality`, the quantity DPM's loss pushes down).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from torch import nn

from reidlab.data import Sample, build_test_transform
from reidlab.losses.dpm import head_orthogonality
from reidlab.models.vit import cls_attention_logits
from reidlab.preprocessing import get_preprocessing
from reidlab.viz.attention import AttentionRecorder, cls_attention_map, rollout_map
from reidlab.viz.figures import save_figure
from reidlab.viz.images import as_rgb, load_tensor, overlay_heatmap


def model_inputs(model: nn.Module, samples: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, camids)`` of ``samples`` through the model's own test transform (``model.preprocessing``)."""
    pre = get_preprocessing(model)
    transform = build_test_transform(pre.image_size, interpolation=pre.interpolation, normalization=pre.normalization)
    images = torch.stack([load_tensor(s.path, transform=transform) for s in samples])
    return images, torch.tensor([s.camid for s in samples], dtype=torch.long)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def recorded_attentions(
    model: nn.Module, images: torch.Tensor, camids: torch.Tensor | None = None
) -> list[torch.Tensor]:
    """Per-block softmax attention ``(B, heads, N, N)`` of the model's ViT on one eval-mode forward."""
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        with AttentionRecorder(model) as rec:
            model(images.to(device), camids=None if camids is None else camids.to(device))
    finally:
        model.train(was_training)
    return [a.cpu() for a in rec.attentions]


def reid_vit_attention_maps(
    model: nn.Module, images: torch.Tensor, camids: torch.Tensor | None = None, *, head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """``{"cls": last block's CLS attention, "rollout": attention rollout}``, each ``(B, rows, cols)``."""
    vit = model.vit
    attentions = recorded_attentions(model, images, camids)
    grid = vit.grid_size
    return {"cls": cls_attention_map(attentions, grid, 1, head_fusion),
            "rollout": rollout_map(attentions, grid, 1, head_fusion, discard_ratio)}  # fmt: skip


def head_attention_maps(model: nn.Module, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
    """The last block's CLS→patch attention of every head, renormalised over the patches: ``(B, heads, rows, cols)``."""
    last = recorded_attentions(model, images, camids)[-1][:, :, 0, 1:]
    rows, cols = model.vit.grid_size
    last = last / last.sum(-1, keepdim=True).clamp_min(1e-12)
    return last.reshape(last.shape[0], last.shape[1], rows, cols)


@torch.no_grad()
def head_overlap(model: nn.Module, images: torch.Tensor, camids: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Per image: ``"correlation"`` (mean pairwise correlation of the heads' CLS attention maps) and ``"orth"``
    (the head-enrich loss on the pre-softmax logits)."""
    maps = head_attention_maps(model, images, camids).flatten(2)
    unit = F.normalize(maps - maps.mean(-1, keepdim=True), dim=-1)
    gram = unit @ unit.transpose(1, 2)
    k = gram.shape[-1]
    correlation = (gram.sum((1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(-1)) / (k * (k - 1))
    was_training = model.training
    model.eval()
    try:
        device = _device(model)
        vit = model.vit
        _, kept = vit.forward_tokens(images.to(device), None if camids is None else camids.to(device),
                                     keep=[len(vit.blocks) - 1])  # fmt: skip
        logits = cls_attention_logits(vit.blocks[-1], kept[len(vit.blocks) - 1]).cpu()
    finally:
        model.train(was_training)
    return {"correlation": correlation.numpy(), "orth": head_orthogonality(logits).numpy()}


def _panel(ax, image: np.ndarray, title: str | None = None, ylabel: str | None = None) -> None:
    ax.imshow(image, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)


def plot_head_attention(
    models: Mapping[str, nn.Module], images: torch.Tensor, camids: torch.Tensor | None = None, *,
    titles: Sequence[str] | None = None, alpha: float = 0.55, save=None,
) -> Figure:  # fmt: skip
    """One row per (model, image): the image, then each head's last-block CLS attention; the row label gives the
    heads' overlap (mean pairwise correlation of the maps) and the head-enrich loss on that image."""
    names = list(models)
    heads = max(m.vit.blocks[-1].attn.num_heads for m in models.values())
    n = len(images)
    fig, axes = plt.subplots(len(names) * n, 1 + heads, figsize=(1.25 * (1 + heads) + 1.2, 2.3 * len(names) * n),
                             squeeze=False)  # fmt: skip
    for mi, name in enumerate(names):
        model = models[name]
        pre = get_preprocessing(model)
        maps = head_attention_maps(model, images, camids)
        overlap = head_overlap(model, images, camids)
        for i in range(n):
            row = axes[mi * n + i]
            rgb = as_rgb(images[i], mean=pre.mean, std=pre.std)
            title = (titles[i] if titles else f"image {i + 1}").replace("\n", " ")
            label = f"{name}\n{title}\ncorr {overlap['correlation'][i]:.2f}, orth {overlap['orth'][i]:.2f}"
            _panel(row[0], rgb, "image" if mi == 0 and i == 0 else None, label)
            for h in range(heads):
                if h < maps.shape[1]:
                    _panel(row[1 + h], overlay_heatmap(rgb, maps[i, h].numpy(), alpha),
                           f"head {h + 1}" if mi == 0 and i == 0 else None)  # fmt: skip
                else:
                    row[1 + h].axis("off")
    fig.suptitle("Last-block CLS attention per head (min-max per map)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def plot_reid_vit_attention(
    models: Mapping[str, nn.Module], images: torch.Tensor, camids: torch.Tensor | None = None, *,
    titles: Sequence[str] | None = None, alpha: float = 0.55, save=None,
) -> Figure:  # fmt: skip
    """Columns = images; rows = the images, then per model its last-block CLS attention and its rollout."""
    n = len(images)
    names = list(models)
    fig, axes = plt.subplots(1 + 2 * len(names), n, figsize=(1.3 * n + 1.6, 2.2 * (1 + 2 * len(names))),
                             squeeze=False)  # fmt: skip
    first = get_preprocessing(models[names[0]])
    for i in range(n):
        _panel(axes[0, i], as_rgb(images[i], mean=first.mean, std=first.std), titles[i] if titles else None,
               "image" if i == 0 else None)  # fmt: skip
    for mi, name in enumerate(names):
        model = models[name]
        pre = get_preprocessing(model)
        maps = reid_vit_attention_maps(model, images, camids)
        for r, key in enumerate(("cls", "rollout")):
            for i in range(n):
                rgb = as_rgb(images[i], mean=pre.mean, std=pre.std)
                label = f"{name}\n{'CLS attention' if key == 'cls' else 'rollout'}" if i == 0 else None
                _panel(axes[1 + 2 * mi + r, i], overlay_heatmap(rgb, maps[key][i].numpy(), alpha), None, label)
    fig.suptitle("Where the CLS token looks: last block and attention rollout", fontsize=10)
    fig.tight_layout()
    save_figure(fig, save)
    return fig
