"""Load a checkpoint released by a method's official repository into the lab's model.

``load_official_checkpoint(path, method="bot")`` reads the file with ``weights_only=True`` (plain state
dict, or one wrapped in ``{"state_dict": ...}`` / ``{"model": ...}``, with or without ``module.``
prefixes), infers the shapes it can from the tensors, rebuilds the lab's model, maps the key names and
returns it in eval mode with the official test preprocessing attached. A key the mapping does not
cover, or a model key the file does not fill, is an error listing them: nothing loads half-way.

Each method registers its converter beside its model (``@register_official("bot")`` in
:mod:`reidlab.models.bot_official`); options the tensors cannot tell (input size, the test feature
before or after the BN, an SIE coefficient) are keyword options whose defaults are the official
repository's released test configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

OfficialLoader = Callable[..., nn.Module]
_LOADERS: dict[str, OfficialLoader] = {}
_WRAPPERS = ("state_dict", "model", "net", "module")


def register_official(method: str) -> Callable[[OfficialLoader], OfficialLoader]:
    """Decorator: ``fn(state_dict, *, path, **options) -> nn.Module`` converts ``method``'s official checkpoints."""

    def wrap(fn: OfficialLoader) -> OfficialLoader:
        if method in _LOADERS and _LOADERS[method] is not fn:
            raise ValueError(f"an official-checkpoint loader for {method!r} is already registered")
        _LOADERS[method] = fn
        return fn

    return wrap


def official_methods() -> list[str]:
    """Methods whose official checkpoints the lab can read."""
    return sorted(_LOADERS)


def read_official_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an official checkpoint file, unwrapped and without ``module.`` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"official checkpoint not found: {path}")
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name and the way out
        raise ValueError(
            f"{path}: cannot be read with weights_only=True ({type(exc).__name__}: {str(exc)[:300]}). "
            "Files that pickle a whole model object (reid-strong-baseline, IV-ReID) must be turned into a "
            "state dict once, in a trusted environment with the official code importable: "
            "torch.save(torch.load(path, weights_only=False).state_dict(), 'converted.pth')"
        ) from None
    while isinstance(state, Mapping):
        wrapper = next((k for k in _WRAPPERS if isinstance(state.get(k), Mapping)), None)
        if wrapper is None:
            break
        state = state[wrapper]
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{path}: expected a state dict of tensors, found {type(state).__name__}")
    tensors = {str(k).removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{path}: holds no tensors")
    return tensors


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_mapped(model: nn.Module, mapped: dict[str, torch.Tensor], *, path: str | Path, unmapped: list[str]) -> None:
    """Load ``mapped`` (lab key -> tensor) into ``model`` strictly; every problem listed with the file name."""
    own = model.state_dict()
    missing = sorted(set(own) - set(mapped))
    unexpected = sorted(set(mapped) - set(own))
    shapes = sorted(
        f"{k} {tuple(mapped[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(mapped)
        if tuple(own[k].shape) != tuple(mapped[k].shape)
    )
    problems = []
    if unmapped:
        problems.append(f"keys of the file with no place in the lab's model: {_listing(sorted(unmapped))}")
    if unexpected:
        problems.append(f"mapped keys the lab's model does not have: {_listing(unexpected)}")
    if missing:
        problems.append(f"model keys the file does not fill: {_listing(missing)}")
    if shapes:
        problems.append(f"shape mismatches (file vs model): {_listing(shapes)}")
    if problems:
        raise ValueError(f"{path}: does not match {type(model).__name__}:\n  " + "\n  ".join(problems))
    model.load_state_dict(mapped, strict=True)


def load_official_checkpoint(path: str | Path, *, method: str, **options: Any) -> nn.Module:
    """Rebuild ``method``'s model from its official repository's checkpoint file; eval mode, preprocessing attached.

    ``model(images, camids=...)`` on a batch normalised as ``model.preprocessing`` says gives the official
    code's test embedding. ``options`` are the method's (see its converter's docstring).
    """
    if method not in _LOADERS:
        raise ValueError(f"no official-checkpoint loader for method {method!r}; available: {official_methods()}")
    state = read_official_state_dict(path)
    model = _LOADERS[method](state, path=Path(path), **options)
    model.official_checkpoint = {"method": method, "file": str(path), "options": dict(options)}
    return model.eval()
