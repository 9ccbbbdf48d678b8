"""Dataset parsers on miniature trees written with the official file names (tiny PIL images)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

import reidlab.data as data
from reidlab.data import load_dataset
from reidlab.data.parsing import SkippedFileWarning


def write_image(path: Path, color: tuple[int, int, int] = (120, 60, 30), size: tuple[int, int] = (4, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_market_tree(base: Path, ext: str = "jpg") -> Path:
    """Market-1501 release: junk (-1) in gallery and query, distractors (0) in the gallery."""
    root = base / "Market-1501-v15.09.15"
    train = ["0002_c1s1_000451_03", "0002_c2s1_000551_01", "0007_c3s1_000101_01", "0011_c6s1_001234_02"]
    query = ["0001_c1s1_001051_00", "0003_c2s1_000101_00"]
    gallery = ["-1_c1s1_000401_03", "0000_c1s1_000000_01", "0001_c2s1_000301_01", "0001_c5s1_000301_01",
               "0003_c3s1_000701_02"]
    for folder, names in (("bounding_box_train", train), ("query", query), ("bounding_box_test", gallery)):
        for name in names:
            write_image(root / folder / f"{name}.{ext}")
    write_image(root / "query" / "-1_c3s1_000101_00.jpg")  # junk in query too
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0")  # OS litter, ignored
    return root


def load_quiet(name: str, root: Path, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedFileWarning)
        return load_dataset(name, root, **options)


# --------------------------------------------------------------------------- registry
def test_registry_lists_real_datasets_and_rejects_unknown_names():
    names = data.list_datasets()
    for name in ("market1501", "dukemtmc", "cuhk03_np", "occluded_duke"):
        assert name in names
    with pytest.raises(KeyError, match="known datasets: .*market1501"):
        load_dataset("market1502", "/nowhere")


# --------------------------------------------------------------------------- Market-style
def test_market1501_counts_relabel_junk_and_distractors(tmp_path):
    write_market_tree(tmp_path)
    ds = load_quiet("market1501", tmp_path)  # parent folder holding the release folder
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (4, 2, 4)
    assert [s.pid for s in ds.train] == [0, 0, 1, 2]  # sorted original pids 2, 7, 11
    assert [s.raw_pid for s in ds.train] == [2, 2, 7, 11]
    assert [s.camid for s in ds.train] == [0, 1, 2, 5]
    assert ds.num_train_pids == 3 and ds.num_train_cams == 6
    assert sorted(s.pid for s in ds.gallery) == [0, 1, 1, 3]  # distractor 0 kept, junk dropped
    assert all(s.pid != -1 for split in ("train", "query", "gallery") for s in ds.split(split))
    assert ds.dropped == {"query": 1, "gallery": 1}
    assert all(Path(s.path).is_absolute() and s.modality == "rgb" for s in ds.query)
    assert [Path(s.path).name for s in ds.gallery] == sorted(Path(s.path).name for s in ds.gallery)
    table = ds.summary()
    assert table.loc["train", "ids"] == 3 and table.loc["gallery", "images"] == 4
    assert table.loc["gallery", "dropped"] == 1


def test_market1501_root_may_be_the_dataset_folder_itself(tmp_path):
    root = write_market_tree(tmp_path)
    assert len(load_quiet("market1501", root).train) == 4


def test_unmatched_files_are_reported_not_crashing(tmp_path):
    root = write_market_tree(tmp_path)
    write_image(root / "bounding_box_train" / "badname.jpg")
    (root / "bounding_box_train" / "notes.txt").write_text("x")
    write_image(root / "bounding_box_train" / "0005_c9s1_000001_01.jpg")  # camera 9 does not exist in Market
    with pytest.warns(SkippedFileWarning, match="skipped 3 files") as record:
        ds = load_dataset("market1501", root)
    assert "badname.jpg" in str(record[0].message)
    assert len(ds.skipped) == 3 and len(ds.train) == 4
    assert {Path(p).name for p, _ in ds.skipped} == {"badname.jpg", "notes.txt", "0005_c9s1_000001_01.jpg"}


def test_missing_root_and_split_errors_name_dataset_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"market1501: root folder .*missing_dir does not exist"):
        load_dataset("market1501", tmp_path / "missing_dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"(?s)market1501: no dataset found.*bounding_box_train/0002_c1s1"):
        load_dataset("market1501", tmp_path / "empty")
    root = write_market_tree(tmp_path)
    for path in (root / "query").iterdir():
        path.unlink()
    (root / "query").rmdir()
    with pytest.raises(FileNotFoundError, match=r"market1501: expected folder .*query is missing"):
        load_dataset("market1501", tmp_path)


def test_split_that_ends_up_empty_is_an_error(tmp_path):
    root = write_market_tree(tmp_path)
    for path in (root / "query").iterdir():
        path.unlink()
    write_image(root / "query" / "-1_c1s1_000001_00.jpg")  # only junk left
    with pytest.raises(ValueError, match="market1501: split 'query' is empty"):
        load_dataset("market1501", tmp_path)


def test_dukemtmc_and_occluded_duke_layouts(tmp_path):
    for folder, name in (("DukeMTMC-reID", "dukemtmc"), ("Occluded_Duke", "occluded_duke")):
        root = tmp_path / folder
        for split, files in (
            ("bounding_box_train", ["0001_c2_f0046182", "0001_c8_f0046999", "0005_c1_f0000001"]),
            ("query", ["0003_c1_f0001111"]),
            ("bounding_box_test", ["0003_c2_f0002222", "0004_c7_f0003333"]),
        ):
            for stem in files:
                write_image(root / split / f"{stem}.jpg")
        ds = load_quiet(name, tmp_path)
        assert ds.name == name
        assert [s.camid for s in ds.train] == [1, 7, 0] and [s.pid for s in ds.train] == [0, 0, 1]
        assert ds.num_train_cams == 8 and len(ds.gallery) == 2


def test_dukemtmc_nested_release_folder(tmp_path):
    root = tmp_path / "dukemtmcreid" / "DukeMTMC-reID"
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        write_image(root / split / "0001_c2_f0046182.jpg")
    assert load_quiet("dukemtmc", tmp_path).root == str(root)


@pytest.mark.parametrize("subset", ["detected", "labeled"])
def test_cuhk03_np_subsets_with_png(tmp_path, subset):
    base = tmp_path / "cuhk03-np"
    counts = {"detected": 3, "labeled": 2}
    for sub, n in counts.items():
        for i in range(n):
            write_image(base / sub / "bounding_box_train" / f"{1400 + i:04d}_c{1 + i % 2}_{i + 1}.png")
        write_image(base / sub / "query" / "0001_c1_1.png")
        write_image(base / sub / "bounding_box_test" / "0001_c2_2.png")
    ds = load_quiet("cuhk03_np", tmp_path, subset=subset)
    assert len(ds.train) == counts[subset] and ds.options == {"subset": subset}
    assert [s.camid for s in ds.train][:2] == [0, 1] and ds.query[0].path.endswith(".png")
    with pytest.raises(ValueError, match="subset must be"):
        load_dataset("cuhk03_np", tmp_path, subset="both")


def test_verify_lists_undecodable_images(tmp_path):
    root = write_market_tree(tmp_path)
    broken = root / "query" / "0003_c2s1_000101_00.jpg"
    broken.write_bytes(b"not a jpeg")
    ds = load_quiet("market1501", root)
    problems = ds.verify(progress=False)
    assert len(problems) == 1 and str(broken) in problems[0]


def test_image_dataset_items_and_decode_error(tmp_path):
    root = write_market_tree(tmp_path)
    ds = load_quiet("market1501", root)
    dataset = data.ImageDataset(ds.train, data.build_test_transform((16, 8)))
    item = dataset[1]
    assert item["image"].shape == (3, 16, 8) and item["pid"] == 0 and item["camid"] == 1
    assert item["modality"] == 0 and item["index"] == 1
    raw = data.ImageDataset(ds.train)[0]["image"]
    assert raw.shape == (3, 8, 4) and 0 <= raw.min() and raw.max() <= 1
    Path(ds.train[0].path).write_bytes(b"broken")
    with pytest.raises(OSError, match=r"cannot decode image .*0002_c1s1_000451_03\.jpg"):
        dataset[0]
