"""Train and test loaders over Sample lists: the standard DataLoader path (the reference) and the fast path.

Standard: ``ImageDataset`` + per-image v2 transforms in DataLoader workers, P×K batches from ``PKSampler``.
Fast (``fast=True``): every image decoded once into a uint8 tensor (``reidlab.data.cache``, on the GPU when
it fits), batches gathered by index and augmented batched on the device (``reidlab.data.gpu_augment``).
Both yield the same dict batches; under DDP the sampler shards whole batches per rank.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from reidlab.data import (
    CrossModalitySampler,
    ImageDataset,
    PKSampler,
    Sample,
    build_test_transform,
    build_train_transform,
)
from reidlab.engine.distributed import get_rank, get_world_size, is_distributed
from reidlab.paths import data_dir

#: Fraction of free GPU memory the decoded uint8 images may take before batches stay on the host.
DEVICE_CACHE_FRACTION = 0.5


def default_cache_dir() -> Path:
    """Where decoded uint8 image tensors are cached (``<data_dir>/cache/``; files keyed by content stamps)."""
    return data_dir() / "cache"


def fits_on_device(images: torch.Tensor, device: torch.device) -> bool:
    if device.type != "cuda":
        return device.type == "cpu"
    free, _ = torch.cuda.mem_get_info(device)
    return images.numel() * images.element_size() < DEVICE_CACHE_FRACTION * free


def _decode(samples: Sequence[Sample], image_size: tuple[int, int], interpolation: str, cache_dir: Any, progress: bool):
    from reidlab.data.cache import decode_images

    cache = default_cache_dir() if cache_dir == "default" else cache_dir
    return decode_images(samples, image_size, interpolation=interpolation, cache_dir=cache, progress=progress)


def build_train_loader(
    samples: Sequence[Sample],
    *,
    image_size: tuple[int, int],
    batch_p: int,
    batch_k: int,
    seed: int = 0,
    num_workers: int = 0,
    fast: bool = False,
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = "default",
    progress: bool = True,
    sampler: str = "pk",
    **transform_kwargs: Any,
):
    """P×K training batches ``{"image", "pid", "camid", "modality", "index"}``; ``set_epoch`` lives on ``.sampler``.

    ``sampler="cross_modality"`` gives P identities × (K RGB + K IR) images per batch (modality labels in
    the batch). ``transform_kwargs`` are those of ``build_train_transform`` (flip_p, padding, erasing_*, ...).
    """
    if not samples:
        raise ValueError("build_train_loader got no training samples")
    device = torch.device(device)
    shard = {"rank": get_rank(), "world_size": get_world_size()}
    pids = [s.pid for s in samples]
    if sampler == "pk":
        index_sampler = PKSampler(pids, batch_p, batch_k, seed, **shard)
    elif sampler == "cross_modality":
        index_sampler = CrossModalitySampler(pids, [s.modality for s in samples], batch_p, batch_k, seed, **shard)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; expected 'pk' or 'cross_modality'")
    if fast:
        from reidlab.data.cache import TensorBatcher
        from reidlab.data.gpu_augment import GPUTrainAugment

        images = _decode(samples, image_size, transform_kwargs.get("interpolation", "bicubic"), cache_dir, progress)
        augment = GPUTrainAugment.from_transform_kwargs(**transform_kwargs).to(device)
        return TensorBatcher(
            images,
            samples,
            batch_size=index_sampler.batch_size,
            sampler=index_sampler,
            device=device,
            transform=augment,
            images_on_device=fits_on_device(images, device),
        )
    transform = build_train_transform(image_size=tuple(image_size), **transform_kwargs)
    return DataLoader(
        ImageDataset(samples, transform),
        batch_size=index_sampler.batch_size,
        sampler=index_sampler,
        drop_last=True,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )


def build_test_loader(
    samples: Sequence[Sample],
    *,
    image_size: tuple[int, int],
    batch_size: int = 256,
    num_workers: int = 0,
    interpolation: str = "bicubic",
    normalization: str = "imagenet",
    fast: bool = False,
    device: torch.device | str = "cpu",
    cache_dir: str | Path | None = "default",
    progress: bool = False,
):
    """Batches of test images in dataset order (under DDP: this rank's share, padded by repeats)."""
    if not samples:
        raise ValueError("build_test_loader got no samples")
    device = torch.device(device)
    if fast:
        from reidlab.data.cache import TensorBatcher
        from reidlab.data.gpu_augment import GPUNormalize

        images = _decode(samples, image_size, interpolation, cache_dir, progress)
        sampler = _test_sampler(len(samples))
        return TensorBatcher(
            images,
            samples,
            batch_size=batch_size,
            sampler=sampler,
            device=device,
            transform=GPUNormalize(normalization).to(device),
            drop_last=False,
            images_on_device=fits_on_device(images, device),
        )
    transform = build_test_transform(
        image_size=tuple(image_size), interpolation=interpolation, normalization=normalization
    )
    return DataLoader(
        ImageDataset(samples, transform),
        batch_size=batch_size,
        sampler=_test_sampler(len(samples)),
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )


def _test_sampler(n: int):
    if not is_distributed():
        return None
    from torch.utils.data.distributed import DistributedSampler

    return DistributedSampler(range(n), shuffle=False, drop_last=False)


class SampleFieldBatches:
    """Batches of ``loader`` with per-sample ``fields`` added, looked up by the batch's ``"index"``.

    How a method asks for extra per-image inputs without a loader of its own: ``fields`` names
    :class:`Sample` attributes (``["camid", "path"]``) or maps a batch key to a function of the sample
    (``{"caption": lambda s: descriptions[s.raw_pid]}``) or to one value per sample (aligned with
    ``samples``); ``batch[key]`` is then a list in batch order. ``len``, ``set_epoch`` and the sampler state
    pass through.
    """

    def __init__(self, loader: Any, samples: Sequence[Sample], fields: Sequence[str] | Mapping[str, Any]) -> None:
        self.samples = list(samples)
        if isinstance(fields, Mapping):
            fields = {k: [v(s) for s in self.samples] if callable(v) else v for k, v in fields.items()}
            wrong = {k: len(v) for k, v in fields.items() if len(v) != len(self.samples)}
            if wrong:
                raise ValueError(f"batch field value lists must have one value per sample ({len(self.samples)}), "
                                 f"got lengths {wrong}")  # fmt: skip
            self.values = {k: list(v) for k, v in fields.items()}
        else:
            missing = [f for f in fields if self.samples and not hasattr(self.samples[0], f)]
            if missing:
                raise ValueError(f"batch field(s) {missing} are not attributes of Sample; known: {Sample.__slots__}")
            self.values = {f: [getattr(s, f) for s in self.samples] for f in fields}
        self.loader = loader
        self.sampler = getattr(loader, "sampler", None)
        self.batch_sampler = getattr(loader, "batch_sampler", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            order = torch.as_tensor(batch["index"]).tolist()
            for name, values in self.values.items():
                batch[name] = [values[i] for i in order]
            yield batch


def with_sample_fields(loader: Any, samples: Sequence[Sample], fields: Sequence[str] | Mapping[str, Any]) -> Any:
    """``loader`` itself without ``fields``, else a :class:`SampleFieldBatches` over it."""
    return SampleFieldBatches(loader, samples, fields) if fields else loader
