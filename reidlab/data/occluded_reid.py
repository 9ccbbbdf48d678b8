"""Occluded-REID (200 persons x 5 occluded + 5 whole-body images), a test-only set read as released.

Original release: ``occluded_body_images/NNN/NNN_KK.tif`` (queries) and
``whole_body_images/NNN/NNN_KK.tif`` (gallery); ``.jpg`` / ``.png`` copies are accepted too.
Camera convention (DPM, spec §2.5): DPM's ``Rename.py`` names queries ``c1`` and the gallery
``c3``, so after 0-based conversion **queries have camid 0 and the gallery camid 2**. Published
DPM results depend on these ids (SIE embeddings; no same-camera removal ever triggers), so they
are the defaults; override with ``query_camid`` / ``gallery_camid``. A tree already converted by
``Rename.py`` (Market-style ``query/`` + ``bounding_box_test/``) is read with the cameras in its names.
Train is empty by design (DPM trains on Market-1501).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from reidlab.data.market_style import parse_market_folder
from reidlab.data.parsing import find_dataset_root, finish, list_images, match_names, require_dir
from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import register_dataset

CANDIDATES = ("Occluded_REID", "OccludedREID", "Occluded-REID", "occluded_reid", "Occluded_ReID")
FOLDERS = {"query": "occluded_body_images", "gallery": "whole_body_images"}
PATTERN = re.compile(r"(\d+)_(\d+)\.\w+$", re.ASCII)
PERSON_FOLDER = re.compile(r"\d+", re.ASCII)
LAYOUT = (
    "  <root>/occluded_body_images/001/001_01.tif   (queries)\n"
    "  <root>/whole_body_images/001/001_01.tif      (gallery)\n"
    "  or, after DPM's Rename.py:\n"
    "  <root>/query/0001_c1s1_000050_00.tif, <root>/bounding_box_test/0001_c3s3_000050_00.tif"
)


def parse_person_folders(folder: Path, camid: int, skipped: list[tuple[str, str]]) -> list[Sample]:
    """``folder/NNN/NNN_KK.*``: the pid comes from the file name and must agree with its folder."""
    samples = []
    for path, found in match_names(list_images(folder, skipped, recursive=True), PATTERN, skipped):
        pid = int(found.group(1))
        person = path.parent.name
        if path.parent == folder or not PERSON_FOLDER.fullmatch(person) or int(person) != pid:
            skipped.append((str(path), f"pid {pid} does not match its person folder {path.parent.name!r}"))
            continue
        samples.append(Sample(as_path_str(path), pid, camid))
    return samples


@register_dataset("occluded_reid")
def load_occluded_reid(
    root: str | Path | None = None, query_camid: int | None = None, gallery_camid: int | None = None
) -> ReIDDataset:
    """Occluded queries vs whole-body gallery; camids default to DPM's 0 (query) and 2 (gallery)."""
    markers = list(FOLDERS.values()) + ["query", "bounding_box_test"]
    folder = find_dataset_root(root, "occluded_reid", CANDIDATES, markers, LAYOUT)
    options = {"query_camid": query_camid, "gallery_camid": gallery_camid}
    dataset = ReIDDataset(name="occluded_reid", root=str(folder), empty_by_design=("train",))
    original = any((folder / name).is_dir() for name in FOLDERS.values())
    if original:
        options = {"query_camid": 0 if query_camid is None else query_camid,
                   "gallery_camid": 2 if gallery_camid is None else gallery_camid}
        for split, name in FOLDERS.items():
            sub = require_dir(folder / name, "occluded_reid", LAYOUT)
            setattr(dataset, split, parse_person_folders(sub, options[f"{split}_camid"], dataset.skipped))
    else:
        for split, name in (("query", "query"), ("gallery", "bounding_box_test")):
            samples, _ = parse_market_folder(require_dir(folder / name, "occluded_reid", LAYOUT), "occluded_reid",
                                             6, dataset.skipped)
            camid = options[f"{split}_camid"]
            setattr(dataset, split, samples if camid is None else [replace(s, camid=camid) for s in samples])
    dataset.options = options
    layout = "original release" if original else "Rename.py layout"

    def camera_note(split: str) -> str:
        camid = options[f"{split}_camid"]
        return "camids from file names" if camid is None else f"camid {camid}"

    dataset.notes = {"train": "test-only dataset (train on Market-1501)",
                     "query": f"occluded bodies ({layout}), {camera_note('query')}",
                     "gallery": f"whole bodies ({layout}), {camera_note('gallery')}"}
    return finish(dataset)
