"""ReID losses: CE with label smoothing, batch-hard triplet (margin or soft margin), center loss, and BoT's sum.

Every loss takes float features and integer labels; triplet mining uses the labels (any batch layout works,
no P×K reshaping). Losses are computed in float32 even under autocast.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def cross_entropy_ls(logits: torch.Tensor, targets: torch.Tensor, epsilon: float = 0.1) -> torch.Tensor:
    """Cross-entropy against ``(1-ε)·onehot + ε/C`` (BoT's label smoothing; ``epsilon=0`` is plain CE)."""
    if not 0.0 <= epsilon < 1.0:
        raise ValueError(f"label smoothing epsilon must be in [0, 1), got {epsilon}")
    return F.cross_entropy(logits.float(), targets, label_smoothing=epsilon)


def euclidean_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pairwise distances ``sqrt(max(‖x‖² + ‖y‖² − 2x·y, 1e-12))`` (the peers' formula), shape (len(x), len(y))."""
    with torch.autocast(x.device.type, enabled=False):  # the expanded form cancels badly in bf16
        x, y = x.float(), y.float()
        sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * (x @ y.t())
        return sq.clamp(min=1e-12).sqrt()


def hard_example_mining(dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per anchor: the farthest positive (the anchor itself included) and the closest negative.

    An anchor without any negative in the batch gets ``d_an = +inf`` (zero loss).
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    d_ap = dist.masked_fill(~same, float("-inf")).amax(dim=1)
    d_an = dist.masked_fill(same, float("inf")).amin(dim=1)
    return d_ap, d_an


def triplet_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    margin: float | None = 0.3,
    normalize: bool = False,
) -> torch.Tensor:
    """Batch-hard triplet loss: ``mean max(0, d_ap − d_an + margin)``, or ``mean log(1 + exp(d_ap − d_an))``
    when ``margin`` is None (soft margin)."""
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"triplet_loss expects (B, D) features and (B,) labels, got {features.shape}, {labels.shape}")
    features = features.float()
    if normalize:
        features = F.normalize(features, dim=1)
    d_ap, d_an = hard_example_mining(euclidean_dist(features, features), labels)
    if margin is None:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


class TripletLoss(nn.Module):
    """Module form of :func:`triplet_loss`."""

    def __init__(self, margin: float | None = 0.3, normalize: bool = False) -> None:
        super().__init__()
        self.margin = margin
        self.normalize = normalize

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return triplet_loss(features, labels, margin=self.margin, normalize=self.normalize)


class CenterLoss(nn.Module):
    """``mean_i ‖f_i − c_{y_i}‖²`` with learnable class centres (Wen et al. 2016), as BoT uses it."""

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = features.float() - self.centers[labels]
        return diff.pow(2).sum(dim=1).clamp(1e-12, 1e12).mean()


class BoTLoss(nn.Module):
    """BoT objective: ``w_id·CE-LS(logits) + w_tri·triplet(features) + w_c·center(features)``.

    ``forward(outputs, batch)`` takes the model's train-mode dict (``logits``, ``features``) and the batch
    dict (``pid``) or the label tensor; returns ``(total, parts)`` with detached float parts.
    With ``center_weight > 0`` the centres' gradient is divided by ``center_weight`` (BoT's rule: the
    centres learn from the unweighted loss, with their own SGD optimiser, lr 0.5).
    """

    def __init__(
        self,
        *,
        num_classes: int,
        feat_dim: int,
        label_smoothing: float = 0.1,
        triplet_margin: float | None = 0.3,
        id_weight: float = 1.0,
        triplet_weight: float = 1.0,
        center_weight: float = 0.0,
        normalize_triplet: bool = False,
    ) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.triplet = TripletLoss(triplet_margin, normalize_triplet)
        self.id_weight = id_weight
        self.triplet_weight = triplet_weight
        self.center_weight = center_weight
        self.center: CenterLoss | None = None
        if center_weight > 0:
            self.center = CenterLoss(num_classes, feat_dim)
            self.center.centers.register_hook(lambda grad: grad / center_weight)

    def forward(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor] | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labels = batch["pid"] if isinstance(batch, dict) else batch
        parts = {
            "id": cross_entropy_ls(outputs["logits"], labels, self.label_smoothing),
            "triplet": self.triplet(outputs["features"], labels),
        }
        total = self.id_weight * parts["id"] + self.triplet_weight * parts["triplet"]
        if self.center is not None:
            parts["center"] = self.center(outputs["features"], labels)
            total = total + self.center_weight * parts["center"]
        return total, {k: v.detach() for k, v in parts.items()}
