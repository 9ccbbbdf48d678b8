"""stone96123/DPM checkpoints (``model/make_model.py``, ``model/backbones/vit_pytorch.py``) -> the lab's DPM.

A TransReID fork saved the same way (``model.state_dict()``). Keys: ``base.*`` as TransReID's ViT (SIE table
``base.sie_embed``; ``base.fc`` stored and unused) plus the mask generator ``base.ConvLayer.{0,2,4}.{0,1}.*``
(conv3×3 + BN at each of the three levels; 1, 3 and 5 are poolings) and ``base.attfc.*`` (the Linear before the
sigmoid); ``bottleneck.*`` (BNNeck BN) and ``classifier.weight`` (the identity prototypes of its ArcFace
head, C×D). No JPM. The mask reads blocks 2, 4, 10 and the last (1-based), before the final norm.

Options as TransReID's converter (image size 256×128 -> stride from the position-embedding length, SIE
coefficient 3.0, test feature before the BN). The official test feature is the pre-BN global feature and the
sigmoid mask; ``model(images, camids=...)`` returns both (``{"embedding", "mask"}``). Ignored, exactly:
``base.fc.*``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from reidlab.models.dpm import VIT_B_MASK_BLOCKS
from reidlab.models.official import load_mapped, register_official
from reidlab.models.registry import create_model
from reidlab.models.transreid_official import (
    MODEL_SUFFIXES,
    fill_bn_counters,
    infer_depth,
    official_preprocessing,
    vit_settings,
)
from reidlab.preprocessing import attach_preprocessing


def official_mask_blocks(depth: int) -> tuple[int, ...]:
    """The official code's choice for a ``depth``-block ViT: the outputs of blocks 2, 4, 10 (fixed) and the last."""
    if depth < VIT_B_MASK_BLOCKS[2]:
        raise ValueError(f"the official DPM reads block 10; a {depth}-block ViT has none")
    return (*VIT_B_MASK_BLOCKS[:3], depth)


@register_official("dpm")
def dpm_from_official(
    state: dict[str, torch.Tensor],
    *,
    path: Path,
    image_size: tuple[int, int] = (256, 128),
    sie_coef: float = 3.0,
    sie_views: int = 0,
    neck_feat: str = "before",
    num_heads: int | None = None,
) -> nn.Module:
    """The lab's DPM holding a stone96123/DPM ``build_transformer`` state (options: see the module docstring)."""
    if not any(k.startswith("base.ConvLayer.") for k in state) or "base.attfc.weight" not in state:
        raise ValueError(f"{path}: not a DPM checkpoint (no mask generator 'base.ConvLayer.*' / 'base.attfc.*')")
    if "classifier.weight" not in state:
        raise ValueError(f"{path}: no 'classifier.weight' (the identity prototypes)")
    settings = vit_settings(state, path=path, image_size=tuple(image_size), num_heads=num_heads, sie_views=sie_views,
                            sie_coef=sie_coef)  # fmt: skip
    backbone = settings.pop("backbone")
    name = MODEL_SUFFIXES.get(backbone) if isinstance(backbone, str) else None
    kwargs = dict(num_classes=int(state["classifier.weight"].shape[0]), pretrained=False, neck_feat=neck_feat,
                  mask_blocks=official_mask_blocks(infer_depth(state)), **settings)  # fmt: skip
    model = create_model(f"dpm_{name}", **kwargs) if name else create_model("dpm_vit", backbone=backbone, **kwargs)
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if key.startswith("base.ConvLayer."):
            mapped["mask_generator.layers." + key.removeprefix("base.ConvLayer.")] = value
        elif key.startswith("base.attfc."):
            mapped["mask_generator.fc." + key.removeprefix("base.attfc.")] = value
        elif key.startswith("base.fc."):
            continue
        elif key.startswith("base."):
            mapped["vit." + key.removeprefix("base.")] = value
        elif key.startswith("bottleneck."):
            mapped["neck.bn." + key.removeprefix("bottleneck.")] = value
        elif key == "classifier.weight":
            mapped["classifier.weight"] = value
        else:
            unmapped.append(key)
    fill_bn_counters(mapped, model)
    load_mapped(model, mapped, path=path, unmapped=unmapped)
    return attach_preprocessing(model, official_preprocessing(tuple(image_size)))
