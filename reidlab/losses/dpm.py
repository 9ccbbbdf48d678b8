"""DPM's objective (methods spec §2.2): plain and masked-prototype ArcFace cross-entropy, the head-enrich
orthogonality loss and the soft-margin batch-hard triplet.

``L = 0.5·CE(z) + 0.5·CE(ArcFace(cos)) + λ·L_orth + L_tri``, where ``z`` are the plain logits, ``cos`` the
masked-prototype cosines (:func:`reidlab.models.dpm.masked_prototype_cosine`), ``L_orth`` the head-enrich loss on
the last block's pre-softmax CLS attention logits and ``L_tri`` the soft-margin triplet on the pre-BN feature.

Fixes of the repository's faults, with the repository's behaviour as an explicit option:

* ArcFace runs in float32 with ``sin θ = sqrt(max(1 − cos², 1e-7))`` (the repo computes it under fp16
  autocast without a clamp: NaN gradients at ``|cos| = 1``);
* ``L_orth`` is a batch **mean** (``orth_reduction="mean"``); the repo sums it over the batch
  (``"repo_batch_sum"``), so its strength grows with the batch size (×64 at the released batch).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.losses.reid import TripletLoss

OrthReduction = Literal["mean", "repo_batch_sum"]
ORTH_REDUCTIONS = ("mean", "repo_batch_sum")


def arcface_logits(cosine: torch.Tensor, labels: torch.Tensor, *, scale: float = 30.0, margin: float = 0.3):
    """ArcFace logits ``s·cos`` with the target class at ``s·cos(θ + m)`` (non-easy margin: where
    ``cos ≤ cos(π − m)`` the target gets ``s·(cos − m·sin(π − m))``), in float32 with a clamped sine."""
    with torch.autocast(cosine.device.type, enabled=False):
        cos = cosine.float()
        sin = (1.0 - cos * cos).clamp_min(1e-7).sqrt()
        phi = cos * math.cos(margin) - sin * math.sin(margin)
        phi = torch.where(cos > math.cos(math.pi - margin), phi, cos - margin * math.sin(math.pi - margin))
        target = F.one_hot(labels.long(), cos.shape[1]).bool()
        return scale * torch.where(target, phi, cos)


def head_orthogonality(attention_logits: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per-sample head-enrich loss ``‖Â Âᵀ − I‖²_F / K²`` of ``(B, K heads, N)`` logits: ``(B,)``.

    ``Â`` normalises each head's row by ``sqrt(Σ a² + eps)`` (DPM's ``featureL2Norm``); the diagonal is ~1, so
    this is the mean squared cosine similarity between the heads' CLS attention patterns (off-diagonal).
    """
    a = attention_logits.float()
    if a.ndim != 3:
        raise ValueError(f"attention_logits: expected (B, heads, N), got shape {tuple(a.shape)}")
    a = a / (a.pow(2).sum(-1, keepdim=True) + eps).sqrt()
    k = a.shape[1]
    gram = a @ a.transpose(1, 2)
    eye = torch.eye(k, device=a.device, dtype=a.dtype)
    return (gram - eye).pow(2).sum(dim=(1, 2)) / (k * k)


def head_orthogonality_loss(attention_logits: torch.Tensor, reduction: OrthReduction = "mean") -> torch.Tensor:
    """:func:`head_orthogonality` averaged over the batch (``"mean"``) or summed over it as the repo does
    (``"repo_batch_sum"``)."""
    per_sample = head_orthogonality(attention_logits)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "repo_batch_sum":
        return per_sample.sum()
    raise ValueError(f"orth_reduction must be one of {ORTH_REDUCTIONS}, got {reduction!r}")


class DPMLoss(nn.Module):
    """``id_weight·(0.5·CE(z) + 0.5·CE(ArcFace(cos)) + orth_weight·L_orth) + triplet_weight·L_tri``.

    ``forward(outputs, batch)`` reads ``logits``, ``prototype_cosine``, ``attention_logits`` and ``features`` of
    :class:`reidlab.models.dpm.DPM` in train mode; returns ``(total, parts)`` (detached parts, with the training
    accuracy on the plain logits, as the repo reports it).
    """

    def __init__(
        self,
        *,
        arcface_scale: float = 30.0,
        arcface_margin: float = 0.3,
        orth_weight: float = 0.1,
        orth_reduction: OrthReduction = "mean",
        id_weight: float = 1.0,
        triplet_weight: float = 1.0,
        triplet_margin: float | None = None,
    ) -> None:
        super().__init__()
        if orth_reduction not in ORTH_REDUCTIONS:
            raise ValueError(f"orth_reduction must be one of {ORTH_REDUCTIONS}, got {orth_reduction!r}")
        if not 0.0 <= arcface_margin < math.pi / 2:
            raise ValueError(f"arcface_margin must be in [0, pi/2), got {arcface_margin}")
        self.arcface_scale, self.arcface_margin = float(arcface_scale), float(arcface_margin)
        self.orth_weight, self.orth_reduction = float(orth_weight), orth_reduction
        self.id_weight, self.triplet_weight = float(id_weight), float(triplet_weight)
        self.triplet = TripletLoss(triplet_margin)

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any] | torch.Tensor):
        labels = batch["pid"] if isinstance(batch, dict) else batch
        arc = arcface_logits(outputs["prototype_cosine"], labels, scale=self.arcface_scale,
                             margin=self.arcface_margin)  # fmt: skip
        parts = {
            "id_plain": F.cross_entropy(outputs["logits"].float(), labels),
            "id_masked": F.cross_entropy(arc, labels),
            "orth": head_orthogonality_loss(outputs["attention_logits"], self.orth_reduction),
            "triplet": self.triplet(outputs["features"], labels),
        }
        identity = 0.5 * parts["id_plain"] + 0.5 * parts["id_masked"] + self.orth_weight * parts["orth"]
        total = self.id_weight * identity + self.triplet_weight * parts["triplet"]
        parts["accuracy"] = (outputs["logits"].argmax(1) == labels).float().mean()
        parts["mask_mean"] = outputs["mask"].float().mean() if "mask" in outputs else torch.zeros(())
        return total, {k: v.detach() for k, v in parts.items()}
