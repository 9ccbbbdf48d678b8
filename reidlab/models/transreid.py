"""TransReID (He et al., ICCV 2021): the ReID ViT (overlapping patches, SIE), BNNeck, and optionally JPM.

Without JPM the global feature is the normed CLS token after all blocks. With JPM the backbone runs all but
its last block; the global branch is the backbone's own last block and final norm (TransReID stores a copy,
``b1``, and leaves the backbone's last block unused), the local branch is :class:`JigsawPatchModule`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn

from reidlab.models.heads import BNNeck
from reidlab.models.jpm import JigsawPatchModule
from reidlab.models.registry import register_model
from reidlab.models.vit import ViTSize
from reidlab.models.vit_weights import build_vit_backbone
from reidlab.weights import Pretrained

NeckFeat = Literal["before", "after"]


class TransReID(nn.Module):
    """``forward(images, camids=None, viewids=None)``.

    Train mode: ``{"logits", "features"}`` (global, features before the BN) plus, with JPM,
    ``"part_logits"`` and ``"part_features"`` (lists of ``parts``). Eval mode: the embedding, before the BN
    (``neck_feat="before"``, TransReID's released configs) or after it; with JPM the concatenation
    ``[global, local_1/4, ..., local_4/4]`` (3840-d for ViT-B), each taken before or after its BN.
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
        jpm: bool = False,
        jpm_shift: int = 5,
        jpm_groups: int = 2,
        jpm_parts: int = 4,
        jpm_rearrange: bool = True,
        local_divisor: float = 4.0,
        neck_feat: NeckFeat = "before",
    ) -> None:
        super().__init__()
        if neck_feat not in ("before", "after"):
            raise ValueError(f"neck_feat must be 'before' or 'after', got {neck_feat!r}")
        self.vit = build_vit_backbone(
            backbone, pretrained=pretrained, image_size=image_size, stride=stride, drop_path_rate=drop_path_rate,
            drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, sie_cameras=sie_cameras, sie_views=sie_views,
            sie_coef=sie_coef,
        )  # fmt: skip
        self.embed_dim = self.vit.embed_dim
        self.neck = BNNeck(self.embed_dim, num_classes)
        self.jpm: JigsawPatchModule | None = None
        if jpm:
            self.jpm = JigsawPatchModule(self.vit.blocks[-1], self.vit.norm, embed_dim=self.embed_dim,
                                         num_classes=num_classes, shift=jpm_shift, groups=jpm_groups, parts=jpm_parts,
                                         rearrange=jpm_rearrange)  # fmt: skip
        self.local_divisor = float(local_divisor)
        self.neck_feat = neck_feat

    @property
    def output_dim(self) -> int:
        """Width of the eval embedding (D, or D·(1 + parts) with JPM)."""
        return self.embed_dim * (1 + (self.jpm.parts if self.jpm is not None else 0))

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None, viewids: torch.Tensor | None = None
    ) -> dict[str, Any] | torch.Tensor:
        depth = len(self.vit.blocks)
        if self.jpm is None:
            tokens, _ = self.vit.forward_tokens(images, camids, viewids)
            global_feat = self.vit.norm(tokens)[:, 0]
            part_feats: list[torch.Tensor] = []
        else:
            tokens, _ = self.vit.forward_tokens(images, camids, viewids, depth=depth - 1)
            global_feat = self.vit.norm(self.vit.blocks[-1](tokens))[:, 0]
            part_feats = self.jpm(tokens)
        bn_feat, logits = self.neck(global_feat)
        parts = [neck(f) for neck, f in zip(self.jpm.necks, part_feats, strict=True)] if self.jpm is not None else []
        if self.training:
            if logits is None:
                raise RuntimeError("TransReID was built with num_classes=0 and cannot be trained; pass num_classes")
            out: dict[str, Any] = {"logits": logits, "features": global_feat}
            if self.jpm is not None:
                out["part_logits"] = [p[1] for p in parts]
                out["part_features"] = part_feats
            return out
        after = self.neck_feat == "after"
        pieces = [bn_feat if after else global_feat]
        pieces += [(p[0] if after else f) / self.local_divisor for p, f in zip(parts, part_feats, strict=True)]
        return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]


def _build(backbone: str | ViTSize | dict[str, Any], num_classes: int, pretrained: Pretrained, **kwargs) -> TransReID:
    return TransReID(backbone=backbone, num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def transreid_vit_base_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> TransReID:
    """TransReID on ViT-B/16 (768-d; ImageNet weights ``jx_vit_base_p16_224-80ecf9dd.pth``)."""
    return _build("vit_base_patch16_224", num_classes, pretrained, **kwargs)


@register_model
def transreid_vit_small_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> TransReID:
    """TransReID on its ViT-S/16 (768-d, 8 blocks; ``vit_small_p16_224-15ec54c9.pth``)."""
    return _build("vit_small_patch16_224", num_classes, pretrained, **kwargs)


@register_model
def transreid_deit_small_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> TransReID:
    """TransReID on DeiT-S/16 (384-d)."""
    return _build("deit_small_patch16_224", num_classes, pretrained, **kwargs)


@register_model
def transreid_vit_tiny_d6_patch16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> TransReID:
    """TransReID on the lab's tiny ViT (192-d, 6 blocks, 3 heads): the smoke-profile size."""
    return _build("vit_tiny_d6_patch16", num_classes, pretrained, **kwargs)


@register_model
def transreid_vit(backbone: str | dict[str, Any] = "vit_base_patch16_224", num_classes: int = 0,
                  pretrained: Pretrained = "auto", **kwargs) -> TransReID:  # fmt: skip
    """TransReID on any backbone: a registered name or a size dict (``ViTSize`` fields; random init)."""
    return _build(backbone, num_classes, pretrained, **kwargs)
