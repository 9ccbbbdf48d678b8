"""DPM (Tan et al., ACM MM 2022): a dynamic prototype mask on TransReID for occluded person ReID.

* :class:`HierarchicalMaskGenerator`: the patch tokens of four blocks (ViT-B: 2, 4, 10, 12, before the final
  norm) stacked as ``(B, 4D, rows, cols)`` -> conv3×3 4D→2D + BN + ReLU, max-pool 2 -> conv 2D→D, max-pool 2 ->
  conv D→D, global max-pool -> Linear(D, D) with **zero** initial weight -> sigmoid: a channel mask
  ``m ∈ (0, 1)^D``, exactly 0.5 everywhere at initialisation.
* :class:`MaskedPrototypes`: the identity prototypes ``W ∈ R^{C×D}`` (Xavier-uniform). Plain logits
  ``z = f_bn Wᵀ``, and the masked-prototype cosine ``cos_ic = <f̂_i, normalize(m_i ⊙ Ŵ_c)>`` computed in one
  product: ``((f̂ ⊙ m) Ŵᵀ) / sqrt((m ⊙ m)(Ŵ ⊙ Ŵ)ᵀ)``, in float32. The ArcFace margin is applied by the loss.
* :class:`DPM`: ReID ViT (overlapping patches, SIE) + the generator + BNNeck + prototypes. Train mode returns
  what :class:`reidlab.losses.dpm.DPMLoss` needs, including the last block's pre-softmax CLS attention logits
  over the patches ``(B, heads, N)`` (the head-enrich loss); eval mode ``{"embedding": f (before BN by
  default), "mask": m}``, matched with the query-mask-weighted cosine (``metric="masked_cosine"``).

The patch grid comes from the patch embedding (the official code guesses it from the token count assuming
rows = 2·cols); the mask is flattened, not squeezed, so a batch of one works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.models.heads import BNNeck
from reidlab.models.registry import register_model
from reidlab.models.vit import ViTSize, cls_attention_logits, patch_tokens_to_map
from reidlab.models.vit_weights import build_vit_backbone
from reidlab.weights import Pretrained

#: DPM's blocks on ViT-B (1-based): 2, 4, 10 and 12.
VIT_B_MASK_BLOCKS = (2, 4, 10, 12)


def default_mask_blocks(depth: int) -> tuple[int, ...]:
    """DPM's blocks 2, 4, 10, 12 of 12 at the same relative depths of a ``depth``-block ViT (6 blocks: 1, 2, 5, 6)."""
    blocks = tuple(max(1, min(depth, round(b * depth / 12))) for b in VIT_B_MASK_BLOCKS)
    if len(set(blocks)) != len(blocks):
        raise ValueError(f"a {depth}-block ViT is too shallow for four distinct mask blocks; pass mask_blocks")
    return blocks


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """3×3 convolution (padding 1, with bias), BatchNorm2d, ReLU."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True))  # fmt: skip


class HierarchicalMaskGenerator(nn.Module):
    """``forward(maps: (B, levels·D, rows, cols)) -> (B, D)`` channel mask in (0, 1) (see the module docstring)."""

    def __init__(self, embed_dim: int, levels: int = 4) -> None:
        super().__init__()
        d = embed_dim
        self.layers = nn.Sequential(
            conv_bn_relu(levels * d, 2 * d), nn.MaxPool2d(2, 2), conv_bn_relu(2 * d, d), nn.MaxPool2d(2, 2),
            conv_bn_relu(d, d), nn.AdaptiveMaxPool2d((1, 1)),
        )  # fmt: skip
        self.fc = nn.Linear(d, d)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def logits(self, maps: torch.Tensor) -> torch.Tensor:
        """The mask before its sigmoid, ``(B, D)``."""
        rows, cols = maps.shape[-2:]
        if rows < 4 or cols < 4:
            raise ValueError(f"the mask generator pools twice by 2: a {rows}x{cols} patch grid is too small (>= 4x4)")
        return self.fc(self.layers(maps).flatten(1))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(maps))


def masked_prototype_cosine(features: torch.Tensor, masks: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``cos_ic = <f̂_i, normalize(m_i ⊙ Ŵ_c)>`` for every sample i and prototype c: ``(B, C)``, float32.

    ``f̂`` and ``Ŵ`` are L2-normalised rows; the masked prototype is re-normalised (norm floored at 1e-12, as
    ``F.normalize``), all in one matrix product instead of a loop over the batch.
    """
    with torch.autocast(features.device.type, enabled=False):
        f = F.normalize(features.float(), dim=1)
        m = masks.float()
        w = F.normalize(prototypes.float(), dim=1)
        num = (f * m) @ w.t()
        den = ((m * m) @ (w * w).t()).clamp_min(1e-24).sqrt()
        return num / den


class MaskedPrototypes(nn.Module):
    """Identity prototypes ``W (C, D)``: ``forward(f_bn, m) -> (plain logits f_bn Wᵀ, masked-prototype cosine)``."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, embed_dim))
        nn.init.xavier_uniform_(self.weight)

    def forward(self, bn_features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.linear(bn_features, self.weight), masked_prototype_cosine(bn_features, masks, self.weight)


class DPM(nn.Module):
    """``forward(images, camids=None, viewids=None)`` (see the module docstring).

    Train mode: ``{"logits": z, "prototype_cosine": cos, "features": f, "bn_features": f_bn, "mask": m,
    "attention_logits": A}``. Eval mode: ``{"embedding": f or f_bn, "mask": m}``.
    """

    def __init__(
        self,
        *,
        backbone: str | ViTSize | dict[str, Any] = "vit_base_patch16_224",
        num_classes: int = 0,
        pretrained: Pretrained = "auto",
        image_size: Sequence[int] = (256, 128),
        stride: int = 16,
        drop_path_rate: float = 0.1,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        sie_cameras: int = 0,
        sie_views: int = 0,
        sie_coef: float = 3.0,
        mask_blocks: Sequence[int] | None = None,
        neck_feat: Literal["before", "after"] = "before",
    ) -> None:
        super().__init__()
        if neck_feat not in ("before", "after"):
            raise ValueError(f"neck_feat must be 'before' or 'after', got {neck_feat!r}")
        self.vit = build_vit_backbone(
            backbone, pretrained=pretrained, image_size=image_size, stride=stride, drop_path_rate=drop_path_rate,
            drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, sie_cameras=sie_cameras, sie_views=sie_views,
            sie_coef=sie_coef,
        )  # fmt: skip
        depth = len(self.vit.blocks)
        blocks = tuple(int(b) for b in (mask_blocks if mask_blocks is not None else default_mask_blocks(depth)))
        if len(blocks) < 1 or any(not 1 <= b <= depth for b in blocks):
            raise ValueError(f"mask_blocks must be 1-based block numbers in [1, {depth}], got {blocks}")
        self.mask_blocks = blocks
        self.embed_dim = self.vit.embed_dim
        self.mask_generator = HierarchicalMaskGenerator(self.embed_dim, levels=len(blocks))
        self.neck = BNNeck(self.embed_dim, 0)
        self.classifier = MaskedPrototypes(self.embed_dim, num_classes) if num_classes > 0 else None
        self.neck_feat = neck_feat

    def mask_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The mask generator's named parameters (DPM's second optimiser)."""
        return [(f"mask_generator.{n}", p) for n, p in self.mask_generator.named_parameters()]

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None, viewids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        depth = len(self.vit.blocks)
        keep = {*self.mask_blocks, depth - 1} if self.training else set(self.mask_blocks)
        tokens, kept = self.vit.forward_tokens(images, camids, viewids, keep=keep)
        grid = self.vit.grid_size
        maps = torch.cat([patch_tokens_to_map(kept[b], grid) for b in self.mask_blocks], dim=1)
        mask = self.mask_generator(maps)
        features = self.vit.norm(tokens)[:, 0]
        bn_features, _ = self.neck(features)
        if not self.training:
            return {"embedding": bn_features if self.neck_feat == "after" else features, "mask": mask}
        if self.classifier is None:
            raise RuntimeError("DPM was built with num_classes=0 and cannot be trained; pass num_classes")
        logits, cosine = self.classifier(bn_features, mask)
        attention = cls_attention_logits(self.vit.blocks[-1], kept[depth - 1])
        return {"logits": logits, "prototype_cosine": cosine, "features": features, "bn_features": bn_features,
                "mask": mask, "attention_logits": attention}  # fmt: skip


def _build(backbone: str | ViTSize | dict[str, Any], num_classes: int, pretrained: Pretrained, **kwargs) -> DPM:
    return DPM(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def dpm_vit_base_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> DPM:
    """DPM on ViT-B/16 (the paper's; mask from blocks 2, 4, 10, 12)."""
    return _build("vit_base_patch16_224", num_classes, pretrained, **kwargs)


@register_model
def dpm_vit_small_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> DPM:
    """DPM on TransReID's ViT-S/16 (768-d, 8 blocks)."""
    return _build("vit_small_patch16_224", num_classes, pretrained, **kwargs)


@register_model
def dpm_deit_small_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> DPM:
    """DPM on DeiT-S/16 (384-d)."""
    return _build("deit_small_patch16_224", num_classes, pretrained, **kwargs)


@register_model
def dpm_vit_tiny_d6_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> DPM:
    """DPM on the lab's tiny ViT (192-d, 6 blocks; mask from blocks 1, 2, 5, 6): the smoke-profile size."""
    return _build("vit_tiny_d6_patch16", num_classes, pretrained, **kwargs)


@register_model
def dpm_vit(backbone: str | dict[str, Any] = "vit_base_patch16_224", num_classes: int = 0,
            pretrained: Pretrained = "auto", **kwargs) -> DPM:  # fmt: skip
    """DPM on any backbone: a registered name or a size dict (``ViTSize`` fields; random init)."""
    return _build(backbone, num_classes, pretrained, **kwargs)
