"""Export a pretrained backbone to ``data/weights/lab/<name>.safetensors`` with its model card ``<name>.json``.

The card says what the weights are and how they were made: the world (name, size, seed, identities,
images), the preset, epochs, wall time, the loss curves and final losses, the input preprocessing, the file's
SHA-256 and the checks run on it (added by :mod:`reidlab.pretrain.checks`). Both files are written
atomically; an existing different file is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from reidlab.engine.config import changed_settings
from reidlab.engine.runs import git_commit
from reidlab.engine.stages import plain
from reidlab.io import atomic_write, atomic_write_text
from reidlab.weights import lab_weight_file


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path) -> str:
    """SHA-256 of a safetensors file's content: its metadata (sorted) and every tensor (sorted by name: dtype,
    shape, bytes). The file's own bytes are not reproducible — safetensors writes the metadata keys in an
    arbitrary order — so "the same weights" means the same fingerprint."""
    from safetensors import safe_open

    digest = hashlib.sha256()
    with safe_open(str(path), framework="pt") as handle:
        digest.update(json.dumps(handle.metadata() or {}, sort_keys=True).encode())
        for name in sorted(handle.keys()):
            tensor = handle.get_tensor(name).contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def card_path(weights: Path) -> Path:
    return weights.with_suffix(".json")


def read_card(name: str) -> dict[str, Any]:
    """The model card of the lab weights ``name`` (a clear error when they were never made)."""
    path = card_path(lab_weight_file(name))
    if not path.is_file():
        raise FileNotFoundError(f"no lab weights card {path}; make it with `python -m reidlab.pretrain --model {name}`")
    return json.loads(path.read_text(encoding="utf-8"))


def write_card(weights: Path, card: dict[str, Any]) -> None:
    atomic_write_text(card_path(weights), json.dumps(card, indent=1, default=str) + "\n")


def _tensors(module: nn.Module, dtype: str) -> dict[str, torch.Tensor]:
    cast = getattr(torch, dtype)
    state = module.state_dict()
    return {k: (v.to(cast) if v.is_floating_point() else v).contiguous().clone() for k, v in state.items()}


def export_weights(spec, preset, backbone: nn.Module, dataset, result, *, wall_seconds: float,
                   overwrite: bool = False) -> tuple[Path, dict[str, Any]]:
    """Write the backbone's weights and card; returns ``(weights path, card)``."""
    from safetensors.torch import save_file

    from reidlab.models.lab_clip import default_vocabulary

    target = lab_weight_file(spec.name)
    metadata = {"name": spec.name, "format": "reidlab-lab-weights-v1"}
    if spec.kind == "contrastive":
        metadata["vocabulary"] = json.dumps(default_vocabulary())
    tensors = _tensors(backbone, preset.export_dtype)
    new = target.with_name(f".{target.name}.new")
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(new), metadata=metadata)
    try:
        if target.is_file() and fingerprint(target) != fingerprint(new) and not overwrite:
            raise FileExistsError(
                f"{target} already holds other lab weights for {spec.name!r}; pass overwrite=True (--overwrite) "
                "to replace them"
            )
        atomic_write(target, lambda tmp: tmp.write_bytes(new.read_bytes()))
    finally:
        new.unlink(missing_ok=True)
    history = result.history
    rows = history.drop(columns=[c for c in ("stage",) if c in history]).to_dict(orient="records")
    losses = {k: round(float(v), 4) for k, v in rows[-1].items() if k in ("loss", "id", "triplet", "attributes",
                                                                         "i2t", "t2i", "scale")}  # fmt: skip
    card = {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "file": target.name,
        "sha256": sha256(target),
        "fingerprint": fingerprint(target),
        "dtype": preset.export_dtype,
        "parameters": int(sum(p.numel() for p in backbone.parameters())),
        "preprocessing": backbone.preprocessing.as_dict() if hasattr(backbone, "preprocessing") else None,
        "world": {"name": dataset.name, "size": dataset.options.get("size"), "seed": dataset.options.get("seed"),
                  "identities": dataset.num_train_pids, "images": len(dataset.train)},
        "preset": plain(preset.as_dict()),
        "epochs": len(history),
        "train_seconds": round(float(history["seconds"].sum()), 1),
        "wall_seconds": round(wall_seconds, 1),
        "final_losses": losses,
        "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()} for row in rows],
        "run_dir": str(result.run_dir) if result.run_dir else None,
        "command": _command(spec, preset),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "checks": {},
    }
    write_card(target, card)
    return target, card


def _command(spec: Any, preset: Any) -> str:
    """The command that makes these weights: the profile plus a ``-p`` for each field set away from it."""
    base = spec.presets[preset.profile]().as_dict() if preset.profile in spec.presets else {}
    changed = changed_settings(plain(base), plain(preset.as_dict())) if base else {}
    options = "".join(f" -p {shlex.quote(f'{k}={_cli_value(new)}')}" for k, (_, new) in changed.items())
    return f"python -m reidlab.pretrain --model {spec.name} --profile {preset.profile}{options}"


def _cli_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return str(value) if value is None or isinstance(value, bool) else json.dumps(value)
