"""Pretrained weights for the ReID ViT: timm-layout files (ImageNet ViT-B/16, ViT-S/16, DeiT, the lab's own) loaded
through :mod:`reidlab.weights` with the position embedding resized to the model's patch grid.

The file's grid is a square (224² files: 14×14) or, for the lab's files made at a 2:1 person crop, twice as
tall as wide (128×64 at patch 16: 8×4); the CLS position vector is kept and the grid resized bilinearly
(``align_corners=False``, as TransReID does). Keys containing ``head`` or ``dist`` are skipped (classifier and
DeiT distillation heads); a distilled file's second prefix position is dropped; a patch projection stored as a
matrix (old timm files) is reshaped to the convolution. Everything else must fit strictly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from reidlab.models.vit import VIT_SIZES, ReIDViT, ViTSize, vit_size
from reidlab.weights import Pretrained, WeightMismatchError, compare_state_dicts, load_state_dict, resolve_weights

SKIPPED_SUBSTRINGS = ("head", "dist")


def infer_grid(num_patches: int) -> tuple[int, int]:
    """The ``(rows, cols)`` of a stored position grid: a square, else rows = 2·cols (person crops)."""
    side = math.isqrt(num_patches)
    if side * side == num_patches:
        return side, side
    cols = math.isqrt(num_patches // 2)
    if 2 * cols * cols == num_patches:
        return 2 * cols, cols
    raise ValueError(f"cannot tell the grid of {num_patches} stored positions (neither square nor 2:1); "
                     "pass file_grid=(rows, cols)")  # fmt: skip


def resize_pos_embed(
    pos_embed: torch.Tensor,
    grid: Sequence[int],
    *,
    file_grid: Sequence[int] | None = None,
    num_prefix_tokens: int = 1,
) -> torch.Tensor:
    """``(1, prefix + r·c, D)`` -> ``(1, prefix + rows·cols, D)``: prefix vectors kept, the grid resized bilinearly."""
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError(f"pos_embed: expected shape (1, N, D), got {tuple(pos_embed.shape)}")
    prefix, stored = pos_embed[:, :num_prefix_tokens], pos_embed[0, num_prefix_tokens:]
    old = tuple(file_grid) if file_grid is not None else infer_grid(stored.shape[0])
    if old[0] * old[1] != stored.shape[0]:
        raise ValueError(f"file_grid {old} does not hold the {stored.shape[0]} stored positions")
    rows, cols = int(grid[0]), int(grid[1])
    if old == (rows, cols):
        return pos_embed.clone()
    image = stored.reshape(1, old[0], old[1], -1).permute(0, 3, 1, 2).float()
    image = F.interpolate(image, size=(rows, cols), mode="bilinear", align_corners=False)
    resized = image.permute(0, 2, 3, 1).reshape(1, rows * cols, -1).to(pos_embed.dtype)
    return torch.cat([prefix, resized], dim=1)


def adapt_vit_state(
    state: dict[str, torch.Tensor], vit: ReIDViT, *, file_grid: Sequence[int] | None = None
) -> dict[str, torch.Tensor]:
    """A timm-layout ViT state dict made to fit ``vit``: heads / distillation skipped, patch projection as a
    convolution, position embedding resized (see the module docstring)."""
    out = {k: v for k, v in state.items() if not any(s in k for s in SKIPPED_SUBSTRINGS)}
    proj = vit.patch_embed.proj.weight
    weight = out.get("patch_embed.proj.weight")
    if weight is not None and weight.ndim == 2 and weight.numel() == proj.numel():
        out["patch_embed.proj.weight"] = weight.reshape(proj.shape)
    pos = out.get("pos_embed")
    if pos is not None:
        if "dist_token" in state and pos.shape[1] >= 2:  # DeiT distilled: [CLS, DIST, grid...]
            pos = torch.cat([pos[:, :1], pos[:, 2:]], dim=1)
        if pos.shape[-1] == vit.pos_embed.shape[-1]:
            pos = resize_pos_embed(pos, vit.grid_size, file_grid=file_grid)
        out["pos_embed"] = pos
    return out


def load_vit_weights(
    vit: ReIDViT, path: str | Path, *, strict: bool = True, file_grid: Sequence[int] | None = None
) -> dict[str, Any]:
    """Load a timm-layout ViT file into ``vit`` (SIE stays at its initialisation); returns the run-record entry
    (file, tensors loaded / total, fraction) and stores it in ``vit.pretrained_weights``.

    ``strict`` refuses a file of another size, listing the keys and shapes that differ
    (:class:`~reidlab.weights.WeightMismatchError`).
    """
    path = Path(path)
    state = adapt_vit_state(load_state_dict(path), vit, file_grid=file_grid)
    report, usable = compare_state_dicts(vit.state_dict(), state, path, ("sie_embed",))
    name = type(vit).__name__
    if not usable:
        raise ValueError(f"{path}: no tensor matches the ViT; is it a timm-layout ViT file?\n{report.differences()}")
    if strict and not report.complete:
        raise WeightMismatchError(
            f"{path}: {report.tensors_loaded} of {report.tensors_total} tensors of {name} "
            f"({vit.size.embed_dim} wide, {vit.size.depth} blocks) match; refusing a file of another ViT size:\n"
            f"{report.differences()}"
        )
    vit.load_state_dict(usable, strict=False)
    vit.pretrained_weights = report.record()
    return vit.pretrained_weights


def build_vit_backbone(
    backbone: str | ViTSize | dict[str, Any],
    *,
    pretrained: Pretrained = "auto",
    image_size: Sequence[int] = (256, 128),
    stride: int = 16,
    drop_path_rate: float = 0.1,
    drop_rate: float = 0.0,
    attn_drop_rate: float = 0.0,
    sie_cameras: int = 0,
    sie_views: int = 0,
    sie_coef: float = 3.0,
) -> ReIDViT:
    """A :class:`ReIDViT` of a registered size, initialised from the local weights of that name when they resolve
    (``pretrained="auto"``: else random init with a warning; ``True``: a missing file names the file expected).

    A custom size (a ``ViTSize`` or its dict) has no weight name and starts from random initialisation.
    """
    size = vit_size(backbone)
    if not isinstance(backbone, str) and pretrained in (True, "lab"):
        raise ValueError(f"pretrained={pretrained!r} needs a named backbone {sorted(VIT_SIZES)}, not a custom size")
    vit = ReIDViT(size=size, image_size=image_size, stride=stride, drop_path_rate=drop_path_rate, drop_rate=drop_rate,
                  attn_drop_rate=attn_drop_rate, sie_cameras=sie_cameras, sie_views=sie_views,
                  sie_coef=sie_coef)  # fmt: skip
    if isinstance(backbone, str):
        path = resolve_weights(backbone, pretrained)
        if path is not None:
            load_vit_weights(vit, path)
    return vit
