"""Tables that show a generated world: one row per image (``manifest.csv``), identities and descriptions.

Each function takes a parsed synthetic dataset (``load_dataset("synth_...")``) and reads the world's
``manifest.csv`` / ``attributes.json`` beside the images. The figures drawn from them (identities
across cameras, occlusion, infrared, descriptions) are in :mod:`reidlab.viz.dataset_plots`.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd

from reidlab.data.records import ReIDDataset

from .generator import MARKER


def world_root(dataset: ReIDDataset) -> Path:
    """The generated world's folder (the parser's root or one of its parents holding the marker)."""
    folder = Path(dataset.root)
    for candidate in (folder, *folder.parents):
        if (candidate / MARKER).is_file():
            return candidate
    raise FileNotFoundError(f"{dataset.name}: no synthetic world marker {MARKER} at or above {folder}")


def manifest(dataset: ReIDDataset) -> pd.DataFrame:
    """One row per generated image: path (absolute), split, pid, camid, modality, view, occluder, hidden share."""
    root = world_root(dataset)
    with open(root / "manifest.csv", newline="") as handle:
        table = pd.DataFrame(list(csv.DictReader(handle)))
    table["path"] = [os.fspath(root / p) for p in table["path"]]
    for col in ("pid", "camid", "identity", "view_deg"):
        table[col] = table[col].astype(int)
    table["hidden"] = table["hidden"].astype(float)
    return table


def identities(dataset: ReIDDataset) -> dict[str, dict]:
    """``attributes.json``: attribute record (with its description) per identity key."""
    doc = json.loads((world_root(dataset) / "attributes.json").read_text(encoding="utf-8"))
    return doc["identities"]


def description_table(dataset: ReIDDataset, num: int = 10) -> pd.DataFrame:
    """The first ``num`` identities' keys, splits and descriptions."""
    rows = [{"key": key, "splits": ", ".join(rec["splits"]), "description": rec["description"]}
            for key, rec in list(identities(dataset).items())[:num]]
    return pd.DataFrame(rows)
