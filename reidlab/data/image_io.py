"""The one image reader of the lab: any file PIL opens, as 8-bit RGB, errors naming the file."""

from __future__ import annotations

import numpy as np
from PIL import Image


def read_image(path: str) -> Image.Image:
    """Decode ``path`` as an RGB PIL image (IR / grey images are replicated to 3 channels).

    16-bit grey images (modes ``I;16*``, and ``I`` with values in 0..65535) are scaled to 8 bits
    (``round(v / 257)``) rather than saturated; ``I`` images with values outside that range raise.
    """
    try:
        with Image.open(path) as image:
            return _to_rgb(image)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise OSError(f"cannot decode image {path}: {type(error).__name__}: {error}") from error


def _to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as 8-bit RGB; integer grey images are scaled from 16 bits instead of clipped at 255."""
    if not (image.mode == "I" or image.mode.startswith("I;16")):
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.int64)
    low, high = (int(values.min()), int(values.max())) if values.size else (0, 0)
    if low < 0 or high > 65535:
        raise ValueError(f"{image.mode} image with values {low}..{high} outside 0..65535; convert it to 8 or 16 bits")
    grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257) in integers
    return Image.fromarray(grey).convert("RGB")
