"""Batched random erasing (one rectangle per image), shared by the per-image and the GPU transforms.

Default parameters follow timm's ``RandomErasing(mode="pixel", max_count=1)`` as used by the
TransReID-style repos (spec §0.5): area fraction U(0.02, 1/3), log-uniform aspect ratio in
[0.3, 1/0.3], up to 10 attempts, erased pixels filled with per-pixel N(0, 1) noise in
normalised space. ``fill="zero"`` with ``area=(0.02, 0.4)``, ``log_ratio=False`` and
``attempts=100`` is Zhong et al.'s original variant as used by MuDeep (0 after normalisation
= the mean colour).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

ERASING_FILLS = ("pixel", "zero")


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_probability(value: float, name: str) -> float:
    """``value`` as a float when it is a probability in [0, 1], else ``ValueError`` naming ``name``."""
    if not _is_real(value) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_interval(value: Sequence[float], name: str, upper: float | None = None) -> tuple[float, float]:
    """A finite ``(min, max)`` with ``0 < min <= max`` (and ``max <= upper``), else ``ValueError`` naming ``name``."""
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    valid = len(pair) == 2 and all(_is_real(v) and math.isfinite(v) for v in pair)
    if not valid or not 0 < pair[0] <= pair[1] or (upper is not None and pair[1] > upper):
        bound = "" if upper is None else f" <= {upper:g}"
        raise ValueError(f"{name} must be (min, max) with 0 < min <= max{bound}, got {value!r}")
    return float(pair[0]), float(pair[1])


def check_positive_int(value: int, name: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_erasing_args(
    p: float, area: Sequence[float], ratio: Sequence[float], attempts: int, prefix: str = ""
) -> None:
    """Validate random-erasing settings; errors name the argument as ``<prefix><name>``."""
    check_probability(p, f"{prefix}p")
    check_interval(area, f"{prefix}area", upper=1.0)
    check_interval(ratio, f"{prefix}ratio")
    check_positive_int(attempts, f"{prefix}attempts")


def random_erasing(
    images: torch.Tensor,
    *,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 1 / 3),
    ratio: tuple[float, float] = (0.3, 1 / 0.3),
    log_ratio: bool = True,
    attempts: int = 10,
    fill: str | float | Sequence[float] = "pixel",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Erase one random rectangle in each image of a float batch ``(B, C, H, W)`` with probability ``p``.

    Per image: up to ``attempts`` draws of (area fraction, aspect ratio); the first draw whose
    rectangle fits strictly inside the image is used, placed uniformly. ``fill`` is "pixel"
    (N(0,1) noise per pixel and channel), "zero", or a number / per-channel sequence.
    Returns a new tensor; the input is not modified.
    """
    if images.ndim != 4:
        raise ValueError(f"random_erasing expects (B, C, H, W), got shape {tuple(images.shape)}")
    check_erasing_args(p, area, ratio, attempts)
    if p <= 0:
        return images.clone()
    b, c, h, w = images.shape
    device = images.device
    opts = {"device": device, "generator": generator}
    apply = torch.rand(b, **opts) < p
    target = torch.empty(b, attempts, device=device).uniform_(area[0], area[1], generator=generator) * (h * w)
    if log_ratio:
        log_r = torch.empty(b, attempts, device=device).uniform_(
            math.log(ratio[0]), math.log(ratio[1]), generator=generator
        )
        aspect = log_r.exp()
    else:
        aspect = torch.empty(b, attempts, device=device).uniform_(ratio[0], ratio[1], generator=generator)
    eh = torch.round(torch.sqrt(target * aspect)).long()
    ew = torch.round(torch.sqrt(target / aspect)).long()
    fits = (eh < h) & (ew < w) & (eh > 0) & (ew > 0)
    first = fits.int().argmax(dim=1)  # first fitting attempt (0 when none fits; masked below)
    apply &= fits.any(dim=1)
    rows = torch.arange(b, device=device)
    eh, ew = eh[rows, first], ew[rows, first]
    top = (torch.rand(b, **opts) * (h - eh + 1).clamp(min=1)).long()
    left = (torch.rand(b, **opts) * (w - ew + 1).clamp(min=1)).long()
    ys = torch.arange(h, device=device)
    xs = torch.arange(w, device=device)
    in_rows = (ys[None] >= top[:, None]) & (ys[None] < (top + eh)[:, None])
    in_cols = (xs[None] >= left[:, None]) & (xs[None] < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None])[:, None]  # (B, 1, H, W)
    out = images.clone()
    if isinstance(fill, str):
        if fill not in ERASING_FILLS:
            raise ValueError(f"erasing fill must be one of {ERASING_FILLS} or numbers, got {fill!r}")
        if fill == "zero":
            return out.masked_fill_(mask, 0)
        # noise only for the erased pixels (filled in memory order)
        noise = torch.randn(int(mask.sum()) * c, device=device, dtype=images.dtype, generator=generator)
        return out.masked_scatter_(mask, noise)
    value = torch.as_tensor(fill, device=device, dtype=images.dtype).reshape(-1, 1, 1)
    if value.numel() not in (1, c):
        raise ValueError(f"erasing fill needs 1 or {c} values, got {value.numel()}")
    return torch.where(mask, value, out)


class RandomErasing(torch.nn.Module):
    """Per-image wrapper of :func:`random_erasing` for a ``(C, H, W)`` float tensor (global torch RNG)."""

    def __init__(
        self,
        *,
        p: float = 0.5,
        area: tuple[float, float] = (0.02, 1 / 3),
        ratio: tuple[float, float] = (0.3, 1 / 0.3),
        log_ratio: bool = True,
        attempts: int = 10,
        fill: str | float | Sequence[float] = "pixel",
    ) -> None:
        super().__init__()
        check_erasing_args(p, area, ratio, attempts)
        if isinstance(fill, str) and fill not in ERASING_FILLS:
            raise ValueError(f"erasing fill must be one of {ERASING_FILLS} or numbers, got {fill!r}")
        self.kwargs = {"p": p, "area": area, "ratio": ratio, "log_ratio": log_ratio, "attempts": attempts, "fill": fill}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return random_erasing(image[None], **self.kwargs)[0]

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
