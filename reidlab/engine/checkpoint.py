"""Training checkpoints: everything needed to continue a run exactly, written atomically, read with weights_only.

A checkpoint is a dict of plain containers and tensors (loadable with ``weights_only=True``):
``format, epoch, model, loss, optimizers, schedulers, scaler, rng, sampler, history, best, model_spec``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.io import atomic_torch_save, safe_torch_load

FORMAT = "reidlab-train-v1"


def capture_rng() -> dict[str, Any]:
    """Python, NumPy, torch (CPU) and CUDA generator states, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    np.random.set_state(
        (npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under ``torch.compile`` and DDP wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint dict atomically (temporary file in the same folder, then rename)."""
    return atomic_torch_save({"format": FORMAT, **state}, path)


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; the error names the file when it is not a lab checkpoint."""
    state = safe_torch_load(path, map_location=map_location)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a reidlab checkpoint (expected a dict with a 'model' entry)")
    return state


def save_model(path: str | Path, model: nn.Module, **meta: Any) -> Path:
    """Save just the weights plus the registry spec (``create_model`` name and kwargs) and ``meta``."""
    model = unwrap_model(model)
    return atomic_torch_save(
        {"format": FORMAT, "model": model.state_dict(), "model_spec": getattr(model, "model_spec", None), "meta": meta},
        path,
    )


def load_trained_model(path: str | Path, map_location: Any = "cpu", **overrides: Any) -> nn.Module:
    """Rebuild a registered model from a checkpoint or :func:`save_model` file and load its weights.

    ``path`` may be a run folder (its ``model.pt``, else ``last.pt``). The model is returned in eval mode.
    """
    from reidlab.models import create_model

    path = Path(path)
    if path.is_dir():
        candidates = [path / "model.pt", path / "last.pt"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise FileNotFoundError(f"no model.pt or last.pt in run folder {path}")
        path = found
    state = load_checkpoint(path, map_location=map_location)
    spec = state.get("model_spec")
    if not spec:
        raise ValueError(f"{path}: has no model_spec; build the model yourself and load state['model'] into it")
    kwargs = {**spec["kwargs"], "pretrained": False, **overrides}
    model = create_model(spec["name"], **kwargs)
    model.load_state_dict(state["model"])
    return model.eval()
