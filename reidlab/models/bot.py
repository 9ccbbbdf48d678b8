"""BoT strong baseline (Luo et al. 2019): ResNet, last stride 1, GAP, BNNeck, bias-free classifier."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from reidlab.models.backbones import resnet_backbone
from reidlab.models.heads import BNNeck
from reidlab.models.registry import register_model
from reidlab.weights import Pretrained


class BoT(nn.Module):
    """ResNet backbone + global average pooling + BNNeck.

    ``forward(images, camids=None)``: train mode returns ``{"logits": (B, C), "features": (B, D)}``
    (features before the BN, for the triplet loss); eval mode returns the (B, D) embedding, taken after
    the BN (``neck_feat="after"``, the paper's test feature) or before it (``"before"``).
    ``stem_relu=False`` drops the ReLU after the stem BN, as reid-strong-baseline's ResNet does (the line is
    commented out upstream); it is needed to reproduce that repository's released checkpoints.
    """

    def __init__(
        self,
        *,
        backbone: str = "resnet50",
        num_classes: int = 0,
        pretrained: Pretrained = "auto",
        last_stride: int = 1,
        neck_feat: Literal["after", "before"] = "after",
        stem_relu: bool = True,
    ) -> None:
        super().__init__()
        if neck_feat not in ("after", "before"):
            raise ValueError(f"neck_feat must be 'after' or 'before', got {neck_feat!r}")
        self.backbone = resnet_backbone(backbone, pretrained=pretrained, last_stride=last_stride)
        if not stem_relu:
            self.backbone.act1 = nn.Identity()
        self.embed_dim = int(self.backbone.num_features)
        self.neck = BNNeck(self.embed_dim, num_classes)
        self.neck_feat = neck_feat

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, D, h, w) — the layer Grad-CAM looks at."""
        return self.backbone(images)

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor] | torch.Tensor:
        features = self.forward_features(images).mean(dim=(2, 3))
        bn_features, logits = self.neck(features)
        if self.training:
            if logits is None:
                raise RuntimeError("BoT was built with num_classes=0 and cannot be trained; pass num_classes")
            return {"logits": logits, "features": features}
        return bn_features if self.neck_feat == "after" else features


@register_model
def bot_resnet50(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> BoT:
    """The paper's BoT: ResNet-50 (2048-d embedding)."""
    return BoT(backbone="resnet50", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def bot_resnet101(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> BoT:
    """BoT on ResNet-101 (2048-d embedding)."""
    return BoT(backbone="resnet101", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def bot_resnet34(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> BoT:
    """BoT on ResNet-34 (512-d embedding)."""
    return BoT(backbone="resnet34", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def bot_resnet18(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> BoT:
    """BoT on ResNet-18 (512-d embedding): the CPU / smoke-test size."""
    return BoT(backbone="resnet18", num_classes=num_classes, pretrained=pretrained, **kwargs)
