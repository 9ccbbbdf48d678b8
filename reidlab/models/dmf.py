"""DMF (Xiang et al. 2022, "Deep Multimodal Fusion for Generalizable Person Re-identification"): image and
attribute-text sequences through one shared ViT encoder.

The public repository trains no text at all (methods spec §1.1); this model is the lab's reading of the paper's
figure (spec §1.2), every part of it an interpretation:

* **image sequence**: ``[CLS; patch tokens] + position embedding`` (the ReID ViT's own embedding, or a BEiT-style
  one with relative position bias);
* **text sequence**: ``[CLS; Linear(text tokens) + type embedding]``: the per-token outputs of a (by default
  frozen) CLIP text tower (:mod:`reidlab.models.text_tokens`) projected to the ViT's width — the figure's "Text
  Encoder -> Linear Projection" — with one learnt vector marking text tokens; the CLS token (with its position
  vector) is the image sequence's;
* both sequences go through the **same** blocks and final norm; ``fusion="shared"`` (the spec's recommended
  reading) encodes them as separate samples, whose CLS outputs the method supervises with one identity
  classifier and one triplet loss; ``fusion="concat"`` (the figure's other reading) encodes
  ``[CLS; patches; text tokens]`` as one sequence and supervises its CLS;
* two BNNeck heads: ``pretrain_neck`` for stage I's identities (image + text), ``neck`` for stage II's (images of
  the fine-tuning source, which may be another dataset). Test feature: the image CLS, before the BN by default.

No SIE: domain generalisation tests on cameras the source never had.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from reidlab.models.beit_weights import BEIT_SIZES, build_beit_backbone
from reidlab.models.heads import BNNeck
from reidlab.models.registry import register_model
from reidlab.models.reid_beit import run_blocks
from reidlab.models.text_tokens import LAB_TEXT, OPENAI_TEXT, build_text_tokens
from reidlab.models.vit import ReIDViT
from reidlab.models.vit_weights import build_vit_backbone
from reidlab.weights import Pretrained

Fusion = Literal["shared", "concat"]
FUSIONS = ("shared", "concat")


def build_dmf_backbone(backbone: str | dict[str, Any], *, pretrained: Pretrained, image_size: Sequence[int],
                       stride: int, drop_path_rate: float) -> ReIDViT:  # fmt: skip
    """The ReID ViT of a name: BEiT / data2vec (:data:`~reidlab.models.beit_weights.BEIT_SIZES`, relative position
    bias and layer scale kept) or a plain ViT (ImageNet or the lab's files; a size dict: random init)."""
    if isinstance(backbone, str) and backbone in BEIT_SIZES:
        return build_beit_backbone(backbone, pretrained=pretrained, image_size=image_size, stride=stride,
                                   drop_path_rate=drop_path_rate)  # fmt: skip
    return build_vit_backbone(backbone, pretrained=pretrained, image_size=image_size, stride=stride,
                              drop_path_rate=drop_path_rate)  # fmt: skip


class DMF(nn.Module):
    """``forward(images, camids=None)`` is the image path: train mode ``{"logits", "features"}`` from ``neck``
    (stage II), eval mode the test feature. :meth:`forward_stage1` is stage I; :meth:`encode_texts` /
    :meth:`encode_images` give the CLS embeddings (normed, before any BN) of each modality."""

    def __init__(
        self,
        *,
        backbone: str | dict[str, Any] = "vit_base_patch16_224",
        num_classes: int = 0,
        pretrain_classes: int = 0,
        pretrained: Pretrained = "auto",
        image_size: Sequence[int] = (256, 128),
        stride: int = 16,
        drop_path_rate: float = 0.1,
        text_encoder: str = OPENAI_TEXT,
        text_pretrained: Pretrained | None = None,
        train_text_encoder: bool = False,
        fusion: Fusion = "shared",
        neck_feat: Literal["before", "after"] = "before",
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if neck_feat not in ("before", "after"):
            raise ValueError(f"neck_feat must be 'before' or 'after', got {neck_feat!r}")
        self.vit = build_dmf_backbone(backbone, pretrained=pretrained, image_size=image_size, stride=stride,
                                      drop_path_rate=drop_path_rate)  # fmt: skip
        self.embed_dim = dim = self.vit.embed_dim
        # pretrained=False (random initialisation everywhere, as tests and benchmarks ask) includes the text tower
        text_weights = False if pretrained is False else (pretrained if text_pretrained is None else text_pretrained)
        self.text_encoder = build_text_tokens(text_encoder, text_weights)
        self.train_text_encoder = bool(train_text_encoder)
        self.text_encoder.requires_grad_(self.train_text_encoder)
        self.text_proj = nn.Linear(self.text_encoder.width, dim)
        trunc_normal_(self.text_proj.weight, std=0.02)
        nn.init.zeros_(self.text_proj.bias)
        self.text_type = nn.Parameter(torch.zeros(1, 1, dim))
        trunc_normal_(self.text_type, std=0.02)
        self.neck = BNNeck(dim, num_classes)
        self.pretrain_neck = BNNeck(dim, pretrain_classes)
        self.fusion = fusion
        self.neck_feat = neck_feat

    @property
    def output_dim(self) -> int:
        return self.embed_dim

    # ------------------------------------------------------------------ sequences
    def text_sequence(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``([CLS; projected text tokens] (T, 1 + L, D), valid (T, 1 + L))``."""
        if self.train_text_encoder:
            tokens, valid = self.text_encoder(texts)
        else:
            with torch.no_grad():
                tokens, valid = self.text_encoder(texts)
        words = self.text_proj(tokens.to(self.text_proj.weight.dtype)) + self.text_type
        cls = (self.vit.cls_token + self.vit.pos_embed[:, :1]).expand(len(texts), -1, -1)
        valid = torch.cat([valid.new_ones(len(texts), 1), valid], dim=1)
        return torch.cat([cls.to(words.dtype), words], dim=1), valid

    def _cls(self, x: torch.Tensor, image_tokens: int, valid: torch.Tensor | None) -> torch.Tensor:
        tokens, _ = run_blocks(self.vit, x, image_tokens=image_tokens, key_valid=valid)
        return self.vit.norm(tokens)[:, 0]

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Image CLS embeddings ``(B, D)``."""
        x = self.vit.embed(images)
        return self._cls(x, x.shape[1], None)

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Text CLS embeddings ``(T, D)`` (the text sequences alone through the shared encoder)."""
        x, valid = self.text_sequence(texts)
        return self._cls(x, 0, valid)

    def fused_sequence(self, images: torch.Tensor, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``[CLS; patches; text tokens]`` per image (``fusion="concat"``), its valid mask and image token count."""
        if len(texts) != len(images):
            raise ValueError(f"the concatenated variant needs one text per image, got {len(texts)} for {len(images)}")
        image = self.vit.embed(images)
        text, valid = self.text_sequence(texts)
        words, word_valid = text[:, 1:], valid[:, 1:]
        x = torch.cat([image, words.to(image.dtype)], dim=1)
        valid = torch.cat([word_valid.new_ones(image.shape[:2]), word_valid], dim=1)
        return x, valid, image.shape[1]

    def encode_fused(self, images: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """CLS embeddings of the concatenated image + text sequences ``(B, D)``."""
        x, valid, n = self.fused_sequence(images, texts)
        return self._cls(x, n, valid)

    # ------------------------------------------------------------------ training and test
    def forward_stage1(self, images: torch.Tensor, texts: Sequence[str] | None, labels: torch.Tensor) -> dict[str, Any]:
        """Stage I outputs for the mixed batch: ``features`` (pre-BN CLS), ``logits`` (``pretrain_neck``),
        ``labels`` and ``modality`` (0 image, 1 text) per row.

        ``shared``: the images' CLS and, for each distinct (text, identity) pair of the batch, the text's CLS.
        ``concat``: one fused CLS per image. ``texts=None``: images only (the equal-budget control)."""
        if self.pretrain_neck.classifier is None:
            raise RuntimeError("DMF was built with pretrain_classes=0 and cannot run stage I")
        labels = torch.as_tensor(labels, device=images.device)
        if texts is None:
            features, row_labels = self.encode_images(images), labels
            modality = torch.zeros_like(labels)
        elif self.fusion == "concat":
            features, row_labels = self.encode_fused(images, texts), labels
            modality = torch.ones_like(labels)
        else:
            pairs = list(dict.fromkeys(zip(texts, labels.tolist(), strict=True)))
            text_features = self.encode_texts([t for t, _ in pairs])
            text_labels = torch.tensor([p for _, p in pairs], device=labels.device, dtype=labels.dtype)
            features = torch.cat([self.encode_images(images), text_features.to(images.dtype)], dim=0)
            row_labels = torch.cat([labels, text_labels])
            modality = torch.cat([torch.zeros_like(labels), torch.ones_like(text_labels)])
        _, logits = self.pretrain_neck(features)
        return {"features": features, "logits": logits, "labels": row_labels, "modality": modality}

    def forward(
        self,
        images: torch.Tensor,
        camids: torch.Tensor | None = None,
        *,
        stage1: bool = False,
        texts: Sequence[str] | None = None,
        labels: torch.Tensor | None = None,
    ) -> dict[str, Any] | torch.Tensor:
        """The image path (``camids`` unused: no SIE); ``stage1=True`` is :meth:`forward_stage1` (through
        ``forward`` so that wrappers such as DDP see the call)."""
        if stage1:
            if labels is None:
                raise ValueError("stage 1 needs the batch's identity labels")
            return self.forward_stage1(images, texts, labels)
        features = self.encode_images(images)
        bn_features, logits = self.neck(features)
        if self.training:
            if logits is None:
                raise RuntimeError("DMF was built with num_classes=0 and cannot be fine-tuned; pass num_classes")
            return {"logits": logits, "features": features}
        return bn_features if self.neck_feat == "after" else features


def _build(backbone: str | dict[str, Any], **kwargs: Any) -> DMF:
    return DMF(backbone=backbone, **kwargs)


@register_model
def dmf_vit_tiny_d6_patch16(**kwargs: Any) -> DMF:
    """DMF on the lab's tiny ViT (192-d, 6 blocks) with the lab's small CLIP text tower: the smoke size."""
    return _build("vit_tiny_d6_patch16", **{"text_encoder": LAB_TEXT, **kwargs})


@register_model
def dmf_vit_base_patch16(**kwargs: Any) -> DMF:
    """DMF on ViT-B/16 from ImageNet (``jx_vit_base_p16_224-80ecf9dd.pth``, what the DMF code loads)."""
    return _build("vit_base_patch16_224", **kwargs)


@register_model
def dmf_data2vec_vision_base(**kwargs: Any) -> DMF:
    """DMF on data2vec vision ViT-B/16 (the weights DMF's README names; BEiT layout)."""
    return _build("data2vec_vision_base", **kwargs)


@register_model
def dmf_beit_base_patch16(**kwargs: Any) -> DMF:
    """DMF on BEiT-B/16."""
    return _build("beit_base_patch16_224", **kwargs)


@register_model
def dmf_vit(backbone: str | dict[str, Any] = "vit_base_patch16_224", **kwargs: Any) -> DMF:
    """DMF on any backbone: a registered ViT / BEiT name or a ``ViTSize`` dict (random init)."""
    return _build(backbone, **kwargs)
