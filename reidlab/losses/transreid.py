"""TransReID's objective (methods spec §0.3): cross-entropy on the BNNeck logits + batch-hard triplet on the
pre-BN features (soft margin in every released config); with JPM each term is ``0.5·global + 0.5·mean(parts)``."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from reidlab.losses.reid import TripletLoss, cross_entropy_ls


def global_and_parts(global_term: torch.Tensor, part_terms: list[torch.Tensor]) -> torch.Tensor:
    """``0.5·global + 0.5·mean(parts)``, or the global term alone without parts (TransReID's JPM weighting)."""
    if not part_terms:
        return global_term
    return 0.5 * global_term + 0.5 * torch.stack(part_terms).mean()


class TransReIDLoss(nn.Module):
    """``id_weight·ID + triplet_weight·triplet`` over the model's train outputs (``logits``, ``features`` and,
    with JPM, ``part_logits`` / ``part_features``); ``(total, parts)`` with detached parts.

    ``label_smoothing`` 0 and ``triplet_margin=None`` (soft margin ``log(1 + exp(d_ap − d_an))``) are the
    released configs (``IF_LABELSMOOTH 'off'``, ``NO_MARGIN True``).
    """

    def __init__(
        self,
        *,
        id_weight: float = 1.0,
        triplet_weight: float = 1.0,
        label_smoothing: float = 0.0,
        triplet_margin: float | None = None,
    ) -> None:
        super().__init__()
        self.id_weight, self.triplet_weight = float(id_weight), float(triplet_weight)
        self.label_smoothing = float(label_smoothing)
        self.triplet = TripletLoss(triplet_margin)

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any] | torch.Tensor):
        labels = batch["pid"] if isinstance(batch, dict) else batch
        ce = [cross_entropy_ls(z, labels, self.label_smoothing) for z in outputs.get("part_logits", [])]
        tri = [self.triplet(f, labels) for f in outputs.get("part_features", [])]
        parts = {
            "id": global_and_parts(cross_entropy_ls(outputs["logits"], labels, self.label_smoothing), ce),
            "triplet": global_and_parts(self.triplet(outputs["features"], labels), tri),
        }
        total = self.id_weight * parts["id"] + self.triplet_weight * parts["triplet"]
        parts["accuracy"] = (outputs["logits"].argmax(1) == labels).float().mean()
        return total, {k: v.detach() for k, v in parts.items()}
