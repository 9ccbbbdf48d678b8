"""Where Grad-CAM reads a ReID model: one dispatch per model family, with the reshape its activations need.

* **CNN** (BoT, IV-ReID, any ResNet-like model): the output of the last residual block (``layer4[-1]``);
* **MuDeep v2**: the last block of each of its three streams (pytorch-grad-cam averages the per-stream maps);
* **ViT** (TransReID, DPM, DMF, any timm ViT): the last block's ``norm1`` — its patch tokens feed the CLS token —
  or, when TransReID's JPM branch reads the tokens before the last block, the output of the block before it;
  tokens go back to the patch grid without the CLS token;
* **CLIP ViT tower** (CLIP-ReID and its prompt variants): the last residual block's ``ln_1``, CLS token and IVLP
  prompt tokens (appended at the end of the sequence) dropped, sequence-first layouts transposed;
* **CLIP ResNet tower**: the last block of ``layer4``.

A model may declare its own layer with ``gradcam_target_layer()``; that takes precedence over the dispatch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reidlab.models.bot import BoT
from reidlab.models.clip_image import ClipResNetEncoder, ClipViTEncoder
from reidlab.models.ivreid import IVReID
from reidlab.models.mudeep_v2 import MuDeepV2

Reshape = Callable[[torch.Tensor], torch.Tensor]
FAMILIES = ("cnn", "multi_stream", "vit", "clip_vit", "clip_resnet", "declared")


@dataclass(frozen=True)
class CamLayers:
    """The layers Grad-CAM reads (``layers``), how their activations become ``(B, C, h, w)`` maps
    (``reshape_transform``, None for convolution maps) and the model ``family`` (one of :data:`FAMILIES`)."""

    family: str
    layers: tuple[nn.Module, ...]
    reshape_transform: Reshape | None = None


def find_vit(model: nn.Module) -> nn.Module | None:
    """The first sub-module that looks like a ViT (has ``patch_embed`` and ``blocks``), else None."""
    for module in model.modules():
        if hasattr(module, "patch_embed") and hasattr(module, "blocks"):
            return module
    return None


def vit_grid_size(vit: nn.Module) -> tuple[int, int]:
    """Patch-grid ``(rows, cols)`` of a ViT from its patch embedding (timm ``grid_size`` or ``num_y/num_x``)."""
    pe = vit.patch_embed
    if getattr(pe, "grid_size", None) is not None:
        return int(pe.grid_size[0]), int(pe.grid_size[1])
    if hasattr(pe, "num_y") and hasattr(pe, "num_x"):
        return int(pe.num_y), int(pe.num_x)
    raise ValueError(f"cannot read the patch grid from {type(pe).__name__}: expected grid_size or num_y/num_x")


def vit_reshape_transform(
    grid_size: Sequence[int], num_prefix_tokens: int | None = None, *, num_suffix_tokens: int = 0,
    batch_first: bool = True,
) -> Reshape:  # fmt: skip
    """Map ViT tokens ``(B, N, C)`` (``(N, B, C)`` with ``batch_first=False``) to a CNN-like ``(B, C, rows, cols)``
    grid, dropping the leading prefix tokens (CLS, distillation, registers) and ``num_suffix_tokens`` trailing ones
    (visual prompts). ``num_prefix_tokens=None`` infers ``N - suffix - rows*cols``. A tensor that is already a map
    ``(B, C, h, w)`` passes through unchanged."""
    rows, cols = int(grid_size[0]), int(grid_size[1])
    suffix = int(num_suffix_tokens)
    if suffix < 0:
        raise ValueError(f"num_suffix_tokens: expected an integer >= 0, got {num_suffix_tokens}")

    def transform(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() == 4:
            return tokens
        if tokens.dim() != 3:
            raise ValueError(f"ViT reshape: expected tokens (B, N, C), got shape {tuple(tokens.shape)}")
        if not batch_first:
            tokens = tokens.transpose(0, 1)
        b, n, c = tokens.shape
        prefix = n - suffix - rows * cols if num_prefix_tokens is None else num_prefix_tokens
        if prefix < 0 or n - prefix - suffix != rows * cols:
            raise ValueError(f"ViT reshape: {n} tokens do not hold a {rows}x{cols} patch grid after {prefix} "
                             f"prefix and {suffix} suffix token(s)")  # fmt: skip
        return tokens[:, prefix : n - suffix].reshape(b, rows, cols, c).permute(0, 3, 1, 2)

    return transform


def _clip_layers(encoder: nn.Module) -> CamLayers:
    visual = encoder.visual
    if isinstance(encoder, ClipResNetEncoder):
        return CamLayers("clip_resnet", (visual.layer4[-1],))
    transformer = visual.transformer
    reshape = vit_reshape_transform(encoder.grid, 1, num_suffix_tokens=encoder.num_prompts,
                                    batch_first=getattr(transformer, "batch_first", True))  # fmt: skip
    return CamLayers("clip_vit", (transformer.resblocks[-1].ln_1,), reshape)


def _vit_layers(model: nn.Module, vit: nn.Module) -> CamLayers:
    reshape = vit_reshape_transform(vit_grid_size(vit), getattr(vit, "num_prefix_tokens", None))
    blocks = vit.blocks
    if getattr(model, "jpm", None) is not None and len(blocks) > 1:  # JPM reads the tokens before the last block
        return CamLayers("vit", (blocks[-2],), reshape)
    last = blocks[-1]
    return CamLayers("vit", (getattr(last, "norm1", last),), reshape)


def _conv_layer(model: nn.Module) -> nn.Module:
    """Generic CNNs: the last block of ``layer4`` (ResNets), the last of ``stages``/``features``, else the last conv."""
    for name in ("layer4", "stages", "features"):
        for mod_name, module in model.named_modules():
            if mod_name.split(".")[-1] == name:
                children = list(module.children())
                return children[-1] if children else module
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"cannot choose a Grad-CAM target layer for {type(model).__name__}: no ViT blocks, layer4, "
            "stages or Conv2d found; pass target_layer= or define model.gradcam_target_layer()"
        )
    return convs[-1]


def gradcam_layers(model: nn.Module) -> CamLayers:
    """Where Grad-CAM reads ``model`` (see the module docstring): its declared ``gradcam_target_layer()``, else the
    layers of its family."""
    vit = find_vit(model)
    vit_reshape = vit_reshape_transform(vit_grid_size(vit), getattr(vit, "num_prefix_tokens", None)) if vit else None
    if callable(getattr(model, "gradcam_target_layer", None)):
        return CamLayers("declared", (model.gradcam_target_layer(),), vit_reshape)
    encoder = getattr(model, "image_encoder", model)  # ClipReID holds its tower as image_encoder
    if isinstance(encoder, ClipViTEncoder | ClipResNetEncoder):
        return _clip_layers(encoder)
    if isinstance(model, MuDeepV2):
        return CamLayers("multi_stream", tuple(stream[-1] for stream in model.streams))
    if isinstance(model, BoT | IVReID):
        return CamLayers("cnn", (model.backbone.layer4[-1],))
    if vit is not None:
        return _vit_layers(model, vit)
    return CamLayers("cnn", (_conv_layer(model),))


def find_target_layer(model: nn.Module) -> nn.Module:
    """The (last) layer Grad-CAM reads in ``model``: ``gradcam_layers(model).layers[-1]``."""
    return gradcam_layers(model).layers[-1]
