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


# --------------------------------------------------------------------------- MSMT17
MSMT_LISTS = {
    "train": [("0000/0000_000_01_0303morning_0015_0.jpg", 0), ("0000/0000_001_03_0303morning_0016_0.jpg", 0),
              ("0001/0001_000_02_0303noon_0100_1.jpg", 1)],
    "val": [("0001/0001_002_05_0303noon_0200_0.jpg", 1)],
    "query": [("0000/0000_000_07_0304morning_0001_0.jpg", 0)],
    "gallery": [("0000/0000_001_08_0304morning_0002_0.jpg", 0), ("0001/0001_000_15_0304noon_0003_0.jpg", 1)],
}


def write_msmt_tree(base: Path, version: str = "v1") -> Path:
    root = base / ("MSMT17_V1" if version == "v1" else "MSMT17_V2")
    train_dir, test_dir = ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
    for split, entries in MSMT_LISTS.items():
        folder = root / (train_dir if split in ("train", "val") else test_dir)
        for relative, _ in entries:
            write_image(folder / relative)
        (root / f"list_{split}.txt").write_text("".join(f"{p} {label}\n" for p, label in entries))
    return root


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt17_lists_cameras_and_with_val(tmp_path, version):
    write_msmt_tree(tmp_path, version)
    ds = load_quiet("msmt17", tmp_path)
    assert ds.options == {"version": version, "with_val": True}
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (4, 1, 2)
    assert sorted(s.camid for s in ds.train) == [0, 1, 2, 4]
    assert sorted(s.camid for s in ds.gallery) == [7, 14]
    assert "list_val" in ds.summary().loc["train", "notes"]
    no_val = load_quiet("msmt17", tmp_path, with_val=False, version=version)
    assert len(no_val.train) == 3 and "excluded" in no_val.summary().loc["train", "notes"]


def test_msmt17_all_is_a_training_source_with_every_identity(tmp_path):
    write_msmt_tree(tmp_path)
    ds = load_quiet("msmt17_all", tmp_path)
    assert len(ds.train) == 7 and ds.num_train_pids == 4  # train ids 0,1 + test ids 0,1 (offset by 2)
    assert sorted({s.raw_pid for s in ds.train}) == [0, 1, 2, 3]
    assert ds.query == [] and ds.gallery == []
    assert ds.summary().loc["query", "images"] == 0


def test_msmt17_missing_listed_file_is_reported_and_wrong_version_errors(tmp_path):
    root = write_msmt_tree(tmp_path)
    (root / "test" / "0001" / "0001_000_15_0304noon_0003_0.jpg").unlink()
    with pytest.warns(SkippedFileWarning, match="listed in list_gallery.txt but missing"):
        ds = load_dataset("msmt17", tmp_path)
    assert len(ds.gallery) == 1
    with pytest.raises(FileNotFoundError, match=r"msmt17: no dataset found .*mask_train_v2"):
        load_dataset("msmt17", tmp_path, version="v2")


# --------------------------------------------------------------------------- RandPerson
def test_randperson_training_only_with_scene_camera_ids(tmp_path):
    root = tmp_path / "randperson_subset"
    for name in ("000000_s00_c00_f000264", "000000_s01_c00_f000100", "000003_s00_c01_f000001"):
        write_image(root / f"{name}.jpg")
    ds = load_quiet("randperson", tmp_path)
    assert [s.pid for s in ds.train] == [0, 0, 1] and [s.camid for s in ds.train] == [0, 2, 1]
    assert ds.query == [] and ds.gallery == [] and ds.num_train_cams == 3
    assert list(ds.summary()["images"]) == [3, 0, 0]


# --------------------------------------------------------------------------- Occluded-REID
def write_occluded_reid_tree(base: Path) -> Path:
    root = base / "Occluded_REID"
    for pid in (1, 2):
        for k in (1, 2):
            write_image(root / "occluded_body_images" / f"{pid:03d}" / f"{pid:03d}_{k:02d}.tif")
            write_image(root / "whole_body_images" / f"{pid:03d}" / f"{pid:03d}_{k:02d}.jpg")
    return root


def test_occluded_reid_original_release_and_camera_convention(tmp_path):
    root = write_occluded_reid_tree(tmp_path)
    ds = load_quiet("occluded_reid", tmp_path)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (0, 4, 4)
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {2}
    assert [s.pid for s in ds.query] == [1, 1, 2, 2] and ds.query[0].path.endswith("001_01.tif")
    other = load_quiet("occluded_reid", root, query_camid=1, gallery_camid=4)
    assert {s.camid for s in other.query} == {1} and {s.camid for s in other.gallery} == {4}
    write_image(root / "whole_body_images" / "002" / "003_01.jpg")  # wrong person folder
    with pytest.warns(SkippedFileWarning, match="does not match its person folder"):
        load_dataset("occluded_reid", root)


def test_occluded_reid_renamed_layout(tmp_path):
    root = tmp_path / "OccludedREID"
    write_image(root / "query" / "0001_c1s1_000050_00.tif")
    write_image(root / "bounding_box_test" / "0001_c3s3_000050_00.tif")
    ds = load_quiet("occluded_reid", tmp_path)
    assert ds.query[0].camid == 0 and ds.gallery[0].camid == 2 and ds.query[0].pid == 1


# --------------------------------------------------------------------------- SYSU-MM01
def write_sysu_tree(base: Path) -> Path:
    root = base / "SYSU-MM01"
    train, val, test = [1, 2], [3], [4, 5]
    for pid in train + val + test:
        for cam in range(1, 7):
            if pid == 5 and cam == 5:
                continue  # not every identity appears in every camera
            for index in range(3 if pid in test else 1):
                write_image(root / f"cam{cam}" / f"{pid:04d}" / f"{index + 1:04d}.jpg")
    (root / "exp").mkdir(parents=True)
    for name, ids in (("train", train), ("val", val), ("test", test)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(str(i) for i in ids))
    return root


def test_sysu_mm01_train_query_and_modalities(tmp_path):
    write_sysu_tree(tmp_path)
    ds = load_quiet("sysu_mm01", tmp_path)
    assert len(ds.train) == 3 * 6 and ds.num_train_pids == 3  # train + val ids
    assert {s.modality for s in ds.train if s.camid in (2, 5)} == {"ir"}
    assert {s.modality for s in ds.train if s.camid in (0, 1, 3, 4)} == {"rgb"}
    assert {s.pid for s in ds.train if s.modality == "ir"} == {s.pid for s in ds.train if s.modality == "rgb"}
    assert {(s.raw_pid, s.pid) for s in ds.train} == {(1, 0), (2, 1), (3, 2)}
    assert len(ds.query) == 2 * 2 * 3 and {s.camid for s in ds.query} == {2, 5}
    assert {s.modality for s in ds.query} == {"ir"} and {s.pid for s in ds.query} == {4, 5}
    # single-shot all-search: one image per (test id, RGB camera) holding that id; pid 5 lacks camera 5
    assert len(ds.gallery) == 4 + 3 and {s.modality for s in ds.gallery} == {"rgb"}
    assert ds.options == {"mode": "all", "shot": 1, "trial": 0, "gallery_seed": 2019}


def test_sysu_mm01_gallery_is_deterministic_per_trial(tmp_path):
    root = write_sysu_tree(tmp_path)
    galleries = {t: [s.path for s in load_quiet("sysu_mm01", tmp_path, trial=t).gallery] for t in range(4)}
    assert galleries[1] == [s.path for s in load_quiet("sysu_mm01", tmp_path, trial=1).gallery]
    assert len({tuple(g) for g in galleries.values()}) > 1  # different trials draw different galleries
    rng = __import__("random").Random(2019 + 33 * 2)  # the documented rule, reproduced by hand
    expected = []
    for pid in (4, 5):
        for cam in (1, 2, 4, 5):
            files = sorted((root / f"cam{cam}" / f"{pid:04d}").glob("*.jpg"))
            if files:
                expected.append(str(rng.choice(files)))
    assert galleries[2] == expected


def test_sysu_mm01_indoor_multishot_and_bad_options(tmp_path):
    root = write_sysu_tree(tmp_path)
    indoor = load_quiet("sysu_mm01", tmp_path, mode="indoor")
    assert {s.camid for s in indoor.gallery} == {0, 1} and len(indoor.gallery) == 4
    assert len(indoor.query) == 12  # queries are every IR test image in both modes
    multi = load_quiet("sysu_mm01", tmp_path, shot=10)
    assert len(multi.gallery) == 7 * 3  # all 3 images when fewer than 10 exist
    for kwargs, message in (({"mode": "outdoor"}, "mode"), ({"shot": 5}, "shot"), ({"trial": 10}, "trial")):
        with pytest.raises(ValueError, match=f"sysu_mm01: {message}"):
            load_dataset("sysu_mm01", tmp_path, **kwargs)
    (root / "exp" / "test_id.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"sysu_mm01: expected file .*test_id.txt is missing"):
        load_dataset("sysu_mm01", tmp_path)


# --------------------------------------------------------------------------- RegDB
def write_regdb_tree(base: Path, trials=(1, 2)) -> Path:
    root = base / "RegDB"
    for trial in trials:
        for split, ids in (("train", [10 + trial, 20]), ("test", [30, 40 + trial])):
            for spectrum, folder, prefix in (("visible", "Visible", "v"), ("thermal", "Thermal", "t")):
                lines = []
                for label, person in enumerate(ids):
                    for k in range(2):
                        relative = f"{folder}/{person}/male_front_{prefix}_{person:05d}_{k}.bmp"
                        write_image(root / relative)
                        lines.append(f"{relative} {label}\n")
                (root / "idx").mkdir(parents=True, exist_ok=True)
                (root / "idx" / f"{split}_{spectrum}_{trial}.txt").write_text("".join(lines))
    return root


def test_regdb_trials_directions_and_cameras(tmp_path):
    write_regdb_tree(tmp_path)
    ds = load_quiet("regdb", tmp_path)
    assert ds.options == {"trial": 1, "direction": "visible_to_thermal"}
    assert len(ds.train) == 8 and ds.num_train_pids == 2
    assert {(s.modality, s.camid) for s in ds.train} == {("rgb", 0), ("ir", 1)}
    assert {s.modality for s in ds.query} == {"rgb"} and {s.modality for s in ds.gallery} == {"ir"}
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {1}
    assert any("/11/" in s.path for s in ds.train)
    swapped = load_quiet("regdb", tmp_path, direction="thermal_to_visible")
    assert [s.path for s in swapped.query] == [s.path for s in ds.gallery]
    trial2 = load_quiet("regdb", tmp_path, trial=2)
    assert any("/12/" in s.path for s in trial2.train) and not any("/11/" in s.path for s in trial2.train)
    assert [s.path for s in load_quiet("regdb", tmp_path, trial=2).gallery] == [s.path for s in trial2.gallery]
    with pytest.raises(FileNotFoundError, match=r"regdb: expected file .*train_visible_3.txt is missing"):
        load_dataset("regdb", tmp_path, trial=3)
    with pytest.raises(ValueError, match="regdb: direction"):
        load_dataset("regdb", tmp_path, direction="both")


# --------------------------------------------------------------------------- Market attributes
def test_market_attributes_from_mat_file(tmp_path):
    import numpy as np
    from scipy.io import savemat

    from reidlab.data.market_attributes import attribute_records, load_market_attributes

    def split_struct(pids, gender, upred):
        return {"image_index": np.array([f"{p:04d}" for p in pids], dtype=object),
                "gender": np.array([gender]), "age": np.array([[2, 3]]), "backpack": np.array([[2, 1]]),
                "upred": np.array([upred]), "upblack": np.array([[1, 2]]), "downblue": np.array([[2, 2]]),
                "up": np.array([[1, 2]]), "down": np.array([[1, 1]])}

    folder = tmp_path / "Market-1501_Attribute"
    folder.mkdir()
    savemat(folder / "market_attribute.mat", {"market_attribute": {
        "train": split_struct([2, 7], [1, 2], [2, 1]), "test": split_struct([1, 3], [2, 2], [1, 1])}})
    table = load_market_attributes(tmp_path)
    assert len(table) == 4 and set(table["split"]) == {"train", "test"}
    row = table[(table.split == "train") & (table.pid == 7)].iloc[0]
    assert row["gender"] == 2 and row["age"] == 3
    records = attribute_records(folder / "market_attribute.mat")
    assert records[("train", 2)]["gender"] == "male" and records[("train", 2)]["carrying"] == ["backpack"]
    assert records[("train", 2)]["up_colors"] == ["red"] and records[("train", 7)]["up_colors"] == ["black"]
    assert records[("test", 1)]["down_colors"] == ["blue"] and records[("test", 3)]["up"] == "short sleeves"
    with pytest.raises(FileNotFoundError, match="market_attribute.mat not found"):
        load_market_attributes(tmp_path / "nothing")


def test_root_none_means_the_lab_data_folder(tmp_path, monkeypatch):
    write_market_tree(tmp_path)
    monkeypatch.setenv("REIDLAB_DATA", str(tmp_path))
    assert load_quiet("market1501", None).root == str(tmp_path / "Market-1501-v15.09.15")


def test_load_available_returns_only_present_datasets(tmp_path):
    write_market_tree(tmp_path)
    write_sysu_tree(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SkippedFileWarning)
        found = data.load_available(root=tmp_path)
    assert sorted(found) == ["market1501", "sysu_mm01"]
    assert data.load_available(["regdb"], root=tmp_path) == {}
