"""Torch dataset over :class:`~reidlab.data.records.Sample` lists (the lab's data contract)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from reidlab.data.records import Sample

MODALITY_INDEX = {"rgb": 0, "ir": 1}
_TO_FLOAT = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


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


def modality_index(modality: str) -> int:
    try:
        return MODALITY_INDEX[modality]
    except KeyError:
        raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(MODALITY_INDEX)}") from None


class ImageDataset(Dataset):
    """Item ``i``: ``{"image": FloatTensor (C, H, W), "pid", "camid", "modality" (0 rgb, 1 ir), "index": i}``.

    ``transform`` receives a PIL RGB image (e.g. :func:`~reidlab.data.transforms.build_train_transform`);
    without one the image is returned as a float tensor in [0, 1].
    """

    def __init__(self, samples: Sequence[Sample], transform: Callable[[Image.Image], Any] | None = None) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.samples[index]
        image = read_image(sample.path)
        image = self.transform(image) if self.transform is not None else _TO_FLOAT(image)
        return {
            "image": image,
            "pid": sample.pid,
            "camid": sample.camid,
            "modality": modality_index(sample.modality),
            "index": index,
        }

    @property
    def pids(self) -> list[int]:
        return [s.pid for s in self.samples]

    @property
    def modalities(self) -> list[int]:
        return [modality_index(s.modality) for s in self.samples]
