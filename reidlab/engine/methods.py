"""Method registry for the CLI and notebooks: a method turns its preset and a dataset into (model, loss).

Methods with a training procedure of their own (two stages, two optimisers) also register ``train``:
``train(preset, dataset, model, loss, **fit_kwargs) -> TrainResult``; otherwise :func:`reidlab.engine.fit` runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch.nn as nn


@dataclass(frozen=True)
class Method:
    name: str
    build: Callable[[Any, Any], tuple[nn.Module, Any]]  # (preset, dataset) -> (model, loss)
    train: Callable[..., Any] | None = None
    description: str = ""


_METHODS: dict[str, Method] = {}


def register_method(
    name: str, *, build: Callable[[Any, Any], tuple[nn.Module, Any]], train: Callable[..., Any] | None = None,
    description: str = "",
) -> Method:  # fmt: skip
    """Register (or replace) method ``name``."""
    method = Method(name, build, train, description)
    _METHODS[name] = method
    return method


def get_method(name: str) -> Method:
    import reidlab.models  # noqa: F401  (model modules register their methods)

    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered methods: {list_methods()}")
    return _METHODS[name]


def list_methods() -> list[str]:
    import reidlab.models  # noqa: F401

    return sorted(_METHODS)


def load_preset_dataset(preset: Any):
    """``load_dataset(preset.dataset, root=preset.data_root)``, with ``size=preset.synth_size`` for synthetic worlds."""
    from reidlab.data import load_dataset

    name = preset.dataset
    options: dict[str, Any] = {}
    if name.startswith("synth_"):
        options["size"] = getattr(preset, "synth_size", "mini")
    return load_dataset(name, root=getattr(preset, "data_root", None), **options)
