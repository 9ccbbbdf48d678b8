"""What the lab pretrains: the backbones, how each learns (identity + attributes, or image-caption contrast),
and their ``smoke`` / ``full`` presets.

* ``resnet18`` — timm's ResNet-18, the smoke BoT's backbone, at the smoke BoT's 64×32 input (ImageNet
  normalisation); 22 MB in fp16, so not shipped: make it with the command (12 epochs, about 12 minutes on 2
  CPU cores; the smoke BoT from it: 72.4 mAP vs 44.6 from random initialisation).
* ``vit_tiny_d6_patch16`` — timm ``VisionTransformer`` (patch 16, width 192, 6 blocks, 3 heads) at 128×64
  (8×4 patches), the smoke TransReID / DPM / DMF backbone; shipped (fp16, 5.6 MB).
* ``clip_tiny_synth`` — the lab's small open_clip CLIP (:mod:`reidlab.models.lab_clip`) on the world's
  one-sentence descriptions; shipped (fp16, 5.7 MB).

``smoke`` presets are sized for the 2-core CPU machine on the mini pretraining world: 12 epochs each, about 12
(ResNet-18), 15 (ViT) and 13 (CLIP) minutes; ``full`` presets are for a GPU on the full world (160,000 images).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch.nn as nn

from reidlab.engine import TrainConfig

VIT_TINY = dict(patch_size=16, embed_dim=192, depth=6, num_heads=3, mlp_ratio=4.0, qkv_bias=True)


@dataclass
class PretrainPreset(TrainConfig):
    """Settings of one pretraining run (any field can be overridden, e.g. ``-p epochs=3``)."""

    model: str = "vit_tiny_d6_patch16"
    world_size: str = "mini"
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0  # supervised: batch-hard triplet on the pooled feature
    attribute_weight: float = 1.0  # supervised: mean CE over the attribute heads
    export_dtype: Literal["float16", "float32"] = "float16"


@dataclass(frozen=True)
class PretrainSpec:
    """A pretrainable backbone: how it learns, how to build it with random weights, its presets."""

    name: str
    kind: Literal["supervised", "contrastive"]
    description: str
    build: Callable[[PretrainPreset], nn.Module]
    presets: dict[str, Callable[[], PretrainPreset]]
    shipped: bool


def _resnet18(preset: PretrainPreset) -> nn.Module:
    import timm

    return timm.create_model("resnet18", pretrained=False, num_classes=0)


def _vit_tiny(preset: PretrainPreset) -> nn.Module:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer(img_size=tuple(preset.image_size), num_classes=0, **VIT_TINY)


def _lab_clip(preset: PretrainPreset) -> nn.Module:
    from reidlab.models.lab_clip import create_lab_clip

    model, _ = create_lab_clip(pretrained=False)
    return model


_COMMON = dict(batch_k=4, fast_data=True, num_workers=0, interpolation="bilinear", flip_p=0.5, padding=4,
               erasing_p=0.5, erasing_mode="zero", val_ids=0, checkpoint_every=1, log_every=10,
               validate_every=1000, seed=0)  # fmt: skip


def _preset(**fields) -> Callable[[], PretrainPreset]:
    return lambda: PretrainPreset(**{**_COMMON, **fields})


SPECS: dict[str, PretrainSpec] = {
    spec.name: spec
    for spec in (
        PretrainSpec(
            "resnet18", "supervised", "ResNet-18 (timm), identity + attribute heads", _resnet18,
            {"smoke": _preset(model="resnet18", profile="smoke", image_size=(64, 32), batch_p=16, epochs=12,
                              optimizer="adam", lr=1e-3, weight_decay=5e-4, schedule="cosine", warmup_epochs=1,
                              padding=4),
             "full": _preset(model="resnet18", profile="full", world_size="full", image_size=(256, 128),
                             batch_p=32, epochs=60, optimizer="adam", lr=3.5e-4, weight_decay=5e-4,
                             schedule="cosine", warmup_epochs=5, padding=10, num_workers=8)},
            shipped=False,
        ),
        PretrainSpec(
            "vit_tiny_d6_patch16", "supervised", "tiny ViT (timm VisionTransformer, patch 16, width 192, depth 6)",
            _vit_tiny,
            {"smoke": _preset(model="vit_tiny_d6_patch16", profile="smoke", image_size=(128, 64), batch_p=16,
                              epochs=12, optimizer="adamw", lr=5e-4, weight_decay=0.05, schedule="cosine",
                              warmup_epochs=1, no_decay=("pos_embed", "cls_token"), grad_clip=1.0, padding=8),
             "full": _preset(model="vit_tiny_d6_patch16", profile="full", world_size="full", image_size=(128, 64),
                             batch_p=64, epochs=100, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                             schedule="cosine", warmup_epochs=5, no_decay=("pos_embed", "cls_token"), grad_clip=1.0,
                             padding=8, num_workers=8)},
            shipped=True,
        ),
        PretrainSpec(
            "clip_tiny_synth", "contrastive", "small open_clip CLIP on the world's descriptions", _lab_clip,
            {"smoke": _preset(model="clip_tiny_synth", profile="smoke", image_size=(128, 64), batch_p=32, batch_k=2,
                              epochs=12, optimizer="adamw", lr=5e-4, weight_decay=0.1, schedule="cosine",
                              warmup_epochs=1, no_decay=("positional_embedding", "class_embedding", "logit_scale",
                                                         "token_embedding"), grad_clip=1.0, padding=8,
                              normalization="clip", erasing_p=0.0),
             "full": _preset(model="clip_tiny_synth", profile="full", world_size="full", image_size=(128, 64),
                             batch_p=128, batch_k=2, epochs=60, optimizer="adamw", lr=1e-3, weight_decay=0.1,
                             schedule="cosine", warmup_epochs=5, no_decay=("positional_embedding", "class_embedding",
                                                                           "logit_scale", "token_embedding"),
                             grad_clip=1.0, padding=8, normalization="clip", erasing_p=0.0, num_workers=8)},
            shipped=True,
        ),
    )
}


def get_spec(name: str) -> PretrainSpec:
    """The pretrainable model ``name``; an unknown name lists the known ones."""
    if name not in SPECS:
        raise ValueError(f"unknown pretraining model {name!r}; the lab pretrains {sorted(SPECS)}")
    return SPECS[name]


def get_pretrain_preset(name: str, profile: str = "smoke", **overrides) -> PretrainPreset:
    """The preset of model ``name`` under ``profile`` with ``overrides`` (typed and checked)."""
    spec = get_spec(name)
    if profile not in spec.presets:
        raise ValueError(f"unknown profile {profile!r} for pretraining {name!r}; expected {sorted(spec.presets)}")
    return spec.presets[profile]().replace(**overrides)
