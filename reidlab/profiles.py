"""Named run presets: ``smoke`` (2 CPU cores, minutes, synthetic world) and ``full`` (papers' settings, GPU).

A :class:`Profile` holds what is common to every method (data, image size, batch shape,
epochs, workers). Methods keep their own preset dataclasses (optimiser, schedule, loss
weights) and register a builder per profile with :func:`register_preset`; notebooks call
:func:`get_profile` / :func:`get_preset` and may override any single value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROFILE_NAMES = ("smoke", "full")


@dataclass
class Profile:
    """Scale of a run. Every field may be overridden by keyword in :func:`get_profile`."""

    name: str
    dataset: str = "synth_market"  # a name from reidlab.data.list_datasets()
    data_root: str | None = None  # None: the lab's data folder (synthetic worlds generated on demand)
    synth_size: str = "mini"  # size of generated synthetic worlds: "mini" | "full"
    image_size: tuple[int, int] = (256, 128)  # (height, width)
    batch_p: int = 16  # identities per batch
    batch_k: int = 4  # images per identity
    epochs: int = 120
    max_iters_per_epoch: int | None = None  # cap iterations per epoch (smoke runs)
    eval_batch_size: int = 256
    num_workers: int = 8
    flip_tta: bool = False
    seed: int = 1234
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.batch_p * self.batch_k


_PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        dataset="synth_market",
        synth_size="mini",
        image_size=(64, 32),
        batch_p=8,
        batch_k=4,
        epochs=6,
        max_iters_per_epoch=None,
        eval_batch_size=128,
        num_workers=0,
    ),
    "full": Profile(
        name="full",
        dataset="market1501",
        synth_size="full",
        image_size=(256, 128),
        batch_p=16,
        batch_k=4,
        epochs=120,
        eval_batch_size=256,
        num_workers=8,
    ),
}


def get_profile(name: str = "smoke", **overrides: Any) -> Profile:
    """Return a fresh copy of the named profile with ``overrides`` applied.

    Unknown names or fields raise a ``ValueError`` listing the valid ones.
    """
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(_PROFILES)}")
    base = _PROFILES[name]
    valid = {f.name for f in dataclasses.fields(Profile)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown profile field(s) {unknown}; valid fields: {sorted(valid)}")
    if "image_size" in overrides and overrides["image_size"] is not None:
        overrides["image_size"] = tuple(overrides["image_size"])
    return dataclasses.replace(base, **overrides)


_PRESETS: dict[tuple[str, str], Callable[[Profile], Any]] = {}


def register_preset(method: str, profile: str) -> Callable[[Callable[[Profile], Any]], Callable[[Profile], Any]]:
    """Decorator: register ``fn(profile) -> preset dataclass`` for ``method`` under ``profile``."""

    def wrap(fn: Callable[[Profile], Any]) -> Callable[[Profile], Any]:
        _PRESETS[(method, profile)] = fn
        return fn

    return wrap


def get_preset(method: str, profile: str | Profile = "smoke", **overrides: Any) -> Any:
    """The method's preset dataclass for a profile, with ``overrides`` applied to its fields."""
    prof = profile if isinstance(profile, Profile) else get_profile(profile)
    key = (method, prof.name)
    if key not in _PRESETS:
        import reidlab.models  # noqa: F401  (method modules register their presets on import)
    if key not in _PRESETS:
        known = sorted({m for m, _ in _PRESETS})
        raise ValueError(f"no preset for method {method!r} and profile {prof.name!r}; methods with presets: {known}")
    preset = _PRESETS[key](prof)
    valid = {f.name for f in dataclasses.fields(preset)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown {method} preset field(s) {unknown}; valid fields: {sorted(valid)}")
    return dataclasses.replace(preset, **overrides)
