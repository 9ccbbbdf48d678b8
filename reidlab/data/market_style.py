"""Market-style releases: ``bounding_box_train``, ``query``, ``bounding_box_test`` with ``<pid>_c<cam>...`` names.

Covers Market-1501, DukeMTMC-reID, CUHK03-NP (detected / labeled) and Occluded-Duke. Rules:
pid -1 (Market junk) is dropped from every split and counted in ``ReIDDataset.dropped``; pid 0
(Market distractors) stays in the gallery; cameras become 0-based; files are sorted; train pids
are relabelled 0..N-1 in sorted order of the original pids (original kept as ``raw_pid``).
"""

from __future__ import annotations

import re
from pathlib import Path

from reidlab.data.parsing import find_dataset_root, finish, list_images, match_names, relabel, require_dir
from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import register_dataset

# pid: digits, or -1 (Market junk); ASCII digits only, so int() always succeeds on a match
MARKET_PATTERN = re.compile(r"(-1|\d+)_c(\d+)", re.ASCII)
SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def market_layout(example: str, prefix: str = "") -> str:
    return "\n".join(f"  <root>/{prefix}{folder}/{example}" for folder in SPLIT_FOLDERS.values())


def parse_market_folder(
    folder: Path, dataset: str, num_cams: int, skipped: list[tuple[str, str]]
) -> tuple[list[Sample], int]:
    """Samples of one split folder (original pids) and the number of junk (pid -1) images dropped."""
    samples: list[Sample] = []
    junk = 0
    for path, found in match_names(list_images(folder, skipped), MARKET_PATTERN, skipped):
        pid, cam = int(found.group(1)), int(found.group(2))
        if pid == -1:
            junk += 1
            continue
        if not 1 <= cam <= num_cams:
            reason = f"{dataset}: camera {cam} outside 1..{num_cams}"
            skipped.append((str(path), reason))
            continue
        samples.append(Sample(path=as_path_str(path), pid=pid, camid=cam - 1))
    return samples, junk


def load_market_style(
    root: str | Path | None,
    *,
    name: str,
    candidates: tuple[str, ...],
    num_cams: int,
    example: str,
    prefix: str = "",
    options: dict | None = None,
) -> ReIDDataset:
    """Parse a Market-style release found at/under ``root``; ``prefix`` is a sub-folder (CUHK03-NP subset)."""
    layout = market_layout(example, prefix)
    markers = [f"{prefix}{folder}" for folder in SPLIT_FOLDERS.values()]
    folder = find_dataset_root(root, name, candidates, markers, layout)
    dataset = ReIDDataset(name=name, root=str(folder), options=dict(options or {}))
    for split, sub in SPLIT_FOLDERS.items():
        split_dir = require_dir(folder / prefix / sub, name, layout)
        samples, junk = parse_market_folder(split_dir, name, num_cams, dataset.skipped)
        setattr(dataset, split, relabel(samples) if split == "train" else samples)
        if junk:
            dataset.dropped[split] = junk
    if dataset.dropped:
        dataset.notes.update({split: "junk pid -1 dropped" for split in dataset.dropped})
    return finish(dataset)


@register_dataset("market1501")
def load_market1501(root: str | Path | None = None) -> ReIDDataset:
    """Market-1501 (6 cameras); pid 0 distractors kept in the gallery, pid -1 junk dropped."""
    dataset = load_market_style(
        root,
        name="market1501",
        candidates=("Market-1501-v15.09.15", "Market-1501", "market1501", "Market1501", "market"),
        num_cams=6,
        example="0002_c1s1_000451_03.jpg",
    )
    if any(s.pid == 0 for s in dataset.gallery):
        dataset.notes["gallery"] = ", ".join(filter(None, [dataset.notes.get("gallery"), "distractors pid 0 kept"]))
    return dataset


@register_dataset("dukemtmc")
def load_dukemtmc(root: str | Path | None = None) -> ReIDDataset:
    """DukeMTMC-reID (8 cameras). The set was withdrawn by its creators: record your copy's provenance."""
    return load_market_style(
        root,
        name="dukemtmc",
        candidates=("DukeMTMC-reID", "dukemtmcreid", "dukemtmc-reid", "DukeMTMC", "dukemtmc"),
        num_cams=8,
        example="0001_c2_f0046182.jpg",
    )


@register_dataset("occluded_duke")
def load_occluded_duke(root: str | Path | None = None) -> ReIDDataset:
    """Occluded-Duke (Duke layout and naming, 8 cameras; all queries occluded)."""
    return load_market_style(
        root,
        name="occluded_duke",
        candidates=("Occluded_Duke", "Occluded-Duke", "occluded_duke", "OccludedDuke", "occluded-duke"),
        num_cams=8,
        example="0001_c2_f0046182.jpg",
    )


@register_dataset("cuhk03_np")
def load_cuhk03_np(root: str | Path | None = None, subset: str = "detected") -> ReIDDataset:
    """CUHK03-NP (767/700 split, Zhong et al. 2017): ``subset`` is "detected" or "labeled"."""
    if subset not in ("detected", "labeled"):
        raise ValueError(f"cuhk03_np: subset must be 'detected' or 'labeled', got {subset!r}")
    dataset = load_market_style(
        root,
        name="cuhk03_np",
        candidates=("cuhk03-np", "cuhk03_np", "CUHK03-NP", "CUHK03_NP", "cuhk03"),
        num_cams=2,
        example="0001_c1_1.png",
        prefix=f"{subset}/",
        options={"subset": subset},
    )
    dataset.notes["train"] = f"{subset} boxes"
    return dataset
