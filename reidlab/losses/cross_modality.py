"""Cross-modality losses: the modality masks of a batch, IV-ReID's mutual KL between its two heads, and its sum.

Modality always comes from the batch's own labels (``batch["modality"]``: 0 / "rgb" visible, 1 / "ir" infrared),
never from positions in the batch: the seed hard-codes ``[4 IR, 4 RGB] × 8`` and silently breaks under any other
sampler; here a shuffled batch gives the same loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.losses.reid import triplet_loss

KLReduction = Literal["batchmean", "mean"]
_CODES = {"rgb": 0, "ir": 1}


def modality_masks(modality: torch.Tensor | Sequence[int | str], device: torch.device | None = None):
    """``(rgb, ir)`` boolean masks from a batch's modality labels (0 / "rgb", 1 / "ir")."""
    if isinstance(modality, torch.Tensor):
        codes = modality.to(device) if device is not None else modality
    else:
        try:
            codes = torch.tensor([_CODES[m] if isinstance(m, str) else int(m) for m in modality], device=device)
        except KeyError as error:
            raise ValueError(f"modality labels must be 'rgb'/'ir' or 0/1, got {error.args[0]!r}") from None
    if codes.numel() and not bool(((codes == 0) | (codes == 1)).all()):
        raise ValueError(f"modality labels must be 0 (rgb) or 1 (ir), got values {sorted(set(codes.tolist()))}")
    return codes == 0, codes == 1


def kl_to_detached(student: torch.Tensor, teacher: torch.Tensor, reduction: KLReduction = "batchmean") -> torch.Tensor:
    """``KL(softmax(sg teacher) || softmax(student))``; ``batchmean`` sums over classes and averages over rows,
    ``mean`` averages over every element (``batchmean / C``). Zero for an empty selection."""
    if reduction not in ("batchmean", "mean"):
        raise ValueError(f"kl reduction must be 'batchmean' or 'mean', got {reduction!r}")
    if student.shape[0] == 0:
        return student.float().sum() * 0.0
    target = F.softmax(teacher.detach().float(), dim=1)
    kl = F.kl_div(F.log_softmax(student.float(), dim=1), target, reduction="batchmean")
    return kl if reduction == "batchmean" else kl / student.shape[1]


def mutual_kl(
    rgb_logits: torch.Tensor,
    ir_logits: torch.Tensor,
    rgb: torch.Tensor,
    ir: torch.Tensor,
    reduction: KLReduction = "batchmean",
) -> torch.Tensor:
    """IV-ReID's symmetric KL: on RGB samples the RGB head follows the IR head's detached prediction, on IR samples
    the IR head follows the RGB head's. Each head thus gets gradients only from its own modality's samples."""
    return kl_to_detached(rgb_logits[rgb], ir_logits[rgb], reduction) + kl_to_detached(
        ir_logits[ir], rgb_logits[ir], reduction
    )


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if logits.shape[0] == 0:
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), labels)


class IVReIDLoss(nn.Module):
    """``CE(shared) + CE(RGB head on RGB) + CE(IR head on IR) + KL + triplet(post-BN feature)`` (weights 1, plain CE).

    ``forward(outputs, batch)`` takes the model's train-mode dict (``logits``, ``features``, ``rgb_logits``,
    ``ir_logits``) and the batch (``pid``, ``modality``); returns ``(total, parts)`` with detached parts.
    ``kl_reduction``: ``"batchmean"`` (the seed's SYSU script) or ``"mean"`` (its RegDB script: ``batchmean / C``).
    """

    def __init__(
        self,
        *,
        triplet_margin: float | None = 0.3,
        kl_reduction: KLReduction = "batchmean",
        id_weight: float = 1.0,
        kl_weight: float = 1.0,
        triplet_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if kl_reduction not in ("batchmean", "mean"):
            raise ValueError(f"kl_reduction must be 'batchmean' or 'mean', got {kl_reduction!r}")
        self.triplet_margin = triplet_margin
        self.kl_reduction = kl_reduction
        self.id_weight, self.kl_weight, self.triplet_weight = id_weight, kl_weight, triplet_weight

    def forward(
        self, outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if "modality" not in batch:
            raise KeyError("IVReIDLoss needs the batch's modality labels (batch['modality']: 0 rgb / 1 ir)")
        labels = batch["pid"]
        rgb, ir = modality_masks(batch["modality"], labels.device)
        parts = {
            "id": _ce(outputs["logits"], labels),
            "id_rgb": _ce(outputs["rgb_logits"][rgb], labels[rgb]),
            "id_ir": _ce(outputs["ir_logits"][ir], labels[ir]),
            "kl": mutual_kl(outputs["rgb_logits"], outputs["ir_logits"], rgb, ir, self.kl_reduction),
            "triplet": triplet_loss(outputs["features"], labels, margin=self.triplet_margin),
        }
        total = (
            self.id_weight * (parts["id"] + parts["id_rgb"] + parts["id_ir"])
            + self.kl_weight * parts["kl"]
            + self.triplet_weight * parts["triplet"]
        )
        return total, {k: v.detach() for k, v in parts.items()}
