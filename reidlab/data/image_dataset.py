"""Torch dataset over :class:`~reidlab.data.records.Sample` lists (the lab's data contract)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from reidlab.data.image_io import read_image
from reidlab.data.records import Sample

MODALITY_INDEX = {"rgb": 0, "ir": 1}
_TO_FLOAT = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


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
