"""What a model expects of its input, carried by the model itself (as timm and open_clip attach a data config).

A built model has ``model.preprocessing``: input size, mean / std and resize interpolation. It is set by
the method that built the model (from its preset), by an official-checkpoint loader (the official test
transform), and saved with the weights, so evaluating a model needs nothing else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch.nn as nn

NORMALIZATIONS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
}


def normalization_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of a named normalisation."""
    try:
        return NORMALIZATIONS[name]
    except KeyError:
        raise ValueError(f"unknown normalization {name!r}; expected one of {sorted(NORMALIZATIONS)}") from None


@dataclass(frozen=True)
class Preprocessing:
    """Test-time input of a model: resize to ``image_size`` (height, width) with ``interpolation``, then
    normalise with the named ``normalization`` (mean / std)."""

    image_size: tuple[int, int] = (256, 128)
    normalization: str = "imagenet"
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.image_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"Preprocessing.image_size must be (height, width) > 0, got {self.image_size!r}")
        object.__setattr__(self, "image_size", size)
        normalization_stats(self.normalization)

    @property
    def mean(self) -> tuple[float, ...]:
        return normalization_stats(self.normalization)[0]

    @property
    def std(self) -> tuple[float, ...]:
        return normalization_stats(self.normalization)[1]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "image_size": list(self.image_size)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        return cls(**{k: values[k] for k in ("image_size", "normalization", "interpolation") if k in values})

    @classmethod
    def of(cls, settings: Any) -> Preprocessing:
        """The preprocessing named by a preset / config with ``image_size``, ``normalization``, ``interpolation``."""
        return cls(settings.image_size, settings.normalization, settings.interpolation)


def attach_preprocessing(model: nn.Module, preprocessing: Preprocessing) -> nn.Module:
    """Set ``model.preprocessing`` and return the model."""
    model.preprocessing = preprocessing
    return model


def get_preprocessing(model: nn.Module) -> Preprocessing:
    """The model's preprocessing; a clear error when the model was built without one."""
    found = getattr(model, "preprocessing", None)
    if not isinstance(found, Preprocessing):
        raise ValueError(
            f"{type(model).__name__} carries no preprocessing: build it through a method "
            "(reidlab.methods.build_model), load it with load_trained_model / load_official_checkpoint, "
            "or attach one with reidlab.preprocessing.attach_preprocessing(model, Preprocessing(...))"
        )
    return found
