"""CLIP-ReID's losses (methods spec §2.4–2.5): the supervised-contrastive image↔text pair and the stage-2 sum.

Stage 1 (learning the identity tokens): ``L = L_i2t + L_t2i`` with, for anchors ``a_i`` and contrasts ``c_j``,

    L_a2c = −(1/B) Σ_i (1/|P(i)|) Σ_{p: y_p = y_i} log( exp(a_i·c_p / τ) / Σ_j exp(a_i·c_j / τ) )

(image features against the batch's text features and back; ``P(i)`` = contrasts of the anchor's identity).
CLIP-ReID uses τ = 1 on **unnormalised** features (raw dot products, issue #30); ``normalize=True`` and a
``logit_scale`` are switches, off by default for parity (spec §6).

Stage 2: ``w_id·Σ CE_ls(scores) + w_tri·Σ Tri(features) + w_i2t·CE_ls(f_proj · Tᵀ)`` — label-smoothing CE
(ε 0.1) on both BN-neck classifiers, batch-hard triplets (margin 0.3, Euclidean, unnormalised) on ``f_last``,
``f`` and ``f_proj``, and CE of the image-to-text logits against the frozen per-identity text features ``T``
(raw dot product unless switched). PromptSRC adds ``w_sc·SmoothL1(f, f_zero_shot)`` (self-consistency with a
frozen zero-shot encoder). ViT weights 0.25 / 1 / 1, RN50 1 / 1 / 1.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.losses.reid import cross_entropy_ls, triplet_loss


def image_text_logits(
    image: torch.Tensor, text: torch.Tensor, *, normalize: bool = False, logit_scale: float = 1.0
) -> torch.Tensor:
    """``logit_scale · image · textᵀ`` in float32 (cosine when ``normalize``); CLIP-ReID: a raw dot product."""
    image, text = image.float(), text.float()
    if normalize:
        image, text = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return logit_scale * image @ text.T


def supcon_loss(logits: torch.Tensor, anchor_labels: torch.Tensor, contrast_labels: torch.Tensor) -> torch.Tensor:
    """Supervised-contrastive loss of ``(A, C)`` logits: each anchor's mean log-probability over the contrasts of its
    identity (at least one), averaged over anchors and negated."""
    positive = (anchor_labels[:, None] == contrast_labels[None, :]).float()
    counts = positive.sum(1)
    if bool((counts == 0).any()):
        raise ValueError("supcon_loss: an anchor has no contrast of its identity in the batch")
    log_prob = logits.float().log_softmax(dim=1)
    return -((positive * log_prob).sum(1) / counts).mean()


class SymmetricSupConLoss(nn.Module):
    """Stage 1: ``L_i2t + L_t2i`` over a batch of image features and the text features of their identities."""

    def __init__(self, *, normalize: bool = False, logit_scale: float = 1.0) -> None:
        super().__init__()
        self.normalize = normalize
        self.logit_scale = float(logit_scale)

    def forward(
        self, image: torch.Tensor, text: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = image_text_logits(image, text, normalize=self.normalize, logit_scale=self.logit_scale)
        parts = {"i2t": supcon_loss(logits, labels, labels), "t2i": supcon_loss(logits.T, labels, labels)}
        return parts["i2t"] + parts["t2i"], {k: v.detach() for k, v in parts.items()}


class ClipReIDLoss(nn.Module):
    """Stage 2 (and the baseline with ``i2t_weight=0``): ``forward(outputs, batch) -> (total, parts)``.

    ``outputs`` is the model's train-mode dict; the image-to-text term needs ``outputs["i2t_logits"]`` (the step
    adds them: ``f_proj`` against the frozen text features), the self-consistency term ``outputs["feature"]`` and
    ``outputs["zero_shot_feature"]``.
    """

    def __init__(
        self,
        *,
        id_weight: float = 0.25,
        triplet_weight: float = 1.0,
        i2t_weight: float = 1.0,
        label_smoothing: float = 0.1,
        triplet_margin: float | None = 0.3,
        self_consistency_weight: float = 0.0,
    ) -> None:
        super().__init__()
        self.id_weight, self.triplet_weight = float(id_weight), float(triplet_weight)
        self.i2t_weight = float(i2t_weight)
        self.label_smoothing = float(label_smoothing)
        self.triplet_margin = triplet_margin
        self.self_consistency_weight = float(self_consistency_weight)

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labels = batch["pid"] if isinstance(batch, dict) else batch
        parts = {
            "id": sum(cross_entropy_ls(s, labels, self.label_smoothing) for s in outputs["scores"]),
            "triplet": sum(triplet_loss(f, labels, margin=self.triplet_margin) for f in outputs["features"]),
        }
        total = self.id_weight * parts["id"] + self.triplet_weight * parts["triplet"]
        if self.i2t_weight:
            if "i2t_logits" not in outputs:
                raise KeyError("ClipReIDLoss with i2t_weight > 0 needs outputs['i2t_logits'] (f_proj · text features)")
            parts["i2t"] = cross_entropy_ls(outputs["i2t_logits"], labels, self.label_smoothing)
            total = total + self.i2t_weight * parts["i2t"]
        if self.self_consistency_weight:
            parts["consistency"] = F.smooth_l1_loss(outputs["feature"].float(), outputs["zero_shot_feature"].float())
            total = total + self.self_consistency_weight * parts["consistency"]
        return total, {k: v.detach() for k, v in parts.items()}
