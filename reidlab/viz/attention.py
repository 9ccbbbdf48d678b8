"""ViT attention maps: last-layer CLS attention and attention rollout (Abnar & Zuidema, 2020).

timm's fused attention never materialises the attention matrix, so :class:`AttentionRecorder`
hooks every block's ``qkv`` projection and recomputes ``softmax(q kᵀ · scale)`` from it (with
the block's q/k norms), which is what the fused kernel computes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from matplotlib import pyplot as plt
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import nn

from reidlab.viz.figures import save_figure
from reidlab.viz.gradcam import find_vit, vit_grid_size
from reidlab.viz.images import IMAGENET_MEAN, IMAGENET_STD, as_rgb, overlay_heatmap

HEAD_FUSIONS = ("mean", "max", "min")


def _attention_modules(model: nn.Module) -> tuple[nn.Module, list[nn.Module]]:
    vit = find_vit(model)
    if vit is None:
        raise ValueError(f"{type(model).__name__} contains no ViT (a module with patch_embed and blocks)")
    attns = [getattr(block, "attn", None) for block in vit.blocks]
    for i, attn in enumerate(attns):
        if attn is None or not isinstance(getattr(attn, "qkv", None), nn.Linear) or not hasattr(attn, "num_heads"):
            raise ValueError(f"ViT block {i} has no timm-style attention (attn.qkv Linear and attn.num_heads)")
    return vit, attns


class AttentionRecorder:
    """``with AttentionRecorder(model) as rec: model(x)`` fills ``rec.attentions`` with one
    ``(B, heads, N, N)`` attention-probability tensor per block (detached, float32)."""

    def __init__(self, model: nn.Module):
        self.vit, self._attns = _attention_modules(model)
        self.attentions: list[torch.Tensor] = []
        self._handles: list = []

    def _hook(self, attn: nn.Module):
        def record(_module, _inputs, qkv: torch.Tensor) -> None:
            b, n, _ = qkv.shape
            heads = attn.num_heads
            head_dim = getattr(attn, "head_dim", qkv.shape[-1] // (3 * heads))
            q, k, _v = qkv.detach().float().reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            q_norm, k_norm = getattr(attn, "q_norm", nn.Identity()), getattr(attn, "k_norm", nn.Identity())
            q, k = q_norm(q), k_norm(k)
            scale = getattr(attn, "scale", head_dim**-0.5)
            self.attentions.append(((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1))

        return record

    def __enter__(self) -> AttentionRecorder:
        self.attentions = []
        self._handles = [attn.qkv.register_forward_hook(self._hook(attn)) for attn in self._attns]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@torch.no_grad()
def collect_attentions(model: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Run ``model`` (eval mode) on normalised images; return per-block attention ``(B, heads, N, N)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with AttentionRecorder(model) as rec:
            model(images.to(device))
    finally:
        model.train(was_training)
    return [a.cpu() for a in rec.attentions]


def fuse_heads(attention: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """``(B, heads, N, N)`` -> ``(B, N, N)`` by mean, max or min over heads."""
    if head_fusion not in HEAD_FUSIONS:
        raise ValueError(f"head_fusion: expected one of {HEAD_FUSIONS}, got {head_fusion!r}")
    if attention.dim() != 4:
        raise ValueError(f"attention: expected (B, heads, N, N), got shape {tuple(attention.shape)}")
    if head_fusion == "mean":
        return attention.mean(1)
    return attention.amax(1) if head_fusion == "max" else attention.amin(1)


def attention_rollout(
    attentions: Sequence[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Rollout ``(B, N, N)``: the product over layers of ``0.5·A + 0.5·I`` (rows renormalised).

    ``discard_ratio`` zeroes that fraction of the weakest attentions per layer (never those to
    the CLS token) before adding the identity. Every row of the result sums to 1.
    """
    if not attentions:
        raise ValueError("attentions: expected at least one layer")
    if not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio: expected a value in [0, 1), got {discard_ratio}")
    b, _, n, _ = attentions[0].shape
    eye = torch.eye(n, dtype=torch.float32)
    result = eye.expand(b, n, n).clone()
    for attention in attentions:
        a = fuse_heads(attention.float().cpu(), head_fusion)
        if discard_ratio > 0:
            flat = a.reshape(b, n * n)
            drop = flat.topk(int(n * n * discard_ratio), dim=-1, largest=False).indices
            weakest = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, drop, True)
            to_cls = torch.arange(n * n) % n == 0
            a = flat.masked_fill(weakest & ~to_cls, 0.0).reshape(b, n, n)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        result = a @ result
    return result


def _cls_to_patches(rows: torch.Tensor, grid_size: tuple[int, int], num_prefix_tokens: int | None) -> torch.Tensor:
    gh, gw = grid_size
    prefix = rows.shape[-1] - gh * gw if num_prefix_tokens is None else num_prefix_tokens
    if prefix < 0 or rows.shape[-1] - prefix != gh * gw:
        raise ValueError(f"{rows.shape[-1]} tokens do not hold a {gh}x{gw} patch grid after {prefix} prefix token(s)")
    patches = rows[:, prefix:]
    patches = patches / patches.sum(-1, keepdim=True).clamp_min(1e-12)
    return patches.reshape(-1, gh, gw)


def cls_attention_map(
    attentions: Sequence[torch.Tensor],
    grid_size: tuple[int, int],
    num_prefix_tokens: int | None = None,
    head_fusion: str = "mean",
) -> torch.Tensor:
    """Last layer's CLS-to-patch attention ``(B, rows, cols)``, renormalised to sum to 1 per image."""
    return _cls_to_patches(fuse_heads(attentions[-1].float(), head_fusion)[:, 0], grid_size, num_prefix_tokens)


def rollout_map(
    attentions: Sequence[torch.Tensor],
    grid_size: tuple[int, int],
    num_prefix_tokens: int | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> torch.Tensor:
    """CLS row of the attention rollout over the patch grid ``(B, rows, cols)``, summing to 1 per image."""
    rollout = attention_rollout(attentions, head_fusion, discard_ratio)
    return _cls_to_patches(rollout[:, 0], grid_size, num_prefix_tokens)


def attention_maps(
    model: nn.Module, images: torch.Tensor, head_fusion: str = "mean", discard_ratio: float = 0.0
) -> dict[str, torch.Tensor]:
    """``{"cls": last-layer CLS attention, "rollout": rollout}``, each ``(B, rows, cols)``."""
    vit, _ = _attention_modules(model)
    grid, prefix = vit_grid_size(vit), getattr(vit, "num_prefix_tokens", None)
    attns = collect_attentions(model, images)
    return {
        "cls": cls_attention_map(attns, grid, prefix, head_fusion),
        "rollout": rollout_map(attns, grid, prefix, head_fusion, discard_ratio),
    }


def plot_attention_maps(
    model: nn.Module,
    images: torch.Tensor,
    *,
    titles: Sequence[str] | None = None,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    alpha: float = 0.55,
    save=None,
) -> Figure:
    """Columns = images; rows = image, last-layer CLS attention overlay, rollout overlay."""
    if images.dim() == 3:
        images = images[None]
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"titles: expected {len(images)} titles, got {len(titles)}")
    maps = attention_maps(model, images, head_fusion, discard_ratio)
    n = len(images)
    fig, axes = plt.subplots(3, n, figsize=(1.5 * n + 1.6, 8.0), squeeze=False)
    row_names = ("image", f"CLS attention\n(last layer, {head_fusion})", "attention rollout")
    for col in range(n):
        rgb = as_rgb(images[col], mean=mean, std=std)
        overlays = [overlay_heatmap(rgb, maps[key][col].numpy(), alpha) for key in ("cls", "rollout")]
        panels = (rgb, *overlays)
        for row, img in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(img, interpolation="bilinear")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(row_names[row], fontsize=9)
        axes[0, col].set_title(titles[col] if titles is not None else f"image {col + 1}", fontsize=8)
    fig.suptitle("Where the ViT's CLS token looks", fontsize=11)
    fig.subplots_adjust(right=0.84, wspace=0.08, hspace=0.12)
    cax = fig.add_axes((0.87, 0.12, 0.025, 0.5))
    fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap="jet"), cax=cax, label="attention (min-max per map)")
    save_figure(fig, save)
    return fig
