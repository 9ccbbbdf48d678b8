"""Image helpers shared by the figures: load, denormalise, overlay a heatmap."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

ImageLike = str | os.PathLike | np.ndarray | torch.Tensor | Image.Image


def load_image(path: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image file as float32 RGB ``(H, W, 3)`` in ``[0, 1]``, resized to ``size=(h, w)`` if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    with Image.open(path) as img:
        img = img.convert("RGB")
        if size is not None:
            img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
        return np.asarray(img, dtype=np.float32) / 255.0


def denormalize(
    images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
) -> np.ndarray:
    """Undo channel normalisation: ``(C,H,W)`` or ``(B,C,H,W)`` tensor -> ``(H,W,3)`` / ``(B,H,W,3)`` in ``[0, 1]``."""
    if images.dim() not in (3, 4):
        raise ValueError(f"images: expected a (C,H,W) or (B,C,H,W) tensor, got shape {tuple(images.shape)}")
    x = images.detach().float().cpu()
    shape = (-1, 1, 1) if x.dim() == 3 else (1, -1, 1, 1)
    x = x * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)
    x = x.clamp(0, 1)
    x = x.permute(1, 2, 0) if x.dim() == 3 else x.permute(0, 2, 3, 1)
    if x.shape[-1] == 1:
        x = x.expand(*x.shape[:-1], 3)
    return x.numpy()


def as_rgb(
    image: ImageLike,
    size: tuple[int, int] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """Anything displayable -> float32 RGB ``(H, W, 3)`` in ``[0, 1]``.

    Paths are read from disk; tensors are taken as *normalised* model inputs ``(C,H,W)`` and
    denormalised with ``mean``/``std``; arrays are ``(H,W[,3])`` in ``[0,1]`` or uint8.
    """
    if isinstance(image, str | os.PathLike):
        return load_image(image, size)
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        rgb = denormalize(image, mean, std)
        if rgb.ndim != 3:
            raise ValueError(f"expected one image (C,H,W), got a batch of shape {tuple(image.shape)}")
    elif isinstance(image, np.ndarray):
        rgb = image.astype(np.float32)
        if image.dtype == np.uint8:
            rgb = rgb / 255.0
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=-1)
        if rgb.ndim != 3 or rgb.shape[-1] not in (1, 3):
            raise ValueError(f"image array: expected (H,W) or (H,W,3), got shape {image.shape}")
        if rgb.shape[-1] == 1:
            rgb = np.repeat(rgb, 3, axis=-1)
    else:
        raise TypeError(f"cannot display an object of type {type(image).__name__}")
    if size is not None and rgb.shape[:2] != tuple(size):
        rgb = resize_map(rgb.transpose(2, 0, 1), size).transpose(1, 2, 0)
    return np.clip(rgb, 0, 1)


def load_tensor(
    path: str | os.PathLike,
    size: tuple[int, int] | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    transform: Callable[[Image.Image], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Read an image as a normalised model input ``(3, h, w)``.

    With ``transform`` (e.g. ``reidlab.data.build_test_transform``) the PIL image goes through it;
    otherwise it is resized bilinearly to ``size`` and normalised with ``mean``/``std``.
    """
    if transform is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"image not found: {path}")
        with Image.open(path) as img:
            return transform(img.convert("RGB"))
    if size is None:
        raise ValueError("load_tensor: give size=(height, width) or a transform")
    rgb = torch.from_numpy(load_image(path, size)).permute(2, 0, 1)
    return (rgb - torch.tensor(mean).view(-1, 1, 1)) / torch.tensor(std).view(-1, 1, 1)


def resize_map(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize ``(h, w)`` or ``(C, h, w)`` maps to ``size=(H, W)``."""
    x = torch.as_tensor(np.asarray(values, dtype=np.float32))
    squeeze = x.dim() == 2
    x = x[None, None] if squeeze else x[None]
    x = F.interpolate(x, size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)[0]
    return (x[0] if squeeze else x).numpy()


def normalize_map(values: np.ndarray) -> np.ndarray:
    """Min-max scale a map to ``[0, 1]`` (a constant map becomes zeros)."""
    values = np.asarray(values, dtype=np.float32)
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet", normalize: bool = True
) -> np.ndarray:
    """Blend ``heatmap`` (any size, resized to the image) over an RGB image in ``[0, 1]``."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    heat = resize_map(heatmap, image.shape[:2]) if heatmap.shape != image.shape[:2] else heatmap
    heat = normalize_map(heat) if normalize else np.clip(heat, 0, 1)
    colored = matplotlib.colormaps[cmap](heat)[..., :3].astype(np.float32)
    return np.clip((1 - alpha) * image + alpha * colored, 0, 1)
