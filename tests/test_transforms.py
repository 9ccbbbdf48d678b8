"""Train / test transforms and random erasing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidlab.data import build_test_transform, build_train_transform
from reidlab.data.erasing import random_erasing
from reidlab.data.transforms import interpolation_mode
from reidlab.preprocessing import normalization_stats


def gradient_image(h: int = 40, w: int = 20) -> Image.Image:
    array = np.zeros((h, w, 3), dtype=np.uint8)
    array[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None]
    array[..., 1] = np.linspace(0, 255, h, dtype=np.uint8)[:, None]
    array[..., 2] = 128
    return Image.fromarray(array)


def test_test_transform_shape_and_normalisation_ranges():
    image = gradient_image()
    x = build_test_transform((32, 16), normalization="half")(image)
    assert x.shape == (3, 32, 16) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.9  # (v - 0.5) / 0.5 of [0, 1]
    y = build_test_transform((32, 16), normalization="imagenet")(image)
    mean, std = normalization_stats("imagenet")
    assert torch.allclose(y[2], torch.full_like(y[2], (128 / 255 - mean[2]) / std[2]), atol=1e-5)


def test_train_transform_without_randomness_equals_test_transform():
    image = gradient_image()
    train = build_train_transform((32, 16), flip_p=0, padding=0, erasing_p=0, interpolation="bilinear")
    test = build_test_transform((32, 16), interpolation="bilinear")
    assert torch.allclose(train(image), test(image))


def test_train_transform_flip_and_padding_are_applied():
    image = gradient_image()
    flipped = build_train_transform((32, 16), flip_p=1.0, padding=0, erasing_p=0)(image)
    plain = build_test_transform((32, 16))(image)
    assert torch.allclose(flipped, plain.flip(-1))
    torch.manual_seed(0)
    crops = torch.stack([build_train_transform((32, 16), flip_p=0, padding=4, erasing_p=0)(image) for _ in range(20)])
    assert crops.shape == (20, 3, 32, 16)
    assert not torch.allclose(crops.std(0), torch.zeros(3, 32, 16))  # random offsets differ between draws


def test_colour_jitter_changes_pixels_and_validates_arguments():
    image = gradient_image()
    torch.manual_seed(1)
    jittered = build_train_transform((32, 16), flip_p=0, padding=0, erasing_p=0, color_jitter=0.4)(image)
    assert not torch.allclose(jittered, build_test_transform((32, 16))(image))
    with pytest.raises(ValueError, match="color_jitter"):
        build_train_transform((32, 16), color_jitter=(0.1, 0.2))
    with pytest.raises(ValueError, match="unknown normalization"):
        build_train_transform((32, 16), normalization="zscore")
    with pytest.raises(ValueError, match="unknown interpolation"):
        interpolation_mode("cubic-spline")


def test_random_erasing_pixel_noise_fills_one_rectangle():
    images = torch.full((64, 3, 32, 16), 7.0)
    generator = torch.Generator().manual_seed(0)
    out = random_erasing(images, p=1.0, generator=generator)
    erased = out != 7.0
    assert erased.any(dim=(1, 2, 3)).all()  # p = 1: every image erased
    fraction = erased[:, 0].float().mean(dim=(1, 2))
    assert (fraction > 0.01).all() and (fraction <= 1 / 3 + 0.05).all()
    for mask in erased[:, 0]:  # the erased set is one axis-aligned rectangle, same on every channel
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
    assert torch.equal(erased[:, 0], erased[:, 1])
    noise = out[erased]
    assert abs(noise.mean()) < 0.1 and 0.8 < noise.std() < 1.2  # N(0, 1) per pixel
    assert torch.equal(images, torch.full((64, 3, 32, 16), 7.0))  # input untouched


def test_random_erasing_zero_fill_probability_and_determinism():
    images = torch.ones(200, 3, 16, 8)
    out = random_erasing(images, p=0.5, fill="zero", area=(0.02, 0.4), log_ratio=False, attempts=100,
                         generator=torch.Generator().manual_seed(3))
    erased = (out == 0).any(dim=(1, 2, 3)).float().mean().item()
    assert 0.35 < erased < 0.65
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    again = random_erasing(images, p=0.5, fill="zero", area=(0.02, 0.4), log_ratio=False, attempts=100,
                           generator=torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    assert torch.equal(random_erasing(images, p=0.0), images)


def test_train_transform_zero_erasing_mode():
    image = Image.new("RGB", (20, 40), (255, 255, 255))
    torch.manual_seed(0)
    transform = build_train_transform((32, 16), flip_p=0, padding=0, erasing_p=1.0, erasing_mode="zero")
    x = transform(image)
    assert (x == 0).any() and x.max() > 1.5  # white normalised with ImageNet stats is > 2
    with pytest.raises(ValueError, match="erasing fill"):
        build_train_transform((32, 16), erasing_mode="mean")


# --------------------------------------------------------------------------- argument ranges
BAD_AUGMENT_ARGS = [
    ({"erasing_p": 1.5}, r"erasing_p must be in \[0, 1\], got 1.5"),
    ({"erasing_p": -0.1}, r"erasing_p must be in \[0, 1\], got -0.1"),
    ({"flip_p": 2}, r"flip_p must be in \[0, 1\], got 2"),
    ({"flip_p": -0.5}, r"flip_p must be in \[0, 1\], got -0.5"),
    ({"padding": -3}, r"padding must be a non-negative integer, got -3"),
    ({"padding": 2.5}, r"padding must be a non-negative integer, got 2.5"),
    ({"erasing_area": (0.5, 0.1)}, r"erasing_area must be \(min, max\) with 0 < min <= max <= 1, got \(0.5, 0.1\)"),
    ({"erasing_area": (0.0, 0.3)}, r"erasing_area must be \(min, max\) with 0 < min <= max <= 1"),
    ({"erasing_area": (0.1, 1.5)}, r"erasing_area must be \(min, max\) with 0 < min <= max <= 1"),
    ({"erasing_area": (0.1,)}, r"erasing_area must be \(min, max\)"),
    ({"erasing_ratio": (3.0, 0.3)}, r"erasing_ratio must be \(min, max\) with 0 < min <= max, got \(3.0, 0.3\)"),
    ({"erasing_ratio": (0.0, 1.0)}, r"erasing_ratio must be \(min, max\) with 0 < min <= max"),
    ({"erasing_attempts": 0}, r"erasing_attempts must be a positive integer, got 0"),
    ({"color_jitter": -0.2}, r"color_jitter strengths must be >= 0"),
    ({"color_jitter": (0.1, -0.1, 0.0, 0.0)}, r"color_jitter strengths must be >= 0"),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_AUGMENT_ARGS)
def test_train_transform_rejects_out_of_range_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_train_transform((32, 16), **kwargs)


@pytest.mark.parametrize(("kwargs", "message"), BAD_AUGMENT_ARGS)
def test_gpu_augment_rejects_out_of_range_arguments(kwargs, message):
    from reidlab.data.gpu_augment import GPUTrainAugment

    with pytest.raises(ValueError, match=message):
        GPUTrainAugment(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p": 1.5}, r"^p must be in \[0, 1\], got 1.5"),
        ({"area": (0.4, 0.2)}, r"^area must be \(min, max\) with 0 < min <= max <= 1"),
        ({"ratio": (-1.0, 2.0)}, r"^ratio must be \(min, max\) with 0 < min <= max"),
        ({"attempts": -1}, r"^attempts must be a positive integer"),
    ],
)
def test_random_erasing_op_and_function_reject_out_of_range_arguments(kwargs, message):
    from reidlab.data.erasing import RandomErasing

    with pytest.raises(ValueError, match=message):
        RandomErasing(**kwargs)
    with pytest.raises(ValueError, match=message):
        random_erasing(torch.zeros(1, 3, 8, 4), **kwargs)


def test_boundary_values_are_accepted():
    from reidlab.data.gpu_augment import GPUTrainAugment

    edge = {"flip_p": 1.0, "padding": 0, "erasing_p": 1.0, "erasing_area": (1.0, 1.0), "erasing_ratio": (1.0, 1.0)}
    build_train_transform((32, 16), **edge)
    GPUTrainAugment(**edge)
    build_train_transform((32, 16), flip_p=0, erasing_p=0, padding=np.int64(4))
