"""Robustness of the data layer against damaged or unusual trees (each test reproduces a filed bug)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_datasets import load_quiet, write_image, write_market_tree, write_occluded_reid_tree

from reidlab.data import load_dataset
from reidlab.data.cache import cache_file, cache_key, decode_images
from reidlab.data.image_io import read_image
from reidlab.data.parsing import SkippedFileWarning


# --------------------------------------------------------------------------- 1. decode cache
def test_corrupt_decode_cache_is_reported_removed_and_rewritten(tmp_path):
    paths = [write_image(tmp_path / "img" / f"{i}.png", color=(10 * i, 20, 30)) for i in range(3)]
    cache_dir = tmp_path / "cache"
    target = cache_file(cache_dir, cache_key([str(p) for p in paths], (8, 4), "bicubic"), (8, 4))
    target.parent.mkdir()
    target.write_bytes(b"this is not a torch zip archive")
    with pytest.warns(UserWarning, match=f"cannot read decode cache {target}"):
        images = decode_images(paths, (8, 4), cache_dir=cache_dir, progress=False)
    assert images.shape == (3, 3, 8, 4) and images.dtype == torch.uint8
    assert torch.equal(decode_images(paths, (8, 4), progress=False), images)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten cache now loads silently
        assert torch.equal(decode_images(paths, (8, 4), cache_dir=cache_dir, progress=False), images)


def test_decode_cache_with_a_wrong_tensor_is_rewritten(tmp_path):
    paths = [write_image(tmp_path / "img" / f"{i}.png") for i in range(2)]
    key = cache_key([str(p) for p in paths], (8, 4), "bicubic")
    target = cache_file(tmp_path, key, (8, 4))
    torch.save({"key": key, "images": torch.zeros(5, 3, 8, 4, dtype=torch.uint8)}, target)
    with pytest.warns(UserWarning, match="expected uint8 images of shape"):
        images = decode_images(paths, (8, 4), cache_dir=tmp_path, progress=False)
    assert images.shape == (2, 3, 8, 4) and int(images.max()) > 0


# --------------------------------------------------------------------------- 2. int() on name pieces
def test_market_name_with_a_hyphen_inside_the_pid_is_skipped_not_crashing(tmp_path):
    root = write_market_tree(tmp_path)
    for name in ("01-2_c1s1_000151_01.jpg", "--1_c1s1_000151_01.jpg", "1-_c1s1_000151_01.jpg"):
        write_image(root / "bounding_box_train" / name)
    with pytest.warns(SkippedFileWarning, match="01-2_c1s1_000151_01.jpg") as record:
        ds = load_dataset("market1501", tmp_path)
    assert "name does not match" in str(record[0].message)
    assert len(ds.train) == 4 and len(ds.skipped) == 3
    assert [s.raw_pid for s in ds.train] == [2, 2, 7, 11]


@pytest.mark.parametrize("name", ["dukemtmc", "occluded_duke"])
def test_duke_style_names_with_bad_pids_are_skipped(tmp_path, name):
    root = tmp_path / "release"
    for folder, stem in (("bounding_box_train", "0001_c2_f0046182"), ("query", "0005_c1_f0000001"),
                         ("bounding_box_test", "0005_c3_f0000002")):
        write_image(root / folder / f"{stem}.jpg")
    write_image(root / "query" / "00-5_c1_f0000003.jpg")
    write_image(root / "query" / "\u0661\u0662_c1_f0000003.jpg")  # Arabic-Indic digits: not a Duke name
    with pytest.warns(SkippedFileWarning, match="skipped 2 files"):
        ds = load_dataset(name, root)
    assert [s.pid for s in ds.query] == [5]


def test_occluded_reid_person_folder_with_non_ascii_digits_is_skipped(tmp_path):
    root = write_occluded_reid_tree(tmp_path)
    write_image(root / "whole_body_images" / "\u00b2" / "002_05.jpg")  # "²".isdigit() but int("²") fails
    with pytest.warns(SkippedFileWarning, match="does not match its person folder"):
        ds = load_dataset("occluded_reid", root)
    assert len(ds.gallery) == 4


def test_randperson_name_with_non_ascii_digits_is_skipped(tmp_path):
    root = tmp_path / "randperson_subset"
    write_image(root / "000000_s00_c00_f000264.jpg")
    write_image(root / "000000_s\u0661_c00_f000264.jpg")
    with pytest.warns(SkippedFileWarning, match="name does not match"):
        ds = load_dataset("randperson", tmp_path)
    assert len(ds.train) == 1


# --------------------------------------------------------------------------- 3. sub-folders
def test_images_in_a_sub_folder_of_a_split_are_reported(tmp_path):
    root = write_market_tree(tmp_path)
    write_image(root / "bounding_box_train" / "sub" / "0001_c1s1_000001_00.jpg")
    write_image(root / "bounding_box_train" / "sub" / "deeper" / "0001_c1s1_000002_00.jpg")
    (root / "bounding_box_train" / "empty").mkdir()
    with pytest.warns(SkippedFileWarning, match=r"sub.*sub-folder with 2 images ignored") as record:
        ds = load_dataset("market1501", tmp_path)
    message = str(record[0].message)
    assert str(root / "bounding_box_train" / "sub") in message and "empty" not in message
    assert ds.skipped == [(str(root / "bounding_box_train" / "sub"),
                           f"sub-folder with 2 images ignored (images must lie directly in "
                           f"{root / 'bounding_box_train'})")]


# --------------------------------------------------------------------------- 4. 16-bit images
def test_16_bit_png_is_scaled_to_8_bits(tmp_path):
    values = np.linspace(0, 65535, 4 * 16).round().astype(np.uint16).reshape(4, 16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode.startswith("I")
    decoded = np.asarray(read_image(str(tmp_path / "deep.png")))
    assert decoded.shape == (4, 16, 3) and decoded.dtype == np.uint8
    expected = np.round(values / 257).astype(np.uint8)
    assert np.array_equal(decoded[..., 0], expected)
    assert np.array_equal(decoded[..., 0], decoded[..., 2])
    assert decoded.min() == 0 and decoded.max() == 255 and len(np.unique(decoded)) > 32


def test_32_bit_integer_image_is_scaled_or_rejected(tmp_path):
    Image.fromarray(np.array([[0, 65535]], dtype=np.int32)).save(tmp_path / "int.tif")
    assert np.asarray(read_image(str(tmp_path / "int.tif")))[0, :, 0].tolist() == [0, 255]
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(OSError, match=r"wide.tif.*outside 0\.\.65535"):
        read_image(str(tmp_path / "wide.tif"))


# --------------------------------------------------------------------------- 5. dangling symlinks
def test_dangling_symlinks_are_skipped_at_parse_time_with_their_names(tmp_path):
    root = write_market_tree(tmp_path)
    link = root / "bounding_box_train" / "0009_c1s1_000001_00.jpg"
    os.symlink(tmp_path / "moved_away.jpg", link)
    with pytest.warns(SkippedFileWarning, match="0009_c1s1_000001_00.jpg.*dangling symlink"):
        ds = load_dataset("market1501", tmp_path)
    assert len(ds.train) == 4
    assert ds.skipped == [(str(link), f"dangling symlink (target {tmp_path / 'moved_away.jpg'} does not exist)")]


# --------------------------------------------------------------------------- 6. root is a file
def test_root_that_is_a_file_says_so(tmp_path):
    root = tmp_path / "market.zip"
    root.write_bytes(b"PK")
    with pytest.raises(NotADirectoryError, match=r"market1501: root .*market.zip is a file, expected a folder"):
        load_dataset("market1501", root)


def test_split_that_is_a_file_says_so(tmp_path):
    root = write_market_tree(tmp_path)
    for path in (root / "query").iterdir():
        path.unlink()
    (root / "query").rmdir()
    (root / "query").write_text("not a folder")
    with pytest.raises(NotADirectoryError, match=r"market1501: .*query is a file, expected a folder"):
        load_dataset("market1501", tmp_path)


def test_list_file_that_is_a_folder_says_so(tmp_path):
    root = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        write_image(root / f"cam{cam}" / "0001" / "0001.jpg")
    (root / "exp" / "train_id.txt").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match=r"sysu_mm01: .*train_id.txt is a folder, expected a file"):
        load_dataset("sysu_mm01", tmp_path)


def test_clean_trees_still_load_without_warnings(tmp_path):
    write_market_tree(tmp_path)
    assert len(load_quiet("market1501", tmp_path).train) == 4
    assert Path(load_quiet("occluded_reid", write_occluded_reid_tree(tmp_path / "o")).root).name == "Occluded_REID"


def test_verify_uses_the_image_reader_and_reports_out_of_range_images(tmp_path):
    root = write_market_tree(tmp_path)
    wide = root / "query" / "0003_c2s1_000101_00.tif"
    (root / "query" / "0003_c2s1_000101_00.jpg").unlink()
    Image.fromarray(np.array([[0, 70000]], dtype=np.int32)).save(wide)
    problems = load_quiet("market1501", root).verify(progress=False)
    assert problems == [f"{wide}: ValueError: I image with values 0..70000 outside 0..65535; "
                        "convert it to 8 or 16 bits"]
