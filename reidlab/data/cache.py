"""Fast data path, part 1: decode every image once into a uint8 tensor ``(N, 3, H, W)``, optionally cached.

Decoding resizes exactly like the first step of :func:`~reidlab.data.transforms.build_train_transform`
(``ToImage`` then ``Resize`` with the named interpolation, antialiased), so the batched augmentations
of :mod:`reidlab.data.gpu_augment` on the decoded tensor match the per-image pipeline.
The optional cache file is keyed by the image paths (with file sizes and mtimes), the size and
the interpolation, and written atomically. :class:`TensorBatcher` then serves batches of indices
(from a sampler or in order) as uint8 tensors on a device, with labels.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from reidlab.data.image_dataset import modality_index
from reidlab.data.image_io import read_image
from reidlab.data.records import Sample
from reidlab.data.transforms import interpolation_mode
from reidlab.io import atomic_torch_save, safe_torch_load

CACHE_VERSION = 1


def _paths(items: Sequence[Sample | str | Path]) -> list[str]:
    return [item.path if isinstance(item, Sample) else str(item) for item in items]


def cache_key(paths: Sequence[str], image_size: tuple[int, int], interpolation: str) -> str:
    """SHA-256 over the ordered paths with each file's size and mtime, the size and the interpolation.

    A file rewritten under the same name (a regenerated synthetic world) changes the key.
    """
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{tuple(image_size)}|{interpolation}\n".encode())
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def cache_file(cache_dir: str | Path, key: str, image_size: tuple[int, int]) -> Path:
    return Path(cache_dir) / f"decoded_{image_size[0]}x{image_size[1]}_{key[:24]}.pt"


def decode_images(
    items: Sequence[Sample | str | Path],
    image_size: tuple[int, int],
    *,
    interpolation: str = "bicubic",
    cache_dir: str | Path | None = None,
    num_threads: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """uint8 tensor ``(N, 3, H, W)`` of the resized images, in the order of ``items``.

    With ``cache_dir`` the tensor is loaded from / saved to a file keyed by paths + size +
    interpolation (a stale or foreign file is ignored and rewritten; one that cannot be read or
    holds the wrong tensor is reported with a warning, removed and rewritten).
    """
    from tqdm.auto import tqdm

    paths = _paths(items)
    h, w = (int(v) for v in image_size)
    key = cache_key(paths, (h, w), interpolation)
    target = cache_file(cache_dir, key, (h, w)) if cache_dir is not None else None
    cached = load_cached(target, key, (len(paths), 3, h, w)) if target is not None else None
    if cached is not None:
        return cached
    mode = interpolation_mode(interpolation)
    resize = v2.Compose([v2.ToImage(), v2.Resize((h, w), interpolation=mode, antialias=True)])
    images = torch.empty((len(paths), 3, h, w), dtype=torch.uint8)

    def load(index: int) -> int:
        images[index] = resize(read_image(paths[index]))
        return index

    threads = num_threads if num_threads is not None else min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
        for _ in tqdm(pool.map(load, range(len(paths))), total=len(paths), desc="decode", disable=not progress):
            pass
    if target is not None:
        atomic_torch_save({"key": key, "image_size": (h, w), "interpolation": interpolation, "images": images}, target)
    return images


def load_cached(target: Path, key: str, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The images stored in ``target`` under ``key``, or ``None`` (absent, stale, or damaged: then removed)."""
    if not target.is_file():
        return None
    try:
        stored = safe_torch_load(target)
    except Exception as error:  # noqa: BLE001 - any unreadable cache file is discarded and rebuilt
        return _discard(target, f"{type(error).__name__}: {error}")
    if not isinstance(stored, dict) or stored.get("key") != key:
        return None  # stale or foreign: overwritten below
    images = stored.get("images")
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or tuple(images.shape) != shape:
        found = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        return _discard(target, f"expected uint8 images of shape {shape}, found {found}")
    return images


def _discard(target: Path, reason: str) -> None:
    warnings.warn(f"cannot read decode cache {target} ({reason}); removing it and decoding the images again",
                  stacklevel=4)
    target.unlink(missing_ok=True)
    return None


def label_tensors(samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
    """``pid``, ``camid``, ``modality`` (0 rgb, 1 ir) as long tensors."""
    return {
        "pid": torch.tensor([s.pid for s in samples], dtype=torch.long),
        "camid": torch.tensor([s.camid for s in samples], dtype=torch.long),
        "modality": torch.tensor([modality_index(s.modality) for s in samples], dtype=torch.long),
    }


class CachedImageDataset(Dataset):
    """Items like :class:`~reidlab.data.ImageDataset` but ``"image"`` is the decoded uint8 ``(3, H, W)``."""

    def __init__(self, images: torch.Tensor, samples: Sequence[Sample]) -> None:
        if len(images) != len(samples):
            raise ValueError(f"{len(images)} decoded images for {len(samples)} samples")
        self.images = images
        self.samples = list(samples)
        self.labels = label_tensors(self.samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {
            "image": self.images[index],
            "pid": int(self.labels["pid"][index]),
            "camid": int(self.labels["camid"][index]),
            "modality": int(self.labels["modality"][index]),
            "index": index,
        }


class TensorBatcher:
    """Batches of decoded images on ``device``: ``{"image", "pid", "camid", "modality", "index"}``.

    Indices come from ``sampler`` (e.g. :class:`~reidlab.data.PKSampler`, one epoch per
    iteration) or, without one, in order. ``transform`` (e.g. a
    :class:`~reidlab.data.gpu_augment.GPUTrainAugment`) maps the uint8 batch on the device to
    float; without it "image" stays uint8. ``images_on_device=True`` moves the whole tensor
    to the device once (fastest when it fits); otherwise each batch is gathered on the host,
    pinned when the device is CUDA, and copied asynchronously.
    """

    def __init__(
        self,
        images: torch.Tensor,
        samples: Sequence[Sample],
        *,
        batch_size: int,
        sampler: Iterable[int] | None = None,
        device: str | torch.device = "cpu",
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        drop_last: bool | None = None,
        images_on_device: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"expected a uint8 (N, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(samples):
            raise ValueError(f"{len(images)} decoded images for {len(samples)} samples")
        self.device = torch.device(device)
        self.images = images.to(self.device) if images_on_device else images
        self.labels = {k: v.to(self.device) for k, v in label_tensors(samples).items()}
        self.batch_size = batch_size
        self.sampler = sampler
        self.transform = transform
        self.drop_last = sampler is not None if drop_last is None else drop_last

    def __len__(self) -> int:
        total = len(self.sampler) if self.sampler is not None else len(self.images)  # type: ignore[arg-type]
        return total // self.batch_size if self.drop_last else -(-total // self.batch_size)

    def _index_batches(self) -> Iterator[torch.Tensor]:
        order = iter(self.sampler) if self.sampler is not None else iter(range(len(self.images)))
        while True:
            chunk = [index for _, index in zip(range(self.batch_size), order, strict=False)]
            if not chunk or (self.drop_last and len(chunk) < self.batch_size):
                return
            yield torch.tensor(chunk, dtype=torch.long)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        pin = self.device.type == "cuda" and not self.images.is_cuda
        for index in self._index_batches():
            if self.images.device == self.device:
                batch = self.images[index.to(self.device)]
            else:
                batch = self.images[index]
                batch = (batch.pin_memory() if pin else batch).to(self.device, non_blocking=pin)
            index = index.to(self.device)
            yield {
                "image": self.transform(batch) if self.transform is not None else batch,
                "pid": self.labels["pid"][index],
                "camid": self.labels["camid"][index],
                "modality": self.labels["modality"][index],
                "index": index,
            }
