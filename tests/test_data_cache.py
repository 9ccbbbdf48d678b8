"""Fast data path: decoded-image cache, tensor batches, batched (GPU) augmentations run on CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

import reidlab.data.cache as cache
from reidlab.data import PKSampler, Sample, build_test_transform
from reidlab.data.cache import CachedImageDataset, TensorBatcher, decode_images
from reidlab.data.gpu_augment import GPUNormalize, GPUTrainAugment, random_pad_crop, shift_hue


@pytest.fixture
def samples(tmp_path) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(12):
        path = tmp_path / f"{i // 3:04d}_c{i % 2 + 1}s1_{i:06d}_00.png"
        Image.fromarray(rng.integers(0, 256, (20 + i, 10, 3), dtype=np.uint8)).save(path)
        out.append(Sample(str(path), i // 3, i % 2, "ir" if i % 4 == 3 else "rgb"))
    return out


def test_decode_matches_the_per_image_resize(samples):
    images = decode_images(samples, (16, 8), interpolation="bilinear", progress=False)
    assert images.shape == (12, 3, 16, 8) and images.dtype == torch.uint8
    resize = v2.Compose([v2.ToImage(), v2.Resize((16, 8), interpolation=v2.InterpolationMode.BILINEAR)])
    assert torch.equal(images[5], resize(Image.open(samples[5].path).convert("RGB")))
    normalized = GPUNormalize("imagenet")(images[:1])
    reference = build_test_transform((16, 8), interpolation="bilinear")(Image.open(samples[0].path))
    assert torch.allclose(normalized[0], reference, atol=1e-5)


def test_cache_round_trip_and_key(samples, tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    first = decode_images(samples, (16, 8), cache_dir=folder, progress=False)
    files = list(folder.glob("decoded_16x8_*.pt"))
    assert len(files) == 1 and not list(folder.glob(".*tmp"))

    def fail(path):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(cache, "read_image", fail)
    assert torch.equal(decode_images(samples, (16, 8), cache_dir=folder, progress=False), first)
    monkeypatch.undo()
    decode_images(samples[:5], (16, 8), cache_dir=folder, progress=False)  # other paths -> other file
    decode_images(samples, (8, 4), cache_dir=folder, progress=False)  # other size -> other file
    assert len(list(folder.glob("decoded_*.pt"))) == 3
    torch.save({"key": "stale", "images": torch.zeros(1)}, files[0])  # foreign content is ignored and rewritten
    assert torch.equal(decode_images(samples, (16, 8), cache_dir=folder, progress=False), first)


def test_cached_dataset_and_batcher_with_a_sampler(samples):
    images = decode_images(samples, (16, 8), progress=False)
    item = CachedImageDataset(images, samples)[7]
    assert item["image"].dtype == torch.uint8 and item["pid"] == 2 and item["modality"] == 1
    sampler = PKSampler.from_samples(samples, p=2, k=2, seed=0)
    batcher = TensorBatcher(images, samples, batch_size=4, sampler=sampler)
    expected_batches = len(sampler) // 4
    assert len(batcher) == expected_batches
    batches = list(batcher)
    assert len(batches) == expected_batches
    for batch in batches:
        index = batch["index"]
        assert batch["image"].shape == (4, 3, 16, 8) and torch.equal(batch["image"], images[index])
        assert batch["pid"].tolist() == [samples[i].pid for i in index.tolist()]
        assert batch["camid"].tolist() == [samples[i].camid for i in index.tolist()]


def test_batcher_in_order_keeps_the_last_partial_batch_and_applies_transform(samples):
    images = decode_images(samples, (16, 8), progress=False)
    batcher = TensorBatcher(images, samples, batch_size=5, transform=GPUNormalize("half"), images_on_device=True)
    batches = list(batcher)
    assert len(batcher) == 3 and [len(b["index"]) for b in batches] == [5, 5, 2]
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(12))
    assert batches[0]["image"].dtype == torch.float32 and batches[0]["image"].min() >= -1
    with pytest.raises(ValueError, match="uint8"):
        TensorBatcher(images.float(), samples, batch_size=4)


def test_gpu_augment_shapes_and_determinism_under_a_generator():
    images = torch.randint(0, 256, (64, 3, 32, 16), dtype=torch.uint8)
    augment = GPUTrainAugment(color_jitter=0.3)
    a = augment(images, generator=torch.Generator().manual_seed(0))
    b = augment(images, generator=torch.Generator().manual_seed(0))
    c = augment(images, generator=torch.Generator().manual_seed(1))
    assert a.shape == (64, 3, 32, 16) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gpu_flip_actually_flips():
    images = torch.randint(0, 256, (8, 3, 12, 6), dtype=torch.uint8)
    augment = GPUTrainAugment(flip_p=1.0, padding=0, erasing_p=0, normalization="half")
    assert torch.allclose(augment(images), GPUNormalize("half")(images.flip(-1)))
    keep = GPUTrainAugment(flip_p=0.0, padding=0, erasing_p=0, normalization="half")
    assert torch.allclose(keep(images), GPUNormalize("half")(images))


def test_gpu_pad_crop_is_a_shifted_zero_padded_crop_per_image():
    images = torch.randint(1, 256, (32, 3, 10, 6), dtype=torch.uint8)
    out = random_pad_crop(images, 2, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    offsets = set()
    for i in range(32):
        crops = {(y, x): padded[i, :, y : y + 10, x : x + 6] for y in range(5) for x in range(5)}
        matches = [offset for offset, crop in crops.items() if torch.equal(out[i], crop)]
        assert matches, f"image {i} is not a crop of its padded version"
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets are drawn per image


def test_gpu_hue_shift_matches_torchvision():
    images = torch.rand(4, 3, 8, 8)
    for shift in (-0.3, 0.1, 0.45):
        ours = shift_hue(images, torch.full((4,), shift))
        assert torch.allclose(ours, F.adjust_hue(images, shift), atol=1e-4)


def test_gpu_erasing_and_jitter_options():
    images = torch.full((16, 3, 20, 10), 200, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(3)
    zero = GPUTrainAugment(flip_p=0, padding=0, erasing_p=1.0, erasing_mode="zero")(images, generator=gen)
    assert ((zero == 0).all(dim=1).flatten(1).any(dim=1)).all()  # every image has a zero-filled rectangle
    jittered = GPUTrainAugment(flip_p=0, padding=0, erasing_p=0, color_jitter=(0.5, 0, 0, 0))(images, generator=gen)
    per_image = jittered.mean(dim=(1, 2, 3))
    assert per_image.std() > 0.05  # brightness factors differ between images
    with pytest.raises(ValueError, match="erasing fill"):
        GPUTrainAugment(erasing_mode="mean")
    built = GPUTrainAugment.from_transform_kwargs(image_size=(20, 10), interpolation="bicubic", padding=0)
    assert built.padding == 0


def test_a_file_rewritten_under_the_same_name_is_decoded_afresh(samples, tmp_path):
    folder = tmp_path / "cache"
    before = decode_images(samples, (16, 8), cache_dir=folder, progress=False)
    Image.fromarray(np.full((20, 10, 3), 7, dtype=np.uint8)).save(samples[0].path)  # a regenerated world
    after = decode_images(samples, (16, 8), cache_dir=folder, progress=False)
    assert torch.equal(after[1:], before[1:]) and not torch.equal(after[0], before[0])
    assert int(after[0].float().sub(7).abs().max()) == 0
