"""BEiT and data2vec vision checkpoints (methods spec §1.7) in the lab's BEiT-style ReID ViT.

DMF's README points to data2vec vision weights (``facebookresearch/data2vec_vision/beit``, a BEiT fork whose
checkpoints keep BEiT's layout); the DMF repository itself cannot load them (spec §1.4.4). The official layout,
one ``{"model": state}`` file:

``cls_token``, ``pos_embed`` (only with absolute positions), ``patch_embed.proj.*``, optionally a shared
``rel_pos_bias.relative_position_bias_table``; per block ``blocks.i.norm1.*``, ``attn.qkv.weight`` (no bias),
``attn.q_bias``, ``attn.v_bias``, optionally ``attn.relative_position_bias_table``, ``attn.proj.*``,
``norm2.*``, ``mlp.fc1.*``, ``mlp.fc2.*``, ``gamma_1``, ``gamma_2``; ``norm.*`` (pre-trained) or ``fc_norm.*``
(fine-tuned with mean pooling); and what the ReID ViT does not use: ``relative_position_index`` buffers,
``mask_token``, ``lm_head.*``, ``head.*``.

:func:`beit_to_reid_vit` maps it onto :class:`~reidlab.models.reid_beit.ReIDBeitViT`: ``qkv.bias = [q_bias; 0;
v_bias]`` (BEiT has no k bias; a zero one is the same function), ``gamma_1/2 -> ls1/ls2.gamma``, the shared table
copied into every block (added to a block's own table when a file has both, as BEiT's attention adds them), the
tables resized to the ReID token grid with timm's ``resize_rel_pos_bias_table`` and an absolute position
embedding resized like a ViT's (TransReID's bilinear rule) or, when the file has none, zero. ``fc_norm`` stands in
for ``norm`` when only it exists. data2vec files also pickle the training ``args`` (an ``argparse.Namespace``);
:func:`read_beit_checkpoint` reads them with ``weights_only=True`` and that one class allowed, nothing else.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from timm.layers import resize_rel_pos_bias_table

from reidlab.models.reid_beit import ReIDBeitViT
from reidlab.models.vit import ViTSize
from reidlab.models.vit_weights import resize_pos_embed
from reidlab.weights import (
    Pretrained,
    WeightFileError,
    WeightMismatchError,
    compare_state_dicts,
    load_state_dict,
    resolve_weights,
)

#: BEiT-style backbones by weight name (:data:`reidlab.weights.KNOWN_WEIGHT_FILES` lists their file names).
BEIT_SIZES: dict[str, ViTSize] = {
    "beit_base_patch16_224": ViTSize(768, 12, 12),  # BEiT-B/16 (microsoft/unilm)
    "data2vec_vision_base": ViTSize(768, 12, 12),  # data2vec ViT-B (data2vec_vision/beit, a BEiT fork)
}
_UNUSED = ("relative_position_index", "mask_token", "lm_head.", "head.")
SHARED_TABLE = "rel_pos_bias.relative_position_bias_table"


def read_beit_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The flat state dict of a BEiT / data2vec file (``weights_only=True``; ``argparse.Namespace`` allowed)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return load_state_dict(path)
    except WeightFileError as error:
        raise WeightFileError(
            f"{error}\nIf the file pickles other objects than tensors and the training arguments, keep only its "
            f"weights once (trusting the file): python -c \"import torch; torch.save(torch.load('{path}', "
            f"weights_only=False)['model'], '{Path(path).with_suffix('')}_model.pth')\""
        ) from None


def _old_window(table: torch.Tensor) -> tuple[int, int]:
    side = (math.isqrt(table.shape[0] - 3) + 1) // 2
    if (2 * side - 1) ** 2 + 3 != table.shape[0]:
        raise ValueError(f"a relative position table of {table.shape[0]} rows is not a square window's")
    return side, side


def _table(table: torch.Tensor, target: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    if table.shape == target.shape:
        return table
    return resize_rel_pos_bias_table(table, new_window_size=grid, new_bias_shape=tuple(target.shape),
                                     old_window_size=_old_window(table))  # fmt: skip


def beit_to_reid_vit(state: dict[str, torch.Tensor], vit: ReIDBeitViT) -> dict[str, torch.Tensor]:
    """An official-layout BEiT / data2vec state dict as ``vit``'s keys (see the module docstring)."""
    own = vit.state_dict()
    state = {k: v for k, v in state.items() if not any(k.startswith(u) or u in k for u in _UNUSED)}
    out: dict[str, torch.Tensor] = {}
    shared = state.pop(SHARED_TABLE, None)
    if "norm.weight" not in state and "fc_norm.weight" in state:
        state["norm.weight"], state["norm.bias"] = state.pop("fc_norm.weight"), state.pop("fc_norm.bias")
    state = {k: v for k, v in state.items() if not k.startswith("fc_norm.")}
    for key, value in state.items():
        parts = key.split(".")
        if key == "pos_embed":
            out[key] = resize_pos_embed(value, vit.grid_size) if value.shape != own[key].shape else value
        elif len(parts) == 3 and parts[0] == "blocks" and parts[2] in ("gamma_1", "gamma_2"):
            out[f"blocks.{parts[1]}.ls{parts[2][-1]}.gamma"] = value
        elif key.endswith("attn.q_bias"):
            prefix = key[: -len("q_bias")]
            v_bias = state.get(prefix + "v_bias")
            if v_bias is None:
                raise ValueError(f"{key} without {prefix}v_bias: not a BEiT-layout checkpoint")
            out[prefix + "qkv.bias"] = torch.cat([value, torch.zeros_like(value), v_bias])
        elif key.endswith("attn.v_bias"):
            continue
        elif key.endswith("attn.relative_position_bias_table"):
            index = parts[1]
            name = f"relative_position.{index}.relative_position_bias_table"
            out[name] = _table(value, own[name], vit.grid_size) if name in own else value
        else:
            out[key] = value
    if shared is not None:
        for index in range(len(vit.blocks)):
            name = f"relative_position.{index}.relative_position_bias_table"
            resized = _table(shared, own[name], vit.grid_size)
            out[name] = out[name] + resized if name in out else resized
    if "pos_embed" not in out:  # relative positions only: the absolute embedding adds nothing
        out["pos_embed"] = torch.zeros_like(own["pos_embed"])
    for key, value in list(out.items()):
        if key.endswith("qkv.weight") and key.replace("weight", "bias") not in out:
            out[key.replace("weight", "bias")] = torch.zeros(value.shape[0], dtype=value.dtype)
    return out


def load_beit_weights(vit: ReIDBeitViT, path: str | Path, *, strict: bool = True) -> dict[str, Any]:
    """Load a BEiT / data2vec file into ``vit`` (SIE stays at its initialisation); returns the run-record entry and
    stores it in ``vit.pretrained_weights``. ``strict`` refuses a file of another size, listing what differs."""
    path = Path(path)
    state = beit_to_reid_vit(read_beit_checkpoint(path), vit)
    report, usable = compare_state_dicts(vit.state_dict(), state, path, ("sie_embed",))
    if not usable:
        raise ValueError(f"{path}: no tensor matches the BEiT-style ViT; is it a BEiT / data2vec file?\n"
                         f"{report.differences()}")  # fmt: skip
    if strict and not report.complete:
        raise WeightMismatchError(f"{path}: {report.tensors_loaded} of {report.tensors_total} tensors match the "
                                  f"BEiT-style ViT ({vit.size.embed_dim} wide, {vit.size.depth} blocks):\n"
                                  f"{report.differences()}")  # fmt: skip
    vit.load_state_dict(usable, strict=False)
    vit.pretrained_weights = report.record()
    return vit.pretrained_weights


def build_beit_backbone(
    backbone: str,
    *,
    pretrained: Pretrained = "auto",
    image_size: Sequence[int] = (256, 128),
    stride: int = 16,
    drop_path_rate: float = 0.1,
    init_values: float | None = 0.1,
) -> ReIDBeitViT:
    """A :class:`ReIDBeitViT` of a :data:`BEIT_SIZES` name, from its local file when it resolves (``"auto"``: else
    random init with a warning; ``True``: a missing file is an error naming the files expected)."""
    if backbone not in BEIT_SIZES:
        raise ValueError(f"unknown BEiT-style backbone {backbone!r}; known: {sorted(BEIT_SIZES)}")
    path = resolve_weights(backbone, pretrained)
    vit = ReIDBeitViT(size=BEIT_SIZES[backbone], image_size=image_size, stride=stride, drop_path_rate=drop_path_rate,
                      init_values=init_values)  # fmt: skip
    if path is not None:
        load_beit_weights(vit, path)
    return vit
