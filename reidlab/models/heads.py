"""Embedding heads: the BNNeck of Luo et al. (2019) — BatchNorm with a frozen zero bias, then a bias-free classifier."""

from __future__ import annotations

import torch
import torch.nn as nn


class BNNeck(nn.Module):
    """``f -> BN(f) -> Linear(no bias)``; returns ``(f_bn, logits)`` (``logits`` is None without classes).

    The BN bias is frozen at 0 (``requires_grad=False``), the BN weight starts at 1 and the classifier
    weights are drawn from N(0, ``classifier_std``²), as in the BoT and TransReID code.
    """

    def __init__(self, in_dim: int, num_classes: int = 0, *, classifier_std: float = 0.001) -> None:
        super().__init__()
        if in_dim <= 0:
            raise ValueError(f"BNNeck in_dim must be positive, got {in_dim}")
        if num_classes < 0:
            raise ValueError(f"BNNeck num_classes must be >= 0, got {num_classes}")
        self.bn = nn.BatchNorm1d(in_dim)
        nn.init.ones_(self.bn.weight)
        nn.init.zeros_(self.bn.bias)
        self.bn.bias.requires_grad_(False)
        self.classifier: nn.Linear | None = None
        if num_classes > 0:
            self.classifier = nn.Linear(in_dim, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, std=classifier_std)

    @property
    def num_classes(self) -> int:
        return 0 if self.classifier is None else self.classifier.out_features

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        bn_features = self.bn(features)
        logits = self.classifier(bn_features) if self.classifier is not None else None
        return bn_features, logits
