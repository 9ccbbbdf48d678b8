"""RegDB (visible-thermal) with the idx files of Ye et al.: ``idx/{train,test}_{visible,thermal}_{trial}.txt``.

Each idx line is ``<path relative to the RegDB folder> <label>`` (``Visible/...`` or ``Thermal/...``).
Per trial (1..10): train = that trial's train visible + thermal images, relabelled 0..N-1 with
one mapping for both modalities; test labels are used as given. Camera convention here:
**visible = camid 0 (modality "rgb"), thermal = camid 1 (modality "ir")** (IV-ReID's 1-based
ids were visible 2, thermal 1; only "visible and thermal differ" matters: the RegDB protocol
removes nothing). ``direction="visible_to_thermal"`` (default): query = test visible, gallery =
test thermal; ``"thermal_to_visible"`` swaps them (IV-ReID evaluates only that direction).
"""

from __future__ import annotations

from pathlib import Path

from reidlab.data.parsing import find_dataset_root, finish, read_label_list, relabel, require_file
from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import register_dataset

CANDIDATES = ("RegDB", "regdb", "RegDB_01", "RegDB-01")
MODALITY_CAMID = {"visible": ("rgb", 0), "thermal": ("ir", 1)}
DIRECTIONS = ("visible_to_thermal", "thermal_to_visible")
LAYOUT = (
    "  <root>/idx/train_visible_1.txt ... test_thermal_10.txt   (lines 'Visible/<id>/<file>.bmp <label>')\n"
    "  <root>/Visible/<id>/*.bmp, <root>/Thermal/<id>/*.bmp"
)


def read_idx(folder: Path, split: str, spectrum: str, trial: int, skipped: list[tuple[str, str]]) -> list[Sample]:
    idx = require_file(folder / "idx" / f"{split}_{spectrum}_{trial}.txt", "regdb", LAYOUT)
    modality, camid = MODALITY_CAMID[spectrum]
    samples = []
    for relative, label in read_label_list(idx):
        path = folder / relative
        if not path.is_file():
            skipped.append((str(path), f"listed in {idx.name} but missing"))
            continue
        samples.append(Sample(as_path_str(path), label, camid, modality))
    return sorted(samples, key=lambda s: s.path)


@register_dataset("regdb")
def load_regdb(root: str | Path | None = None, trial: int = 1, direction: str = "visible_to_thermal") -> ReIDDataset:
    """RegDB split ``trial`` (1..10) evaluated in ``direction``."""
    if not 1 <= trial <= 10:
        raise ValueError(f"regdb: trial must be in 1..10, got {trial!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"regdb: direction must be one of {DIRECTIONS}, got {direction!r}")
    folder = find_dataset_root(root, "regdb", CANDIDATES, ["idx"], LAYOUT)
    dataset = ReIDDataset(name="regdb", root=str(folder), options={"trial": trial, "direction": direction})
    train = read_idx(folder, "train", "visible", trial, dataset.skipped)
    train += read_idx(folder, "train", "thermal", trial, dataset.skipped)
    dataset.train = relabel(train)
    visible = read_idx(folder, "test", "visible", trial, dataset.skipped)
    thermal = read_idx(folder, "test", "thermal", trial, dataset.skipped)
    dataset.query, dataset.gallery = (visible, thermal) if direction == "visible_to_thermal" else (thermal, visible)
    source, target = direction.split("_to_")
    dataset.notes = {"train": f"trial {trial}, visible camid 0 + thermal camid 1",
                     "query": f"test {source}", "gallery": f"test {target}"}
    return finish(dataset)
