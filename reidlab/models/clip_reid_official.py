"""Syliz517/CLIP-ReID checkpoints (``model/make_model_clipreid.py``, ``model/clip/model.py``) -> the lab's ClipReID.

The official ``build_transformer`` is saved as a state dict (``module.`` prefixes under distributed training):
``image_encoder.*`` (CLIP's visual tower, OpenAI's key names: a ViT with ``conv1`` / ``class_embedding`` /
``positional_embedding`` / ``transformer.resblocks.*`` / ``ln_post`` / ``proj``, or the ModifiedResNet with
``layer1..4`` and ``attnpool``), ``cv_embed`` (SIE table, when trained with SIE), ``bottleneck*`` / ``bottleneck_proj*``
(BN1d), ``classifier.weight`` / ``classifier_proj.weight`` (no bias), and — in CLIP-ReID (not baseline) files —
``prompt_learner.*`` and ``text_encoder.*``. The image test path needs neither of the last two; they are left out
(listed in ``model.official_skipped``). The baseline's files (``train.py``) load the same way.

What the tensors tell: ViT width / depth / heads (width / 64) / patch / projection, RN50 block counts and widths,
the class count, the camera count (``cv_embed`` rows). What they do not, with the defaults of the README's
released test commands: ``image_size`` (256×128; the default config's 384×128 breaks the position embedding, issue
#10), the patch ``stride`` (inferred from the position-embedding length at ``image_size``: 129 tokens ⇒ 16, 211 ⇒
12), ``sie_coef`` (**1.0**, the README's SIE + overlapping-patch command; the config default is 3.0: pass
``sie_coef=3.0`` for checkpoints trained with it) and the test feature (``neck_feat="before"``: ``concat(f, f_proj)``
before the BN-necks, ``TEST.NECK_FEAT 'before'`` in every released config). The official test transform is a
bilinear resize with mean = std = 0.5 (ViT) or ImageNet statistics (RN50). With SIE, pass the 0-based camera ids.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from reidlab.models.clip_image import ClipResNetEncoder, ClipViTEncoder, infer_stride
from reidlab.models.clip_reid import NECK_FEATS, ClipReID
from reidlab.models.official import load_mapped, register_official
from reidlab.preprocessing import Preprocessing, attach_preprocessing

SKIPPED_PREFIXES = ("prompt_learner.", "text_encoder.")
_IMAGE = "image_encoder."


def _count(state: dict[str, torch.Tensor], pattern: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(pattern, k))}
    return max(found) + 1 if found else 0


def _vit_encoder(state: dict[str, torch.Tensor], image_size: tuple[int, int], sie_coef: float) -> ClipViTEncoder:
    from open_clip.transformer import QuickGELU, VisionTransformer

    conv = state[_IMAGE + "conv1.weight"]
    width, patch = int(conv.shape[0]), int(conv.shape[-1])
    layers = _count(state, r"image_encoder\.transformer\.resblocks\.(\d+)\.")
    output_dim = int(state[_IMAGE + "proj"].shape[1])
    stride = infer_stride(int(state[_IMAGE + "positional_embedding"].shape[0]) - 1, image_size, patch)
    visual = VisionTransformer(image_size=image_size, patch_size=patch, width=width, layers=layers, heads=width // 64,
                               mlp_ratio=4.0, output_dim=output_dim, act_layer=QuickGELU)  # fmt: skip
    cameras = int(state["cv_embed"].shape[0]) if "cv_embed" in state else 0
    return ClipViTEncoder(visual, image_size=image_size, stride=stride, source_grid=visual.grid_size,
                          num_cameras=cameras, sie_coef=sie_coef)  # fmt: skip


def _resnet_encoder(state: dict[str, torch.Tensor], image_size: tuple[int, int]) -> ClipResNetEncoder:
    from open_clip.modified_resnet import ModifiedResNet

    layers = [_count(state, rf"image_encoder\.layer{i}\.(\d+)\.") for i in range(1, 5)]
    width = int(state[_IMAGE + "layer1.0.conv1.weight"].shape[0])
    output_dim = int(state[_IMAGE + "attnpool.c_proj.weight"].shape[0])
    visual = ModifiedResNet(layers, output_dim, heads=width * 32 // 64, image_size=224, width=width)
    encoder = ClipResNetEncoder(visual, image_size=image_size)
    stored = int(state[_IMAGE + "attnpool.positional_embedding"].shape[0])
    if stored != 1 + encoder.grid[0] * encoder.grid[1]:
        raise ValueError(f"the attention pool holds {stored - 1} positions, a {encoder.grid[0]}×{encoder.grid[1]} "
                         f"map at image_size {image_size} has {encoder.grid[0] * encoder.grid[1]}; pass the image_size "
                         "the checkpoint was trained at")  # fmt: skip
    return encoder


@register_official("clipreid")
def clip_reid_from_official(
    state: dict[str, torch.Tensor],
    *,
    path: Path,
    image_size: tuple[int, int] = (256, 128),
    sie_coef: float = 1.0,
    neck_feat: str = "before",
) -> nn.Module:
    """The lab's :class:`~reidlab.models.clip_reid.ClipReID` (image side) holding a CLIP-ReID checkpoint.

    Options (see the module docstring): ``image_size`` (256×128), ``sie_coef`` (1.0), ``neck_feat`` ("before").
    """
    if neck_feat not in NECK_FEATS:
        raise ValueError(f"neck_feat must be one of {NECK_FEATS}, got {neck_feat!r}")
    if "classifier.weight" not in state or not any(k.startswith(_IMAGE) for k in state):
        raise ValueError(f"{path}: not a CLIP-ReID checkpoint (no 'image_encoder.*' / 'classifier.weight')")
    image_size = tuple(int(v) for v in image_size)
    vit = _IMAGE + "proj" in state
    if vit:
        encoder = _vit_encoder(state, image_size, sie_coef)
    elif _IMAGE + "attnpool.c_proj.weight" in state:
        encoder = _resnet_encoder(state, image_size)
    else:
        raise ValueError(f"{path}: its image encoder is neither CLIP's ViT (image_encoder.proj) nor its ModifiedResNet")
    model = ClipReID(encoder, num_classes=int(state["classifier.weight"].shape[0]), neck_feat=neck_feat)
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    skipped: list[str] = []
    for key, value in state.items():
        if key.startswith(_IMAGE):
            mapped["image_encoder.visual." + key.removeprefix(_IMAGE)] = value
        elif key == "cv_embed":
            mapped["image_encoder.sie_embed"] = value
        elif key.startswith(("bottleneck.", "bottleneck_proj.", "classifier.", "classifier_proj.")):
            mapped[key] = value
        elif key.startswith(SKIPPED_PREFIXES):
            skipped.append(key)
        else:
            unmapped.append(key)
    load_mapped(model, {k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}, path=path,
                unmapped=unmapped)  # fmt: skip
    model.official_skipped = skipped
    normalization = "half" if vit else "imagenet"
    return attach_preprocessing(model, Preprocessing(image_size, normalization, "bilinear"))
