"""Fast data path, part 2: the train augmentations of :mod:`reidlab.data.transforms`, batched on any device.

Input: a uint8 batch ``(B, 3, H, W)`` already resized (see :mod:`reidlab.data.cache`). Steps, each
with its own random parameters per image and no Python loop over images or pixels:
horizontal flip -> zero pad + random crop (index arithmetic, no padded copy) -> optional colour
jitter (brightness, contrast, saturation, hue; one random order per batch) -> float + normalise
-> random erasing (:func:`reidlab.data.erasing.random_erasing`). Pass a ``torch.Generator`` on the
batch's device for reproducible draws. Differences from the per-image pipeline: colour jitter
runs in float without re-quantising to uint8 between its steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from reidlab.data.erasing import ERASING_FILLS, check_erasing_args, random_erasing
from reidlab.data.transforms import check_geometry, jitter_strengths
from reidlab.preprocessing import normalization_stats

GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def _uniform(n: int, low: float, high: float, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high, generator=generator)


def random_flip(images: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    return random_flip_pad_crop(images, flip_p=p, padding=0, generator=generator)


def random_pad_crop(images: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Same as zero-padding by ``padding`` and cropping the original size at a random offset per image."""
    return random_flip_pad_crop(images, flip_p=0.0, padding=padding, generator=generator)


def random_flip_pad_crop(
    images: torch.Tensor, *, flip_p: float, padding: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random horizontal flip, then zero pad + random crop, as one gather (no padded or flipped copy).

    Output pixel (y, x) of image b reads source row ``y + dy_b`` and column ``x + dx_b`` of the
    (possibly mirrored) image, or 0 outside it; dy, dx are uniform in [-padding, padding].
    """
    b, c, h, w = images.shape
    device = images.device
    flip = torch.rand(b, device=device, generator=generator) < flip_p if flip_p > 0 else None
    if padding > 0:
        dy = torch.randint(0, 2 * padding + 1, (b,), device=device, generator=generator) - padding
        dx = torch.randint(0, 2 * padding + 1, (b,), device=device, generator=generator) - padding
    else:
        dy = dx = torch.zeros(b, dtype=torch.long, device=device)
    if flip is None and padding <= 0:
        return images
    rows = torch.arange(h, device=device)[None] + dy[:, None]  # (B, H) source rows
    cols = torch.arange(w, device=device)[None] + dx[:, None]  # (B, W) columns of the mirrored image
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    cols = cols.clamp(0, w - 1)
    if flip is not None:
        cols = torch.where(flip[:, None], w - 1 - cols, cols)
    flat = rows.clamp(0, h - 1)[:, :, None] * w + cols[:, None, :]  # (B, H, W) source offsets
    out = images.reshape(b, c, h * w).gather(2, flat.view(b, 1, h * w).expand(b, c, h * w)).view(b, c, h, w)
    return out * inside[:, None].to(out.dtype) if padding > 0 else out


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma ``(B, 1, H, W)`` of float RGB images."""
    weights = torch.tensor(GRAY_WEIGHTS, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def shift_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the HSV hue of float RGB images in [0, 1] by ``shift`` (B,) turns."""
    r, g, b = images.unbind(dim=1)
    value = images.amax(dim=1)
    chroma = value - images.amin(dim=1)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(
        value == r, ((g - b) / safe) % 6, torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue)) / 6
    hue = (hue + shift[:, None, None]) % 1.0
    # HSV -> RGB: channel n in (R, G, B) = (5, 3, 1): V - C * clamp(min(k, 4 - k), 0, 1), k = (n + 6 H) mod 6
    n = torch.tensor([5.0, 3.0, 1.0], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    k = (n + hue[:, None] * 6) % 6
    return value[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def random_color_jitter(
    images: torch.Tensor, strengths: Sequence[float], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Colour jitter of float images in [0, 1] with per-image factors, like ``ColorJitter(b, c, s, h)``."""
    b, device = len(images), images.device
    brightness, contrast, saturation, hue = strengths
    order = torch.randperm(4, device=device, generator=generator).tolist()
    for step in order:
        if step == 0 and brightness > 0:
            f = _uniform(b, max(0.0, 1 - brightness), 1 + brightness, device, generator).view(b, 1, 1, 1)
            images = (images * f).clamp(0, 1)
        elif step == 1 and contrast > 0:
            f = _uniform(b, max(0.0, 1 - contrast), 1 + contrast, device, generator).view(b, 1, 1, 1)
            mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
            images = (f * images + (1 - f) * mean).clamp(0, 1)
        elif step == 2 and saturation > 0:
            f = _uniform(b, max(0.0, 1 - saturation), 1 + saturation, device, generator).view(b, 1, 1, 1)
            images = (f * images + (1 - f) * grayscale(images)).clamp(0, 1)
        elif step == 3 and hue > 0:
            images = shift_hue(images, _uniform(b, -hue, hue, device, generator))
    return images


class GPUNormalize(torch.nn.Module):
    """uint8 ``(B, 3, H, W)`` -> normalised float (the test-time counterpart of :class:`GPUTrainAugment`)."""

    def __init__(self, normalization: str = "imagenet") -> None:
        super().__init__()
        mean, std = normalization_stats(normalization)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scale = (255 if images.dtype == torch.uint8 else 1) * self.std.to(images.device)
        out = images.float()  # a copy for uint8 input, then normalised in place
        if out.data_ptr() == images.data_ptr():
            out = out.clone()
        return out.div_(scale).sub_(self.mean.to(images.device) / self.std.to(images.device))


class GPUTrainAugment(torch.nn.Module):
    """Batched train augmentation; arguments mean (and are validated) as in ``build_train_transform``."""

    def __init__(
        self,
        *,
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
    ) -> None:
        super().__init__()
        if erasing_mode not in ERASING_FILLS:
            raise ValueError(f"erasing fill must be one of {ERASING_FILLS}, got {erasing_mode!r}")
        check_erasing_args(erasing_p, erasing_area, erasing_ratio, erasing_attempts, prefix="erasing_")
        self.flip_p, self.padding = check_geometry(flip_p, padding)
        self.jitter = jitter_strengths(color_jitter)
        self.normalize = GPUNormalize(normalization)
        self.erasing = {"p": erasing_p, "area": erasing_area, "ratio": erasing_ratio, "log_ratio": erasing_log_ratio,
                        "attempts": erasing_attempts, "fill": erasing_mode}

    @classmethod
    def from_transform_kwargs(cls, **kwargs: Any) -> GPUTrainAugment:
        """Build from ``build_train_transform`` keyword arguments (size and interpolation belong to decoding)."""
        kwargs.pop("image_size", None)
        kwargs.pop("interpolation", None)
        return cls(**kwargs)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"GPUTrainAugment expects (B, 3, H, W), got {tuple(images.shape)}")
        images = random_flip_pad_crop(images, flip_p=self.flip_p, padding=self.padding, generator=generator)
        floats = images.float() / 255 if images.dtype == torch.uint8 else images.float()
        if self.jitter is not None:
            floats = random_color_jitter(floats, self.jitter, generator)
        out = self.normalize(floats)
        if self.erasing["p"] > 0:
            out = random_erasing(out, generator=generator, **self.erasing)
        return out
