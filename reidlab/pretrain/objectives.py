"""The two pretraining objectives.

Supervised: a backbone's pooled feature -> BNNeck identity classifier (CE with label smoothing) + batch-hard
triplet on the feature + one linear head per attribute (mean CE), the recipe of attribute-assisted ReID.

Contrastive: CLIP's symmetric image-text cross-entropy, made exact for ReID batches. A P×K batch holds K
images of each identity and identities can share a description, so the texts are the batch's *distinct*
captions: each image has exactly one positive text (softmax over texts), each text has every image with its
caption as positives (a uniform target over them, the multi-positive form of the text-to-image term).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.losses import TripletLoss, cross_entropy_ls
from reidlab.models import BNNeck


class SupervisedPretrainer(nn.Module):
    """``backbone`` (pooled features, ``num_features`` wide) + BNNeck identity classifier + attribute heads."""

    def __init__(self, backbone: nn.Module, *, num_classes: int, attribute_classes: dict[str, int]) -> None:
        super().__init__()
        self.backbone = backbone
        dim = int(backbone.num_features)
        self.neck = BNNeck(dim, num_classes)
        self.attribute_heads = nn.ModuleDict({k: nn.Linear(dim, n) for k, n in attribute_classes.items()})

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> Any:
        features = self.backbone(images)
        bn_features, logits = self.neck(features)
        if not self.training:
            return bn_features
        attributes = {name: head(bn_features) for name, head in self.attribute_heads.items()}
        return {"logits": logits, "features": features, "attributes": attributes}


class SupervisedPretrainLoss(nn.Module):
    """``CE-LS(identity) + w_tri · triplet(features) + w_attr · mean_h CE(attribute h)``; ``batch["attributes"]``
    is a list of per-image index vectors in the heads' order."""

    def __init__(self, heads: Sequence[str], *, label_smoothing: float = 0.1, triplet_weight: float = 1.0,
                 attribute_weight: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.heads = list(heads)
        self.label_smoothing = label_smoothing
        self.triplet = TripletLoss(0.3)
        self.triplet_weight = triplet_weight
        self.attribute_weight = attribute_weight

    def forward(self, outputs: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        labels = batch["pid"]
        targets = torch.stack([torch.as_tensor(a) for a in batch["attributes"]]).to(labels.device)
        parts = {
            "id": cross_entropy_ls(outputs["logits"].float(), labels, self.label_smoothing),
            "triplet": self.triplet(outputs["features"].float(), labels),
            "attributes": torch.stack([F.cross_entropy(outputs["attributes"][h].float(), targets[:, i])
                                       for i, h in enumerate(self.heads)]).mean(),  # fmt: skip
        }
        total = parts["id"] + self.triplet_weight * parts["triplet"] + self.attribute_weight * parts["attributes"]
        return total, {k: v.detach() for k, v in parts.items()}


def distinct_captions(captions: Sequence[str]) -> tuple[list[str], torch.Tensor]:
    """The distinct captions in first-seen order and, per image, the index of its caption among them."""
    order: dict[str, int] = {}
    index = [order.setdefault(c, len(order)) for c in captions]
    return list(order), torch.tensor(index, dtype=torch.long)


def multi_positive_clip_loss(image: torch.Tensor, text: torch.Tensor, caption_index: torch.Tensor,
                             scale: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # fmt: skip
    """Symmetric CLIP loss with ``caption_index[i]`` = the text of image ``i`` (features L2-normalised)."""
    logits = scale * image @ text.T  # (images, texts)
    image_to_text = F.cross_entropy(logits, caption_index)
    positives = F.one_hot(caption_index, num_classes=text.shape[0]).T.float()  # (texts, images)
    target = positives / positives.sum(dim=1, keepdim=True)
    text_to_image = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    total = (image_to_text + text_to_image) / 2
    parts = {"i2t": image_to_text.detach(), "t2i": text_to_image.detach(), "scale": scale.detach()}
    return total, parts


class ContrastiveForward:
    """``forward_fn`` of the CLIP stage: image batch + its distinct captions through both towers."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        texts, caption_index = distinct_captions(batch["caption"])
        tokens = self.tokenizer(texts).to(batch["image"].device)
        image, text, scale = model(batch["image"], tokens)[:3]
        return {"image": image, "text": text, "scale": scale, "caption_index": caption_index.to(image.device)}


def contrastive_loss(outputs: dict[str, torch.Tensor], batch: dict[str, Any]):
    """``loss_fn`` of the CLIP stage (float32 even under autocast)."""
    return multi_positive_clip_loss(outputs["image"].float(), outputs["text"].float(), outputs["caption_index"],
                                    outputs["scale"].float())  # fmt: skip
