"""Pretrained-weight resolution: local files only, clear errors offline, never a network retry.

Weights live in one folder, ``REIDLAB_WEIGHTS`` (default ``data/weights/``). A name resolves to
the first file found among its known file names (the files the original releases ship) or
``<name>.{safetensors,pth,pt,bin}``. ``pretrained`` takes three values:

* ``False`` — random initialisation, nothing is looked up;
* ``"auto"`` — local weights if present, otherwise random initialisation with one visible warning;
* ``True`` — local weights required; a missing file fails at once naming the file and folder.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import torch

from reidlab.paths import weights_dir

Pretrained = bool | Literal["auto"]

#: File names of the weights the seed papers use, per model name (first match wins).
KNOWN_WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "resnet50": (
        "resnet50.safetensors",
        "resnet50-19c8e357.pth",
        "resnet50-0676ba61.pth",
        "resnet50_a1_0-14fe96d1.pth",
    ),
    "resnet18": ("resnet18.safetensors", "resnet18-5c106cde.pth", "resnet18-f37072fd.pth"),
    "resnet50_ibn_a": ("resnet50_ibn_a.pth", "resnet50_ibn_a-d9d0bb7b.pth"),
    "vit_base_patch16_224": ("jx_vit_base_p16_224-80ecf9dd.pth", "vit_base_patch16_224.safetensors"),
    "vit_small_patch16_224": ("vit_small_p16_224-15ec54c9.pth", "vit_small_patch16_224.safetensors"),
    "deit_base_patch16_224": ("deit_base_distilled_patch16_224-df68dfff.pth",),
    "beit_base_patch16_224": ("beit_base_patch16_224_pt22k.pth", "beit_base_patch16_224_pt22k_ft22k.pth"),
    "data2vec_vision_base": ("data2vec_vision_base_pt.pth", "base_pt.pth"),
    "ViT-B-16": ("ViT-B-16.pt",),  # OpenAI CLIP
    "RN50": ("RN50.pt",),  # OpenAI CLIP
}

_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin")
_warned: set[str] = set()


def candidate_files(name: str) -> list[str]:
    """File names that would satisfy ``name``, in lookup order."""
    known = list(KNOWN_WEIGHT_FILES.get(name, ()))
    return known + [f"{name}{ext}" for ext in _EXTENSIONS if f"{name}{ext}" not in known]


def resolve_weights(name: str, pretrained: Pretrained = "auto", folder: str | Path | None = None) -> Path | None:
    """Path of the local weight file for ``name``, or ``None`` for random initialisation."""
    if pretrained not in (True, False, "auto"):
        raise ValueError(f"pretrained must be True, False or 'auto', got {pretrained!r}")
    if pretrained is False:
        return None
    root = Path(folder) if folder is not None else weights_dir()
    for file_name in candidate_files(name):
        path = root / file_name
        if path.is_file():
            return path
    expected = ", ".join(candidate_files(name)[:4])
    message = f"no pretrained weights for {name!r} in {root} (expected one of: {expected})"
    if pretrained is True:
        raise FileNotFoundError(
            f"{message}. Put the file there or set REIDLAB_WEIGHTS to the folder holding it; "
            "reidlab never downloads weights at run time."
        )
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"{message}; using random initialisation", stacklevel=2)
    return None


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weight file (safetensors or a torch checkpoint, ``weights_only=True``) into a flat state dict."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    if hasattr(state, "state_dict"):  # a whole scripted module (e.g. OpenAI CLIP .pt)
        state = state.state_dict()
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items()}


def load_into(model: torch.nn.Module, path: str | Path, *, skip_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Copy matching tensors from ``path`` into ``model``; returns the model keys left at initialisation.

    Keys starting with ``skip_prefixes`` (classifier heads) and tensors whose shape differs are skipped.
    Fails when no tensor at all matches, which means the file belongs to another architecture.
    """
    state = load_state_dict(path)
    own = model.state_dict()
    usable = {
        k: v
        for k, v in state.items()
        if k in own and not k.startswith(skip_prefixes) and tuple(v.shape) == tuple(own[k].shape)
    }
    if not usable:
        raise ValueError(f"{path}: no tensor matches {type(model).__name__}; is it the right weight file?")
    model.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


def load_timm_backbone(model_name: str, pretrained: Pretrained = "auto", **timm_kwargs) -> torch.nn.Module:
    """``timm.create_model`` with random init, then local weights when they resolve (never a download)."""
    import timm

    model = timm.create_model(model_name, pretrained=False, **timm_kwargs)
    path = resolve_weights(model_name, pretrained)
    if path is not None:
        load_into(model, path, skip_prefixes=("fc.", "head.", "classifier."))
    return model
