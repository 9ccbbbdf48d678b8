"""Where a CLIP comes from: OpenAI's released files read by open_clip, or the lab's small CLIP.

``load_clip(backbone, pretrained)`` returns ``(open_clip CLIP, tokenizer, source)``. ``backbone`` is
``"ViT-B-16"`` or ``"RN50"`` (OpenAI's ``ViT-B-16.pt`` / ``RN50.pt`` in ``data/weights/``, resolved by
:func:`reidlab.weights.resolve_weights`; open_clip reads OpenAI's TorchScript archives and state dicts without
unpickling model objects, and builds the QuickGELU architecture OpenAI trained) or ``"clip_tiny_synth"`` (the
lab's small CLIP, :mod:`reidlab.models.lab_clip`). ``pretrained=True`` with the file missing fails at once naming
the file; ``"auto"`` falls back to random initialisation with a warning. Nothing is downloaded.
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from reidlab.models.lab_clip import LAB_CLIP_NAME, create_lab_clip
from reidlab.weights import Pretrained, resolve_weights

#: OpenAI CLIP names -> the open_clip configuration of the same architecture (OpenAI trained with QuickGELU).
OPENAI_CONFIGS = {"ViT-B-16": "ViT-B-16-quickgelu", "RN50": "RN50-quickgelu"}
CLIP_BACKBONES = (*OPENAI_CONFIGS, LAB_CLIP_NAME)


def load_clip(backbone: str, pretrained: Pretrained = "auto") -> tuple[nn.Module, Any, dict[str, Any] | None]:
    """``(clip, tokenizer, weights record)``; the record (file, source) is None for random initialisation."""
    if backbone == LAB_CLIP_NAME:
        clip, tokenizer = create_lab_clip(pretrained)
        return clip, tokenizer, clip.pretrained_weights
    if backbone not in OPENAI_CONFIGS:
        raise ValueError(f"unknown CLIP backbone {backbone!r}; expected one of {CLIP_BACKBONES}")
    import open_clip

    config = OPENAI_CONFIGS[backbone]
    tokenizer = open_clip.get_tokenizer(config)
    path = resolve_weights(backbone, pretrained)
    if path is None:
        return open_clip.create_model(config, pretrained=None), tokenizer, None
    try:
        clip = open_clip.load_openai_model(str(path), precision="fp32", device="cpu")
    except Exception as error:  # noqa: BLE001 - re-raised naming the file
        raise ValueError(f"{path}: cannot be read as an OpenAI CLIP {backbone} file ({type(error).__name__}: "
                         f"{str(error)[:200]})") from None  # fmt: skip
    record = {"file": str(path), "source": "release", "tensors_loaded": len(clip.state_dict()),
              "tensors_total": len(clip.state_dict()), "fraction_loaded": 1.0}  # fmt: skip
    return clip, tokenizer, record


def source_grid(clip: nn.Module) -> tuple[int, int]:
    """The token grid a CLIP's image tower was trained on (ViT: its ``grid_size``; ResNet: the attention pool's)."""
    visual = clip.visual
    if hasattr(visual, "grid_size"):
        return tuple(int(v) for v in visual.grid_size)
    side = round((visual.attnpool.positional_embedding.shape[0] - 1) ** 0.5)
    return side, side
