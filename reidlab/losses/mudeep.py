"""MuDeep v2's objective: cross-entropy on every part classifier + batch-hard triplet on each scale's global feature.

``L = w_id · (1 / parts) · Σ_heads CE(logits_h, y) + w_tri · Σ_s triplet(normalise(g_s))``, with ``parts`` the heads
per scale (4: global + 3 stripes), so the CE term is the official ``Σ_s (Σ_4 CE) / 4``; ``w_id = 2``, ``w_tri = 1``.
The triplet distance is ``sqrt(‖a − b‖² + 1e-8)`` on L2-normalised features with margin 1.0 (the official values:
post-ReLU normalised features lie within √2 of each other, so that margin keeps the term active throughout).
Hardest positives and negatives are mined by label, not by the batch's block layout as the official code does
(the same thing for P×K batches, and correct when an identity fills two blocks of one batch).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.losses.reid import hard_example_mining


def offset_euclidean_dist(features: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pairwise ``sqrt(‖a − b‖² + eps)`` from the differences themselves (no expanded-square cancellation)."""
    diff = features.unsqueeze(1) - features.unsqueeze(0)
    return (diff.pow(2).sum(-1) + eps).sqrt()


def normalized_triplet_loss(features: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Batch-hard ``mean max(0, d_ap − d_an + margin)`` on L2-normalised ``features`` (B, D), mined by ``labels``."""
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected (B, D) features and (B,) labels, got {tuple(features.shape)}, {tuple(labels.shape)}"
        )
    with torch.autocast(features.device.type, enabled=False):
        dist = offset_euclidean_dist(F.normalize(features.float(), dim=1))
        d_ap, d_an = hard_example_mining(dist, labels)
        return F.relu(d_ap - d_an + margin).mean()


class MuDeepLoss(nn.Module):
    """``forward(outputs, batch) -> (total, {"id", "triplet"})`` on MuDeepV2's train-mode outputs.

    ``outputs["logits"]`` is (B, H, K) (H = scales × parts), ``outputs["features"]`` (B, S, E) (one global feature
    per scale); ``batch`` is the batch dict (``pid``) or the label tensor.
    """

    def __init__(self, *, triplet_margin: float = 1.0, id_weight: float = 2.0, triplet_weight: float = 1.0) -> None:
        super().__init__()
        if triplet_margin < 0:
            raise ValueError(f"triplet_margin must be >= 0, got {triplet_margin}")
        self.triplet_margin = triplet_margin
        self.id_weight = id_weight
        self.triplet_weight = triplet_weight

    def forward(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor] | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labels = batch["pid"] if isinstance(batch, dict) else batch
        logits, features = outputs["logits"].float(), outputs["features"]
        if logits.ndim != 3 or features.ndim != 3 or logits.shape[1] % features.shape[1]:
            raise ValueError(f"MuDeepLoss expects logits (B, H, K) and features (B, S, E) with H a multiple of S, got "
                             f"{tuple(logits.shape)} and {tuple(features.shape)}")  # fmt: skip
        parts_per_scale = logits.shape[1] // features.shape[1]
        per_head = F.cross_entropy(logits.transpose(1, 2), labels.unsqueeze(1).expand(-1, logits.shape[1]),
                                   reduction="none").mean(0)  # fmt: skip
        ce = per_head.sum() / parts_per_scale
        triplet = sum(
            normalized_triplet_loss(features[:, s], labels, self.triplet_margin) for s in range(features.shape[1])
        )
        total = self.id_weight * ce + self.triplet_weight * triplet
        return total, {"id": ce.detach(), "triplet": triplet.detach()}
