"""RandPerson (synthetic, 8,000 ids; released training subset 132,145 images): a training source only.

File names ``<pid>_s<scene>_c<camera>_f<frame>.jpg`` (e.g. ``000000_s00_c00_f000264.jpg``).
Camera numbers restart in every scene, so a camera is the (scene, camera) pair; camids are the
0-based index of that pair in sorted order over the parsed files. Query and gallery are empty
by design.
"""

from __future__ import annotations

import re
from pathlib import Path

from reidlab.data.parsing import find_dataset_root, finish, list_images, match_names, relabel
from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import register_dataset

PATTERN = re.compile(r"(\d+)_s(\d+)_c(\d+)_f(\d+)", re.ASCII)  # ASCII digits: int() always succeeds
CANDIDATES = ("randperson_subset", "RandPerson", "randperson", "RandPerson_subset", "images")
LAYOUT = "  <root>/000000_s00_c00_f000264.jpg  (pid_sScene_cCamera_fFrame, images directly in the folder)"


@register_dataset("randperson")
def load_randperson(root: str | Path | None = None) -> ReIDDataset:
    """RandPerson training subset; camids index sorted (scene, camera) pairs."""
    folder = find_dataset_root(root, "randperson", CANDIDATES, ["*_s*_c*_f*.*"], LAYOUT)
    dataset = ReIDDataset(name="randperson", root=str(folder), empty_by_design=("query", "gallery"))
    parsed = [
        (path, int(m.group(1)), (int(m.group(2)), int(m.group(3))))
        for path, m in match_names(list_images(folder, dataset.skipped), PATTERN, dataset.skipped)
    ]
    cameras = {pair: index for index, pair in enumerate(sorted({pair for _, _, pair in parsed}))}
    dataset.train = relabel([Sample(as_path_str(path), pid, cameras[pair]) for path, pid, pair in parsed])
    dataset.notes = {"train": f"camid = sorted (scene, camera) pair index ({len(cameras)} pairs)",
                     "query": "training source only"}
    return finish(dataset)
