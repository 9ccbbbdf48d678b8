"""Profiles, the scale of a run: ``smoke`` (2 CPU cores, minutes, synthetic world) and ``full`` (papers' settings, GPU).

A :class:`Profile` holds what is common to every method (data, image size, batch shape, epochs,
workers). A method's *preset* (its settings under a profile) is built from a profile by the method
itself (``reidlab.methods.get_preset(method, profile, **overrides)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reidlab.settings import coerce_fields, replace_fields

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

    def __post_init__(self) -> None:
        coerce_fields(self)

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
    """Return a fresh copy of the named profile with ``overrides`` applied (converted to the fields' types).

    Unknown names or fields raise a ``ValueError`` listing the valid ones.
    """
    if name not in _PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(_PROFILES)}")
    return replace_fields(_PROFILES[name], **overrides)
