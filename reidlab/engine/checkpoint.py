"""Training checkpoints: everything needed to continue a run exactly, written atomically, read with weights_only.

A checkpoint is a dict of plain containers and tensors (loadable with ``weights_only=True``): ``format, stage,
epoch, stage_done, finished_stages, stage_outputs, model, model_spec, preprocessing, loss, optimizers,
schedulers, scaler, rng, sampler, history, best, meta, config``. A run folder keeps ``last.pt`` and the one
before it, ``previous.pt``, so one bad write never leaves nothing to resume from. A finished model is saved
by :func:`save_model` as ``model.pt`` (weights, registry spec, preprocessing, metadata).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.io import atomic_torch_save, safe_torch_load
from reidlab.models import create_model
from reidlab.preprocessing import Preprocessing, attach_preprocessing

FORMAT = "reidlab-train-v2"
LAST, PREVIOUS = "last.pt", "previous.pt"


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
    """Read a checkpoint with ``weights_only=True``; errors name the file (missing, truncated, not the lab's)."""
    try:
        state = safe_torch_load(path, map_location=map_location)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which one
        raise ValueError(f"{path}: cannot be read as a checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a reidlab checkpoint (expected a dict with a 'model' entry)")
    return state


def save_rotating(run_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write ``last.pt`` atomically after moving the current one to ``previous.pt``."""
    run_dir = Path(run_dir)
    last = run_dir / LAST
    if last.is_file():
        last.replace(run_dir / PREVIOUS)
    return save_checkpoint(last, state)


def load_latest_checkpoint(run_dir: str | Path) -> tuple[dict[str, Any], Path] | None:
    """The newest readable checkpoint of a run folder (``last.pt``, else ``previous.pt`` with a warning), or None.

    A folder whose checkpoints all fail to load is an error naming each file and why.
    """
    run_dir = Path(run_dir)
    problems = []
    for name in (LAST, PREVIOUS):
        path = run_dir / name
        if not path.is_file():
            continue
        try:
            state = load_checkpoint(path)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if problems:
            warnings.warn(f"{problems[0]}; resuming from the checkpoint before it, {path}", stacklevel=2)
        return state, path
    if problems:
        raise ValueError("no readable checkpoint in " + str(run_dir) + ":\n  " + "\n  ".join(problems))
    return None


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """``model.load_state_dict(state)``; a mismatch lists missing, unexpected and differently shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: {tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        for k in sorted(set(own) & set(state))
        if tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:8]}" if missing else "", f"unexpected {unexpected[:8]}" if unexpected else "",
                 ("shapes differ: " + "; ".join(shapes[:8])) if shapes else ""]  # fmt: skip
        raise ValueError(
            f"{source}: weights do not fit {type(model).__name__} (" + ", ".join(p for p in parts if p) + "); "
            "was it trained on another dataset (class count) or with another architecture?"
        )
    model.load_state_dict(state)


def save_model(path: str | Path, model: nn.Module, /, **meta: Any) -> Path:
    """Save the weights with the registry spec (``create_model`` name and kwargs), preprocessing and ``meta``."""
    model = unwrap_model(model)
    preprocessing = getattr(model, "preprocessing", None)
    return atomic_torch_save(
        {
            "format": FORMAT,
            "model": model.state_dict(),
            "model_spec": getattr(model, "model_spec", None),
            "preprocessing": preprocessing.as_dict() if isinstance(preprocessing, Preprocessing) else None,
            "meta": meta,
        },
        path,
    )


def load_trained_model(path: str | Path, map_location: Any = "cpu", **overrides: Any) -> nn.Module:
    """Rebuild a registered model from a checkpoint or :func:`save_model` file, with its weights and preprocessing.

    ``path`` may be a run folder (its ``model.pt``, else its latest checkpoint). The model is returned in eval mode.
    """
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
    load_model_state(model, state["model"], path)
    if state.get("preprocessing"):
        attach_preprocessing(model, Preprocessing.from_dict(state["preprocessing"]))
    return model.eval()
