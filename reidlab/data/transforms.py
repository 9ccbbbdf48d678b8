"""Standard ReID train / test transforms on ``torchvision.transforms.v2`` (input: PIL image or uint8 tensor).

Train: resize (named interpolation) -> horizontal flip -> pad + random crop -> optional colour
jitter -> float -> normalise ("imagenet" or "half" = 0.5/0.5) -> random erasing (pixel noise
by default, spec §0.5; "zero" for MuDeep's variant). Test: resize -> float -> normalise.
The batched GPU version of the same train pipeline is :mod:`reidlab.data.gpu_augment`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from reidlab.data.erasing import RandomErasing, check_erasing_args, check_probability
from reidlab.preprocessing import normalization_stats


def interpolation_mode(name: str | v2.InterpolationMode) -> v2.InterpolationMode:
    """``"bicubic"``, ``"bilinear"``, ``"nearest"``, ``"lanczos"``, ... as a torchvision mode."""
    if isinstance(name, v2.InterpolationMode):
        return name
    try:
        return v2.InterpolationMode(name.lower())
    except ValueError:
        known = [m.value for m in v2.InterpolationMode]
        raise ValueError(f"unknown interpolation {name!r}; expected one of {known}") from None


def jitter_strengths(color_jitter: float | Sequence[float] | None) -> tuple[float, float, float, float] | None:
    """``None``, one strength s (-> brightness = contrast = saturation = s, hue 0) or (b, c, s, h)."""
    if color_jitter is None or color_jitter == 0:
        return None
    if isinstance(color_jitter, int | float):
        s = float(color_jitter)
        if not s >= 0:
            raise ValueError(f"color_jitter strengths must be >= 0, got {color_jitter!r}")
        return (s, s, s, 0.0)
    values = tuple(float(v) for v in color_jitter)
    if len(values) != 4:
        raise ValueError(f"color_jitter must be a number or (brightness, contrast, saturation, hue): {color_jitter}")
    if not all(v >= 0 for v in values):
        raise ValueError(f"color_jitter strengths must be >= 0, got {color_jitter!r}")
    if not 0 <= values[3] <= 0.5:
        raise ValueError(f"color_jitter hue must be in [0, 0.5], got {values[3]}")
    return values  # type: ignore[return-value]


def check_geometry(flip_p: float, padding: int) -> tuple[float, int]:
    """``(flip_p, padding)`` when ``flip_p`` is in [0, 1] and ``padding`` a non-negative integer."""
    if not isinstance(padding, numbers.Integral) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    return check_probability(flip_p, "flip_p"), int(padding)


def build_train_transform(
    image_size: tuple[int, int] = (256, 128),
    *,
    interpolation: str = "bicubic",
    flip_p: float = 0.5,
    padding: int = 10,
    color_jitter: float | Sequence[float] | None = None,
    normalization: str = "imagenet",
    erasing_p: float = 0.5,
    erasing_mode: str = "pixel",
    erasing_area: tuple[float, float] = (0.02, 1 / 3),
    erasing_ratio: tuple[float, float] = (0.3, 1 / 0.3),
    erasing_log_ratio: bool = True,
    erasing_attempts: int = 10,
) -> v2.Compose:
    """Train transform; ``image_size`` is (height, width). Output: normalised float tensor (3, H, W).

    Out-of-range settings raise ``ValueError`` naming the argument: probabilities ``flip_p`` and
    ``erasing_p`` in [0, 1], ``padding`` >= 0, ``erasing_area`` within (0, 1] and ``erasing_ratio``
    > 0 with min <= max, ``erasing_attempts`` >= 1, colour-jitter strengths >= 0.
    """
    flip_p, padding = check_geometry(flip_p, padding)
    check_erasing_args(erasing_p, erasing_area, erasing_ratio, erasing_attempts, prefix="erasing_")
    mean, std = normalization_stats(normalization)
    steps: list = [
        v2.ToImage(),
        v2.Resize(tuple(image_size), interpolation=interpolation_mode(interpolation), antialias=True),
    ]
    if flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(p=flip_p))
    if padding > 0:
        steps += [v2.Pad(padding, fill=0), v2.RandomCrop(tuple(image_size))]
    jitter = jitter_strengths(color_jitter)
    if jitter is not None:
        steps.append(v2.ColorJitter(brightness=jitter[0], contrast=jitter[1], saturation=jitter[2], hue=jitter[3]))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    if erasing_p > 0:
        steps.append(
            RandomErasing(
                p=erasing_p,
                area=erasing_area,
                ratio=erasing_ratio,
                log_ratio=erasing_log_ratio,
                attempts=erasing_attempts,
                fill=erasing_mode,
            )
        )
    return v2.Compose(steps)


def build_test_transform(
    image_size: tuple[int, int] = (256, 128),
    *,
    interpolation: str = "bicubic",
    normalization: str = "imagenet",
) -> v2.Compose:
    """Test transform: resize, float, normalise. (TransReID-style repos resize test images bilinearly.)"""
    mean, std = normalization_stats(normalization)
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(tuple(image_size), interpolation=interpolation_mode(interpolation), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(mean), std=list(std)),
        ]
    )
