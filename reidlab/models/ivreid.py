"""IV-ReID (linyq17/IV-REID): one ResNet shared by both modalities, a shared BN + classifier, two modality heads.

``images -> ResNet (last stride 1) -> GAP -> g -> BN1d (learnable bias) -> f -> Linear(D, C) (shared logits)``;
each modality head is ``BN1d(D) -> Linear(D, 512) -> Linear(512, C)`` with no nonlinearity in between, and both
heads run on every sample in training (the loss picks the rows it needs by the batch's modality labels).
The test feature is ``f`` (post-BN, eval statistics); the seed L2-normalises it and ranks by squared Euclidean
distance, which orders a gallery exactly as cosine distance does.

The seed's ResNet (reid-strong-baseline's) differs from a standard one in two ways, offered as options for
parity with its checkpoints and off by default: no ReLU after the stem BN (``stem_relu=False``) and a bias on
every convolution (``conv_bias=True``). A bias just before a BatchNorm changes nothing in training (the batch
mean removes it) and in evaluation equals a shifted running mean, so the official converter folds the seed's
biases into the following BN and a standard ResNet reproduces the seed's features exactly.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from reidlab.models.backbones import resnet_backbone
from reidlab.models.registry import register_model
from reidlab.weights import Pretrained

MODALITIES = ("rgb", "ir")


def _kaiming_linear(layer: nn.Linear) -> nn.Linear:
    """The seed's classifier init: Kaiming-normal weights (fan_out), zero bias."""
    nn.init.kaiming_normal_(layer.weight, a=0, mode="fan_out")
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def add_conv_biases(module: nn.Module) -> int:
    """Give every bias-free ``Conv2d`` in ``module`` a zero-initialised bias; returns how many were added."""
    added = 0
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d) and conv.bias is None:
            conv.bias = nn.Parameter(torch.zeros(conv.out_channels, device=conv.weight.device))
            added += 1
    return added


class ModalityHead(nn.Module):
    """One modality's classifier (the seed's IDENet branch): ``BN1d(D) -> Linear(D, hidden) -> Linear(hidden, C)``."""

    def __init__(self, in_dim: int, num_classes: int, hidden_dim: int = 512) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(in_dim)
        self.fc1 = _kaiming_linear(nn.Linear(in_dim, hidden_dim))
        self.fc2 = _kaiming_linear(nn.Linear(hidden_dim, num_classes))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(self.bn(features)))


class IVReID(nn.Module):
    """The IV-ReID model.

    ``forward(images, camids=None)``: train mode returns ``{"logits": (B, C) shared classifier, "features":
    (B, D) post-BN feature (the triplet's input), "rgb_logits", "ir_logits": (B, C) both heads on every
    sample}``; eval mode returns the (B, D) post-BN feature. ``heads=False`` builds the test path only (what
    the seed's checkpoints hold: its trainer never saves the modality heads).
    """

    def __init__(
        self,
        *,
        backbone: str = "resnet50",
        num_classes: int = 0,
        pretrained: Pretrained = "auto",
        last_stride: int = 1,
        head_dim: int = 512,
        heads: bool = True,
        stem_relu: bool = True,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 0:
            raise ValueError(f"IVReID num_classes must be >= 0, got {num_classes}")
        if heads and num_classes == 0:
            raise ValueError("IVReID with modality heads needs num_classes > 0 (or heads=False for the test path)")
        self.backbone = resnet_backbone(backbone, pretrained=pretrained, last_stride=last_stride)
        if not stem_relu:
            self.backbone.act1 = nn.Identity()
        if conv_bias:
            add_conv_biases(self.backbone)
        self.embed_dim = int(self.backbone.num_features)
        self.bn = nn.BatchNorm1d(self.embed_dim)  # affine with a learnable bias (not BNNeck's frozen one)
        self.classifier = _kaiming_linear(nn.Linear(self.embed_dim, num_classes)) if num_classes > 0 else None
        self.heads = (
            nn.ModuleDict({m: ModalityHead(self.embed_dim, num_classes, head_dim) for m in MODALITIES})
            if heads
            else None
        )

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """The last feature map (B, D, h, w) — the layer Grad-CAM looks at."""
        return self.backbone(images)

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor] | torch.Tensor:
        features = self.bn(self.forward_features(images).mean(dim=(2, 3)))
        if not self.training:
            return features
        if self.classifier is None or self.heads is None:
            raise RuntimeError("this IVReID was built without classifier or modality heads and cannot be trained")
        return {
            "logits": self.classifier(features),
            "features": features,
            "rgb_logits": self.heads["rgb"](features),
            "ir_logits": self.heads["ir"](features),
        }


@register_model
def ivreid_resnet50(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> IVReID:
    """The seed's IV-ReID: ResNet-50 (2048-d feature), 512-d modality-head bottleneck."""
    return IVReID(backbone="resnet50", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def ivreid_resnet18(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs) -> IVReID:
    """IV-ReID on ResNet-18 (512-d feature): the CPU / smoke-test size."""
    return IVReID(backbone="resnet18", num_classes=num_classes, pretrained=pretrained, **kwargs)
