"""CLIP-ReID's model (Li et al., AAAI 2023; methods spec §2.2–2.6) and its prompt-learning variants, on open_clip.

:class:`ClipReID` = a CLIP image encoder (:mod:`reidlab.models.clip_image`), two BN-necks (``bottleneck`` on ``f``,
``bottleneck_proj`` on ``f_proj``; BN bias frozen at 0) with bias-free classifiers (N(0, 0.001)), and optionally
the text side (:mod:`reidlab.models.clip_text`): per-identity prompt tokens and CLIP's text tower. The names
``bottleneck``, ``bottleneck_proj``, ``classifier``, ``classifier_proj``, ``prompt_learner`` and ``text_encoder``
are CLIP-ReID's own.

``forward(images, camids=None, *, text_labels=None)``:

* train mode: ``{"scores": [W1·BN(f), W2·BN(f_proj)], "features": [f_last, f, f_proj], "image_proj": f_proj,
  "feature": f}`` (features before the BN), plus ``"text_features"`` of ``text_labels`` when given, plus
  ``"zero_shot_feature"`` (``f`` of a frozen copy of the starting encoder, PromptSRC's self-consistency target)
  when the model holds one;
* eval mode: the test feature — ``neck_feat="before"``: ``concat(f, f_proj)`` before the BN-necks (CLIP-ReID's
  released configs; 1280-d for ViT-B/16, 3072-d for RN50), ``"after"``: after them, ``"proj"``: ``f_proj`` alone
  (CLIP's own image embedding: the true zero-shot feature);
* ``model(text_labels=y)`` without images: the identities' text features (stage 1 of CLIP-ReID);
* ``features_only=True``: ``{"image_proj", "feature", "features"}`` (+ ``"text_features"``) in any mode, touching
  no BN-neck statistics (stage 1 of IVLP / PromptSRC, where image features need gradients).

Every learnable prompt parameter has ``prompt`` in its name (``prompt_learner.cls_ctx``, ``text_encoder.prompt_deep``,
``image_encoder.prompt_shallow`` / ``prompt_deep``): :meth:`ClipReID.prompt_parameters`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.models.clip_image import ClipResNetEncoder, ClipViTEncoder
from reidlab.models.clip_text import CLIP_REID_TEMPLATE, ClipTextEncoder, IdentityPromptLearner, identity_prompts
from reidlab.models.clip_weights import load_clip, source_grid
from reidlab.models.registry import register_model
from reidlab.preprocessing import Preprocessing, attach_preprocessing
from reidlab.weights import Pretrained

NeckFeat = Literal["before", "after", "proj"]
NECK_FEATS = ("before", "after", "proj")


def _bn_neck(dim: int) -> nn.BatchNorm1d:
    bn = nn.BatchNorm1d(dim)
    bn.bias.requires_grad_(False)
    return bn


def _classifier(dim: int, num_classes: int) -> nn.Linear | None:
    if num_classes <= 0:
        return None
    layer = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(layer.weight, std=0.001)
    return layer


class ClipReID(nn.Module):
    """See the module docstring. ``tokenizer`` (not saved) turns sentences into token ids for :meth:`encode_texts`."""

    def __init__(
        self,
        image_encoder: nn.Module,
        *,
        num_classes: int = 0,
        text_encoder: ClipTextEncoder | None = None,
        prompt_learner: IdentityPromptLearner | None = None,
        tokenizer: Any = None,
        neck_feat: NeckFeat = "before",
        self_consistency_encoder: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if neck_feat not in NECK_FEATS:
            raise ValueError(f"neck_feat must be one of {NECK_FEATS}, got {neck_feat!r}")
        if prompt_learner is not None and text_encoder is None:
            raise ValueError("a prompt learner needs the text encoder")
        self.image_encoder = image_encoder
        self.feat_dim, self.proj_dim = int(image_encoder.feat_dim), int(image_encoder.proj_dim)
        self.num_classes = int(num_classes)
        self.neck_feat = neck_feat
        self.bottleneck = _bn_neck(self.feat_dim)
        self.bottleneck_proj = _bn_neck(self.proj_dim)
        self.classifier = _classifier(self.feat_dim, num_classes)
        self.classifier_proj = _classifier(self.proj_dim, num_classes)
        self.text_encoder = text_encoder
        self.prompt_learner = prompt_learner
        self.tokenizer = tokenizer
        self.self_consistency_encoder = self_consistency_encoder
        if self_consistency_encoder is not None:
            self_consistency_encoder.requires_grad_(False)
        self.embed_dim = {"before": self.feat_dim + self.proj_dim, "after": self.feat_dim + self.proj_dim,
                          "proj": self.proj_dim}[neck_feat]  # fmt: skip

    # ------------------------------------------------------------------ text side
    def text_features(self, labels: torch.Tensor) -> torch.Tensor:
        """Text features ``(B, proj_dim)`` of identities ``labels`` (their learned prompts through the text tower)."""
        if self.prompt_learner is None:
            raise ValueError("this ClipReID model has no prompt learner (built with text=False)")
        embeddings, tokens = self.prompt_learner(labels)
        return self.text_encoder(embeddings, tokens)

    @torch.no_grad()
    def all_text_features(self, chunk: int = 64) -> torch.Tensor:
        """Text features of every identity, ``(num_classes, proj_dim)``, in chunks (CLIP-ReID's stage-2 classifier)."""
        device = self.prompt_learner.cls_ctx.device
        n = self.prompt_learner.num_classes
        parts = [self.text_features(torch.arange(i, min(i + chunk, n), device=device)) for i in range(0, n, chunk)]
        return torch.cat(parts).float()

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, normalize: bool = True) -> torch.Tensor:
        """Text features of plain sentences ``(N, proj_dim)`` (L2-normalised by default), on the CPU."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("encode_texts needs the text encoder and the tokenizer (build the model with text=True)")
        device = self.text_encoder.positional_embedding.device
        parts = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i : i + batch_size])).to(device)
            parts.append(self.text_encoder.encode(tokens).float())
        features = torch.cat(parts)
        return (F.normalize(features, dim=-1) if normalize else features).cpu()

    def prompt_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The learnable prompt parameters (names containing ``prompt``)."""
        return [(n, p) for n, p in self.named_parameters() if "prompt" in n]

    # ------------------------------------------------------------------ image side
    def forward(
        self,
        images: torch.Tensor | None = None,
        camids: torch.Tensor | None = None,
        *,
        text_labels: torch.Tensor | None = None,
        features_only: bool = False,
    ) -> Any:
        if images is None:
            if text_labels is None:
                raise ValueError("ClipReID.forward needs images, text_labels or both")
            return self.text_features(text_labels)
        enc = self.image_encoder(images, camids)
        f_last, f, f_proj = enc["f_last"], enc["f"], enc["f_proj"]
        if features_only:  # image and text features only: no BN-neck statistics, classifiers or zero-shot copy
            out = {"image_proj": f_proj, "feature": f, "features": [f_last, f, f_proj]}
            if text_labels is not None:
                out["text_features"] = self.text_features(text_labels)
            return out
        if not self.training:
            if self.neck_feat == "proj":
                return f_proj
            if self.neck_feat == "after":
                return torch.cat([self.bottleneck(f), self.bottleneck_proj(f_proj)], dim=1)
            return torch.cat([f, f_proj], dim=1)
        if self.classifier is None:
            raise ValueError("a ClipReID model built with num_classes=0 has no classifier to train")
        scores = [self.classifier(self.bottleneck(f)), self.classifier_proj(self.bottleneck_proj(f_proj))]
        out: dict[str, Any] = {"scores": scores, "features": [f_last, f, f_proj], "image_proj": f_proj, "feature": f}
        if text_labels is not None:
            out["text_features"] = self.text_features(text_labels)
        if self.self_consistency_encoder is not None:
            with torch.no_grad():
                out["zero_shot_feature"] = self.self_consistency_encoder(images)["f"]
        return out

    @torch.no_grad()
    def patch_similarity(self, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of every patch (projected into the joint space) with each text: ``(B, T, gh, gw)``."""
        enc = self.image_encoder(images, tokens=True)
        if "patch_proj" not in enc:
            raise ValueError("patch similarity maps need a ViT image encoder")
        patches = F.normalize(enc["patch_proj"].float(), dim=-1)
        sims = patches @ F.normalize(text_features.float().to(patches.device), dim=-1).T
        gh, gw = self.image_encoder.grid
        return sims.permute(0, 2, 1).reshape(images.shape[0], -1, gh, gw)


def build_image_encoder(visual: nn.Module, grid: Sequence[int], *, image_size: Sequence[int], stride: int | None = None,
                        num_cameras: int = 0, sie_coef: float = 1.0, visual_prompts: int = 0,
                        prompt_depth: int | None = None, interpolation: str = "bilinear") -> nn.Module:  # fmt: skip
    """The ReID encoder over a CLIP image tower (ViT or ResNet), position embeddings resized from its trained
    ``grid``."""
    if hasattr(visual, "attnpool"):
        if num_cameras or visual_prompts:
            raise ValueError("SIE and visual prompts exist for the CLIP ViT only (CLIP-ReID's RN50 has neither)")
        if stride not in (None, 16):
            raise ValueError(f"the CLIP ResNet has no patch stride to set (got stride={stride})")
        return ClipResNetEncoder(visual, image_size=image_size, source_grid=grid, interpolation=interpolation)
    return ClipViTEncoder(visual, image_size=image_size, stride=stride, source_grid=grid, num_cameras=num_cameras,
                          sie_coef=sie_coef, visual_prompts=visual_prompts, prompt_depth=prompt_depth,
                          interpolation=interpolation)  # fmt: skip


def build_clip_reid(
    *,
    backbone: str = "ViT-B-16",
    num_classes: int = 0,
    pretrained: Pretrained = "auto",
    image_size: Sequence[int] = (256, 128),
    stride: int | None = None,
    num_cameras: int = 0,
    sie_coef: float = 1.0,
    neck_feat: NeckFeat = "before",
    text: bool = True,
    template: str = CLIP_REID_TEMPLATE,
    visual_prompts: int = 0,
    text_prompts: int = 0,
    prompt_depth: int | None = None,
    interpolation: str = "bilinear",
    pos_interpolation: str = "bilinear",
    normalization: str = "half",
    self_consistency: bool = False,
) -> ClipReID:
    """A :class:`ClipReID` on CLIP ``backbone`` (``"ViT-B-16"``, ``"RN50"`` or ``"clip_tiny_synth"``).

    ``text=True`` adds the text tower and per-identity prompts in ``template`` (needs ``num_classes``);
    ``visual_prompts`` / ``text_prompts`` add IVLP's deep prompts to the first ``prompt_depth`` blocks;
    ``self_consistency`` keeps a frozen copy of the starting image encoder (PromptSRC). ``pos_interpolation``
    resizes the position embeddings (CLIP-ReID: bilinear). The model carries ``preprocessing`` (``image_size``,
    ``normalization`` and the image resize ``interpolation``).
    """
    clip, tokenizer, record = load_clip(backbone, pretrained)
    grid = source_grid(clip)
    geometry = {"image_size": image_size, "stride": stride, "interpolation": pos_interpolation}
    consistency = None
    if self_consistency:  # a frozen copy of the starting tower, without prompts or SIE
        consistency = build_image_encoder(copy.deepcopy(clip.visual), grid, **geometry)
    encoder = build_image_encoder(clip.visual, grid, num_cameras=num_cameras, sie_coef=sie_coef,
                                  visual_prompts=visual_prompts, prompt_depth=prompt_depth, **geometry)  # fmt: skip
    encoder.pretrained_weights = record
    text_encoder = prompt_learner = None
    if text:
        text_encoder = ClipTextEncoder(clip, prompt_tokens=text_prompts, prompt_depth=prompt_depth)
        if num_classes > 0:
            prompt_learner = identity_prompts(text_encoder, tokenizer, num_classes, template)
    elif text_prompts:
        raise ValueError("text_prompts need the text tower (text=True)")
    model = ClipReID(encoder, num_classes=num_classes, text_encoder=text_encoder, prompt_learner=prompt_learner,
                     tokenizer=tokenizer, neck_feat=neck_feat, self_consistency_encoder=consistency)  # fmt: skip
    return attach_preprocessing(model, Preprocessing(tuple(image_size), normalization, interpolation))


@register_model
def clip_reid_vit_b16(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs: Any) -> ClipReID:
    """CLIP-ReID on OpenAI CLIP ViT-B/16 (``ViT-B-16.pt``): 768-d ``f``, 512-d ``f_proj``; 256×128, mean = std = 0.5."""
    return build_clip_reid(backbone="ViT-B-16", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def clip_reid_rn50(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs: Any) -> ClipReID:
    """CLIP-ReID on OpenAI CLIP RN50 (``RN50.pt``): 2048-d ``f``, 1024-d ``f_proj``; ImageNet normalisation."""
    kwargs.setdefault("normalization", "imagenet")
    return build_clip_reid(backbone="RN50", num_classes=num_classes, pretrained=pretrained, **kwargs)


@register_model
def clip_reid_tiny(num_classes: int = 0, pretrained: Pretrained = "auto", **kwargs: Any) -> ClipReID:
    """CLIP-ReID on the lab's small CLIP (``clip_tiny_synth``: ViT width 192, 4 blocks; 128-d joint space) at its
    own 128×64 input and CLIP normalisation: the smoke-profile size."""
    kwargs.setdefault("image_size", (128, 64))
    kwargs.setdefault("normalization", "clip")
    kwargs.setdefault("interpolation", "bicubic")
    return build_clip_reid(backbone="clip_tiny_synth", num_classes=num_classes, pretrained=pretrained, **kwargs)
