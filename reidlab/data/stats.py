"""Dataset statistics for the data-preparation notebook: ids and images per split, published numbers.

Tables only: the plots of a dataset (images per identity / camera, montages) are in
:mod:`reidlab.viz.dataset_plots`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from reidlab.data.records import SPLITS, ReIDDataset

# Published / standard statistics: split -> (identities, images); None where not fixed by the protocol.
# Sources: the specs' dataset tables (methods-dmf-dpm-ivreid.md §0.8, §1.5, §2.5, §3.5;
# methods-mudeep-clipreid-multimodal.md §4). Variants are keyed by the options that change them.
published_statistics: dict[str, dict[str, Any]] = {
    "market1501": {"train": (751, 12936), "query": (750, 3368), "gallery": (751, 15913), "cameras": 6},
    "dukemtmc": {"train": (702, 16522), "query": (702, 2228), "gallery": (1110, 17661), "cameras": 8},
    "occluded_duke": {"train": (702, 15618), "query": (519, 2210), "gallery": (1110, 17661), "cameras": 8},
    "cuhk03_np/detected": {"train": (767, 7365), "query": (700, 1400), "gallery": (700, 5332), "cameras": 2},
    "cuhk03_np/labeled": {"train": (767, 7368), "query": (700, 1400), "gallery": (700, 5328), "cameras": 2},
    "msmt17": {"train": (1041, 32621), "query": (3060, 11659), "gallery": (3060, 82161), "cameras": 15},
    "msmt17/without_val": {"train": (1041, 30248), "query": (3060, 11659), "gallery": (3060, 82161), "cameras": 15},
    "msmt17_all": {"train": (4101, 126441), "query": (0, 0), "gallery": (0, 0), "cameras": 15},
    "randperson": {"train": (8000, 132145), "query": (0, 0), "gallery": (0, 0), "cameras": None},
    "occluded_reid": {"train": (0, 0), "query": (200, 1000), "gallery": (200, 1000), "cameras": None},
    # SYSU single-shot galleries hold one image per (id, RGB camera): about 301 images (all-search).
    "sysu_mm01": {"train": (395, 34167), "query": (96, 3803), "gallery": (96, None), "cameras": 6},
    "sysu_mm01/other": {"train": (395, 34167), "query": (96, 3803), "gallery": (None, None), "cameras": 6},
    "regdb": {"train": (206, 4120), "query": (206, 2060), "gallery": (206, 2060), "cameras": 2},
}


def published_key(dataset: ReIDDataset) -> str:
    """Key of ``published_statistics`` matching the dataset's name and options."""
    if dataset.name == "cuhk03_np":
        return f"cuhk03_np/{dataset.options.get('subset', 'detected')}"
    if dataset.name == "msmt17" and not dataset.options.get("with_val", True):
        return "msmt17/without_val"
    if dataset.name == "sysu_mm01" and (dataset.options.get("mode"), dataset.options.get("shot")) != ("all", 1):
        return "sysu_mm01/other"
    return dataset.name


def split_counts(dataset: ReIDDataset) -> dict[str, int]:
    row: dict[str, int] = {}
    for split in SPLITS:
        samples = dataset.split(split)
        row[f"{split}_ids"] = len({s.pid for s in samples})
        row[f"{split}_images"] = len(samples)
    row["cameras"] = len({s.camid for split in SPLITS for s in dataset.split(split)})
    return row


def statistics_table(datasets: Iterable[ReIDDataset] | Mapping[str, ReIDDataset]) -> pd.DataFrame:
    """One row per dataset: ids and images per split, cameras, IR share, options."""
    items = datasets.items() if isinstance(datasets, Mapping) else ((d.name, d) for d in datasets)
    rows = []
    for label, dataset in items:
        row: dict[str, Any] = {"dataset": label, **split_counts(dataset)}
        everything = [s for split in SPLITS for s in dataset.split(split)]
        row["ir_images"] = sum(s.modality == "ir" for s in everything)
        row["options"] = ", ".join(f"{k}={v}" for k, v in dataset.options.items())
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


def compare_with_published(dataset: ReIDDataset) -> pd.DataFrame:
    """Measured vs published ids / images per split (and cameras); ``match`` is NaN where unknown."""
    reference = published_statistics.get(published_key(dataset), {})
    measured = split_counts(dataset)
    rows = []
    for split in SPLITS:
        expected = reference.get(split, (None, None))
        for position, what in enumerate(("ids", "images")):
            rows.append((split, what, measured[f"{split}_{what}"], expected[position]))
    rows.append(("all", "cameras", measured["cameras"], reference.get("cameras")))
    frame = pd.DataFrame(rows, columns=["split", "count", "measured", "published"])
    frame["published"] = frame["published"].astype("Float64")
    frame["match"] = (frame["measured"] == frame["published"]).astype("boolean")
    frame.attrs["dataset"] = dataset.name
    frame.attrs["published_key"] = published_key(dataset) if reference else None
    return frame.set_index(["split", "count"])
