"""The method registry: what a lab method is (its preset type and presets, how it builds its model and loss,
its stages, its test distance) and where to find it by name. A leaf of the methods layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn

from reidlab.engine import Stage, TestDistance
from reidlab.engine.trainer import ForwardFn
from reidlab.profiles import Profile, get_profile
from reidlab.settings import replace_fields

BuildFn = Callable[[Any, Any], tuple[nn.Module, Any]]  # (preset, dataset) -> (model, loss)
StagesFn = Callable[[Any, Any, nn.Module, Any], list[Stage]]  # (preset, dataset, model, loss) -> stages


@dataclass(frozen=True)
class Method:
    """A lab method. ``presets`` maps a profile name to ``fn(profile) -> preset`` (an instance of
    ``preset_type``). ``stages`` defaults to the standard one-stage recipe; ``forward`` to
    ``model(images, camids=...)``; ``batch_fields`` names extra :class:`~reidlab.data.Sample` attributes the
    method's batches carry; ``distance`` is its test distance; ``official`` the name of its
    official-checkpoint loader (``reidlab.models.load_official_checkpoint``)."""

    name: str
    description: str
    preset_type: type
    presets: Mapping[str, Callable[[Profile], Any]]
    build: BuildFn
    stages: StagesFn | None = None
    forward: ForwardFn | None = None
    batch_fields: tuple[str, ...] = ()
    distance: TestDistance = field(default_factory=TestDistance)
    official: str | None = None


_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Register ``method`` under its name (a second method of the same name is an error)."""
    if method.name in _METHODS and _METHODS[method.name] is not method:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def list_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str | Method) -> Method:
    """The registered method ``name``; an unknown name lists the registered ones."""
    if isinstance(name, Method):
        return name
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered methods: {list_methods()}")
    return _METHODS[name]


def get_preset(method: str | Method, profile: str | Profile = "smoke", **overrides: Any) -> Any:
    """The method's preset under ``profile`` with ``overrides`` (each converted to its field's type and checked;
    ``flip_tta="false"`` is ``False``, ``epochs=2.5`` an error naming the field)."""
    m = get_method(method)
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    if prof.name not in m.presets:
        raise ValueError(f"method {m.name!r} has no preset for profile {prof.name!r}; it has {sorted(m.presets)}")
    return replace_fields(m.presets[prof.name](prof), **overrides)


def check_preset(method: Method, preset: Any) -> None:
    """A preset of another method (or no preset at all) is an error naming the type expected."""
    if not isinstance(preset, method.preset_type):
        raise TypeError(
            f"method {method.name!r} expects a {method.preset_type.__name__}, got {type(preset).__name__}; "
            f"use reidlab.methods.get_preset({method.name!r}, profile)"
        )
