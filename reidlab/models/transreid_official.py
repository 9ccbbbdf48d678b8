"""damo-cv/TransReID checkpoints (``model/make_model.py``, ``model/backbones/vit_pytorch.py``) -> the lab's TransReID.

The official trainer saves ``model.state_dict()`` (``module.`` prefixes under DDP). Its keys:

* ``base.*``: the ViT in timm's original layout (``cls_token``, ``pos_embed`` (1, 1 + N, D),
  ``patch_embed.proj``, ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm``), the SIE
  table ``sie_embed`` (n, 1, D) when SIE is on, and ``fc`` (an ImageNet-sized head the model never uses);
* ``bottleneck.*`` (BNNeck BN, bias frozen at 0) and ``classifier.weight`` (C, D);
* with JPM: ``b1.{0,1}`` (the global branch: a copy of the last block and the norm), ``b2.{0,1}`` (the local
  branch), ``bottleneck_{1..4}`` and ``classifier_{1..4}``; ``base.blocks.<last>`` and ``base.norm`` are stored
  but unused.

Read from the tensors: width, depth, MLP width, qkv bias (so the backbone size), the class count, the SIE
table size and JPM. Not stored, so options with the released configs' values: the image size (256×128, from
which the patch stride follows the position-embedding length: 129 -> 16, 211 -> 12, 243 -> 11), the SIE
coefficient (3.0), cameras vs views (``sie_views``), the test feature (before the BN), JPM's shift (5), groups
(2) and parts (4). Ignored, exactly: ``base.fc.*``, and with JPM ``base.blocks.<last>.*`` and ``base.norm.*``.
The official test transform: bilinear resize, mean = std = 0.5.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from reidlab.models.official import load_mapped, register_official
from reidlab.models.registry import create_model
from reidlab.models.vit import VIT_SIZES, ViTSize, patch_grid
from reidlab.preprocessing import Preprocessing, attach_preprocessing

#: backbone name -> suffix of the registered models (``transreid_<suffix>``, ``dpm_<suffix>``)
MODEL_SUFFIXES = {
    "vit_base_patch16_224": "vit_base_patch16",
    "vit_small_patch16_224": "vit_small_patch16",
    "deit_small_patch16_224": "deit_small_patch16",
    "vit_tiny_d6_patch16": "vit_tiny_d6_patch16",
}


def infer_depth(state: dict[str, torch.Tensor], prefix: str = "base.") -> int:
    """Number of ``<prefix>blocks.i`` blocks in the file."""
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}blocks\.(\d+)\.", k))}
    if not found:
        raise ValueError(f"no '{prefix}blocks.<i>.*' keys: not a TransReID-style ViT checkpoint")
    return max(found) + 1


def infer_vit_size(
    state: dict[str, torch.Tensor], *, path: Path, prefix: str = "base.", num_heads: int | None = None
) -> tuple[str | None, ViTSize]:
    """The backbone name and size of the ViT under ``prefix``; a size the lab does not register needs ``num_heads``."""
    dim = int(state[f"{prefix}cls_token"].shape[-1])
    depth = infer_depth(state, prefix)
    hidden = int(state[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0])
    qkv_bias = f"{prefix}blocks.0.attn.qkv.bias" in state
    for name, size in VIT_SIZES.items():
        same = (size.embed_dim, size.depth, round(size.mlp_ratio * size.embed_dim), size.qkv_bias)
        if same == (dim, depth, hidden, qkv_bias) and num_heads in (None, size.num_heads):
            return name, size
    if num_heads is None:
        raise ValueError(
            f"{path}: a {dim}-wide, {depth}-block ViT (MLP {hidden}, qkv bias {qkv_bias}) that is none of the lab's "
            f"registered sizes {sorted(VIT_SIZES)}; the head count is not stored: pass num_heads=..."
        )
    return None, ViTSize(dim, depth, int(num_heads), hidden / dim, qkv_bias)


def infer_stride(num_patches: int, image_size: tuple[int, int], *, path: Path, patch_size: int = 16) -> int:
    """The patch stride whose grid on ``image_size`` holds ``num_patches`` (an error when none or several do)."""
    grids = {s: patch_grid(image_size, patch_size, s) for s in range(1, patch_size + 1)}
    found = [s for s, (rows, cols) in grids.items() if rows * cols == num_patches]
    if len(found) != 1:
        what = "no stride" if not found else f"several strides {found}"
        raise ValueError(f"{path}: {what} of a {patch_size}-pixel patch give {num_patches} patches on a "
                         f"{image_size[0]}x{image_size[1]} image; pass the training image_size=(H, W)")  # fmt: skip
    return found[0]


def vit_settings(
    state: dict[str, torch.Tensor], *, path: Path, image_size: tuple[int, int], num_heads: int | None,
    sie_views: int, sie_coef: float,
) -> dict[str, Any]:  # fmt: skip
    """Model keyword arguments shared by the TransReID and DPM converters (backbone, stride, SIE)."""
    name, size = infer_vit_size(state, path=path, num_heads=num_heads)
    stride = infer_stride(int(state["base.pos_embed"].shape[1]) - 1, image_size, path=path)
    rows = int(state["base.sie_embed"].shape[0]) if "base.sie_embed" in state else 0
    cameras, views = rows, 0
    if rows and sie_views > 1:
        if rows % sie_views:
            raise ValueError(f"{path}: an SIE table of {rows} rows is not cameras x {sie_views} views")
        cameras, views = rows // sie_views, sie_views
    return {"backbone": name or size.as_dict(), "image_size": tuple(image_size), "stride": stride,
            "sie_cameras": cameras, "sie_views": views, "sie_coef": sie_coef}  # fmt: skip


def map_backbone(key: str, last_block: int, jpm: bool) -> str | None:
    """The lab key of an official ``base.*`` key; None for the keys the official model never uses."""
    rest = key.removeprefix("base.")
    if rest.startswith("fc."):
        return None
    if jpm and (rest.startswith(f"blocks.{last_block}.") or rest.startswith("norm.")):
        return None
    return "vit." + rest


def fill_bn_counters(mapped: dict[str, torch.Tensor], model: nn.Module) -> None:
    """BatchNorm step counters absent from a file do not change the output: take the model's."""
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = value


def official_preprocessing(image_size: tuple[int, int]) -> Preprocessing:
    """TransReID's / DPM's test transform: bilinear resize, mean = std = 0.5."""
    return Preprocessing(tuple(image_size), "half", "bilinear")


@register_official("transreid")
def transreid_from_official(
    state: dict[str, torch.Tensor],
    *,
    path: Path,
    image_size: tuple[int, int] = (256, 128),
    sie_coef: float = 3.0,
    sie_views: int = 0,
    neck_feat: str = "before",
    num_heads: int | None = None,
    jpm_shift: int = 5,
    jpm_groups: int = 2,
    jpm_rearrange: bool = True,
) -> nn.Module:
    """The lab's TransReID holding a damo-cv/TransReID ``build_transformer`` / ``build_transformer_local`` state.

    Options (defaults: the released configs): ``image_size`` (``INPUT.SIZE_TRAIN``; sets the stride),
    ``sie_coef`` (``MODEL.SIE_COE`` 3.0), ``sie_views`` (views per camera when the table is cameras×views),
    ``neck_feat`` (``TEST.NECK_FEAT`` 'before'), ``num_heads`` (only for sizes the lab does not register),
    JPM's ``jpm_shift`` / ``jpm_groups`` / ``jpm_rearrange`` (``SHIFT_NUM`` 5, ``SHUFFLE_GROUP`` 2,
    ``RE_ARRANGE`` True).
    """
    if "base.cls_token" not in state or "classifier.weight" not in state:
        raise ValueError(f"{path}: not a TransReID checkpoint (no 'base.cls_token' / 'classifier.weight')")
    if any(k.startswith("base.ConvLayer.") for k in state):
        raise ValueError(f"{path}: a DPM checkpoint (mask generator 'base.ConvLayer'); use method='dpm'")
    jpm = any(k.startswith("b1.") for k in state)
    parts = sum(1 for k in state if re.fullmatch(r"classifier_\d+\.weight", k)) if jpm else 4
    settings = vit_settings(state, path=path, image_size=tuple(image_size), num_heads=num_heads, sie_views=sie_views,
                            sie_coef=sie_coef)  # fmt: skip
    backbone = settings.pop("backbone")
    name = MODEL_SUFFIXES.get(backbone) if isinstance(backbone, str) else None
    kwargs = dict(num_classes=int(state["classifier.weight"].shape[0]), pretrained=False, neck_feat=neck_feat,
                  jpm=jpm, jpm_parts=parts, jpm_shift=jpm_shift, jpm_groups=jpm_groups, jpm_rearrange=jpm_rearrange,
                  **settings)  # fmt: skip
    model = create_model(f"transreid_{name}", **kwargs) if name else create_model("transreid_vit", backbone=backbone,
                                                                                   **kwargs)  # fmt: skip
    last = len(model.vit.blocks) - 1
    # b1 = (last block, norm) of the global branch, b2 = the local branch's copies
    branches = {"b1.0": f"vit.blocks.{last}.", "b1.1": "vit.norm.", "b2.0": "jpm.block.", "b2.1": "jpm.norm."}
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if key.startswith("base."):
            target = map_backbone(key, last, jpm)
            if target is not None:
                mapped[target] = value
            continue
        if key.startswith("bottleneck."):
            mapped["neck.bn." + key.removeprefix("bottleneck.")] = value
        elif key == "classifier.weight":
            mapped["neck.classifier.weight"] = value
        elif jpm and (m := re.match(r"(b[12]\.[01])\.(.+)", key)):
            mapped[branches[m.group(1)] + m.group(2)] = value
        elif jpm and (m := re.match(r"(bottleneck|classifier)_(\d+)\.(.+)", key)):
            kind, k, rest = m.groups()
            mapped[f"jpm.necks.{int(k) - 1}.{'bn' if kind == 'bottleneck' else 'classifier'}.{rest}"] = value
        else:
            unmapped.append(key)
    fill_bn_counters(mapped, model)
    load_mapped(model, mapped, path=path, unmapped=unmapped)
    return attach_preprocessing(model, official_preprocessing(tuple(image_size)))
