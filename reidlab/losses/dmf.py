"""DMF's stage-I objective (methods spec §1.2, the lab's reading): TransReID's CE + batch-hard triplet over the
*mixed* batch of image and text CLS features, with the labels the model returns for each row — so an identity's
text and images share one classifier and pull together in one triplet loss."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from reidlab.losses.transreid import TransReIDLoss


class DMFStage1Loss(TransReIDLoss):
    """``id_weight·CE + triplet_weight·triplet`` over ``outputs["features"]`` / ``outputs["logits"]`` with
    ``outputs["labels"]``; logs the identity accuracy of image and text rows and the mean cosine between each text
    row and the mean image feature of its identity (``image_text_cos``)."""

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any] | torch.Tensor):
        labels = outputs["labels"]
        total, parts = super().forward({"logits": outputs["logits"], "features": outputs["features"]}, labels)
        modality = outputs.get("modality")
        if modality is None:
            return total, parts
        with torch.no_grad():
            correct = (outputs["logits"].argmax(1) == labels).float()
            for code, name in ((0, "image"), (1, "text")):
                rows = modality == code
                if rows.any():
                    parts[f"accuracy_{name}"] = correct[rows].mean()
            image, text = modality == 0, modality == 1
            if image.any() and text.any():
                parts["image_text_cos"] = identity_alignment(outputs["features"], labels, image, text)
        return total, parts


def identity_alignment(features: torch.Tensor, labels: torch.Tensor, image: torch.Tensor,
                       text: torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Mean cosine between each text row and the mean image feature of its identity, on batch-centred features (a
    ViT's CLS features share a large common component that would make every cosine near 1); texts whose identity
    has no image in the batch are left out."""
    x = features.detach().float()
    x = F.normalize(x - x.mean(0, keepdim=True), dim=1)
    img_labels, img = labels[image], x[image]
    same = (labels[text].unsqueeze(1) == img_labels.unsqueeze(0)).float()  # (T, I)
    has = same.sum(1) > 0
    centres = F.normalize(same @ img / same.sum(1, keepdim=True).clamp(min=1), dim=1)
    cos = (x[text] * centres).sum(1)
    return cos[has].mean() if has.any() else cos.new_tensor(float("nan"))
