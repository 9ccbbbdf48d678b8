"""SYSU-MM01 (visible-infrared): ``cam{1..6}/{pid:04d}/*.jpg`` and ``exp/{train,val,test}_id.txt``.

* RGB cameras 1, 2 (indoor), 4, 5 (outdoor); IR cameras 3 (indoor) and 6 (outdoor). Camids are
  0-based, so SYSU camera 3 is camid 2 and camera 2 is camid 1 (the protocol's "remove gallery
  camera 2 for camera-3 queries" rule is camid 1 for camid 2 here).
* Train = train ids + val ids (395), all six cameras, one relabelling shared by both modalities.
* Query = every IR image (cameras 3 and 6) of the test ids, in both modes (as Ye et al.'s code).
* Gallery: ``mode="all"`` uses RGB cameras 1, 2, 4, 5; ``mode="indoor"`` cameras 1, 2. For every
  test id (ascending) and gallery camera (ascending) holding images of it, ``shot`` images
  (1 = single-shot, 10 = multi-shot; all of them when fewer exist) are drawn from the **sorted**
  file list by ``random.Random(seed)`` (``choice`` for single-shot, ``sample`` for multi-shot) with
  ``seed = 2019 + 33 * trial`` for trial 0..9 (IV-ReID's seeds; ``gallery_seed`` overrides).
  The same trial therefore gives the same gallery on every machine.
"""

from __future__ import annotations

import random
from pathlib import Path

from reidlab.data.parsing import (
    find_dataset_root,
    finish,
    list_images,
    read_id_list,
    relabel,
    require_dir,
    require_file,
)
from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import register_dataset

CANDIDATES = ("SYSU-MM01", "SYSU_MM01", "sysu_mm01", "sysu-mm01", "SYSUMM01")
RGB_CAMERAS = (1, 2, 4, 5)
IR_CAMERAS = (3, 6)
GALLERY_CAMERAS = {"all": (1, 2, 4, 5), "indoor": (1, 2)}
LAYOUT = (
    "  <root>/cam1 ... cam6/0001/0001.jpg   (RGB cameras 1,2,4,5; IR cameras 3,6)\n"
    "  <root>/exp/train_id.txt, val_id.txt, test_id.txt   (comma-separated ids)"
)


def trial_seed(trial: int) -> int:
    """Gallery sampling seed of a trial (IV-ReID: 2019 + 33 * i)."""
    return 2019 + 33 * trial


def camera_images(folder: Path, camera: int, pid: int, skipped: list[tuple[str, str]]) -> list[Path]:
    person = folder / f"cam{camera}" / f"{pid:04d}"
    return list_images(person, skipped) if person.is_dir() else []


def camera_samples(folder: Path, pids: list[int], cameras: tuple[int, ...], skipped) -> list[Sample]:
    return [
        Sample(as_path_str(path), pid, camera - 1, "ir" if camera in IR_CAMERAS else "rgb")
        for pid in pids
        for camera in cameras
        for path in camera_images(folder, camera, pid, skipped)
    ]


@register_dataset("sysu_mm01")
def load_sysu_mm01(
    root: str | Path | None = None,
    mode: str = "all",
    shot: int = 1,
    trial: int = 0,
    gallery_seed: int | None = None,
) -> ReIDDataset:
    """SYSU-MM01 train set and the (mode, shot, trial) query / gallery of the standard protocol."""
    if mode not in GALLERY_CAMERAS:
        raise ValueError(f"sysu_mm01: mode must be 'all' or 'indoor', got {mode!r}")
    if shot not in (1, 10):
        raise ValueError(f"sysu_mm01: shot must be 1 (single-shot) or 10 (multi-shot), got {shot!r}")
    if not 0 <= trial <= 9:
        raise ValueError(f"sysu_mm01: trial must be in 0..9, got {trial!r}")
    folder = find_dataset_root(root, "sysu_mm01", CANDIDATES, ["exp/train_id.txt", "cam1"], LAYOUT)
    for camera in RGB_CAMERAS + IR_CAMERAS:
        require_dir(folder / f"cam{camera}", "sysu_mm01", LAYOUT)
    ids = {name: read_id_list(require_file(folder / "exp" / f"{name}_id.txt", "sysu_mm01", LAYOUT))
           for name in ("train", "val", "test")}
    seed = trial_seed(trial) if gallery_seed is None else gallery_seed
    dataset = ReIDDataset(
        name="sysu_mm01",
        root=str(folder),
        options={"mode": mode, "shot": shot, "trial": trial, "gallery_seed": seed},
    )
    train_ids = sorted(set(ids["train"]) | set(ids["val"]))
    test_ids = sorted(set(ids["test"]))
    dataset.train = relabel(camera_samples(folder, train_ids, (1, 2, 3, 4, 5, 6), dataset.skipped))
    dataset.query = camera_samples(folder, test_ids, IR_CAMERAS, dataset.skipped)
    rng = random.Random(seed)
    for pid in test_ids:
        for camera in GALLERY_CAMERAS[mode]:
            files = camera_images(folder, camera, pid, dataset.skipped)
            if not files:
                continue
            chosen = [rng.choice(files)] if shot == 1 else rng.sample(files, min(shot, len(files)))
            dataset.gallery += [Sample(as_path_str(path), pid, camera - 1, "rgb") for path in chosen]
    dataset.notes = {
        "train": "train + val ids, both modalities, shared relabel",
        "query": "IR cameras 3, 6 of test ids",
        "gallery": f"{mode}-search {'single' if shot == 1 else 'multi'}-shot, trial {trial} (seed {seed})",
    }
    return finish(dataset)
