"""Figures and tables that show a generated world: identities per camera, occlusion, infrared, descriptions.

Each function takes a parsed synthetic dataset (``load_dataset("synth_...")``) and reads the world's
``manifest.csv`` / ``attributes.json`` beside the images. Plots return their ``Figure`` and accept
``save`` like :mod:`reidlab.data.stats` (a file name under ``figures_dir()`` or a path).
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

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


def _save(fig: Figure, save: str | os.PathLike | None) -> None:
    if save is not None:
        from reidlab.viz.figures import save_figure

        save_figure(fig, save)


def _show(ax, path: str, title: str | None = None) -> None:
    from reidlab.viz.images import load_image

    ax.imshow(load_image(path, size=(128, 64)))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def camera_montage(
    dataset: ReIDDataset, num_ids: int = 6, split: str = "train", save: str | os.PathLike | None = None
) -> Figure:
    """A row per identity (those seen by most cameras), a column per camera: one image where it was seen."""
    table = manifest(dataset)
    table = table[table["split"].isin([split, "val"] if split == "train" else [split])]
    cams = sorted(table["camid"].unique())
    spread = table.groupby("identity")["camid"].nunique().sort_values(ascending=False, kind="stable")
    chosen = list(spread.index[:num_ids])
    fig, axes = plt.subplots(len(chosen), len(cams), figsize=(0.9 * len(cams) + 0.6, 1.75 * len(chosen) + 0.4),
                             squeeze=False)
    for r, ident in enumerate(chosen):
        mine = table[table["identity"] == ident]
        for c, cam in enumerate(cams):
            ax = axes[r, c]
            shots = mine[mine["camid"] == cam]
            if len(shots):
                _show(ax, shots["path"].iloc[len(shots) // 2], f"cam {cam}" if r == 0 else None)
            else:
                ax.axis("off")
                if r == 0:
                    ax.set_title(f"cam {cam}", fontsize=7)
        axes[r, 0].set_ylabel(f"pid {mine['pid'].iloc[0]}", fontsize=7)
    fig.suptitle(f"{dataset.name}: identities (rows) across cameras (columns)", fontsize=9)
    fig.tight_layout()
    _save(fig, save)
    return fig


def occlusion_examples(dataset: ReIDDataset, num: int = 8, save: str | os.PathLike | None = None) -> Figure:
    """Occluded images (top, with occluder and hidden body share) above unoccluded images of the same people."""
    table = manifest(dataset)
    occluded = table[table["occluder"] != "none"].drop_duplicates("identity")
    clean = table[table["occluder"] == "none"]
    pairs = [(row, clean[clean["identity"] == row.identity]) for row in occluded.itertuples()]
    pairs = [(row, match.iloc[0]) for row, match in pairs if len(match)][:num]
    if not pairs:
        raise ValueError(f"{dataset.name}: no occluded image with an unoccluded image of the same person")
    fig, axes = plt.subplots(2, len(pairs), figsize=(0.95 * len(pairs) + 0.4, 4.2), squeeze=False)
    for i, (occ, ref) in enumerate(pairs):
        _show(axes[0, i], occ.path, f"{occ.occluder}\n{100 * occ.hidden:.0f}% hidden")
        _show(axes[1, i], ref.path, "unoccluded")
    fig.suptitle(f"{dataset.name}: occluded (top) and unoccluded (bottom) images of the same people", fontsize=9)
    fig.tight_layout()
    _save(fig, save)
    return fig


def infrared_examples(dataset: ReIDDataset, num: int = 8, save: str | os.PathLike | None = None) -> Figure:
    """Visible (top) and infrared (bottom) images of the same people."""
    table = manifest(dataset)
    rgb, ir = table[table["modality"] == "rgb"], table[table["modality"] == "ir"]
    both = [i for i in dict.fromkeys(rgb["identity"]) if i in set(ir["identity"])][:num]
    if not both:
        raise ValueError(f"{dataset.name}: no identity has both visible and infrared images")
    fig, axes = plt.subplots(2, len(both), figsize=(0.95 * len(both) + 0.4, 4.0), squeeze=False)
    for i, ident in enumerate(both):
        a = rgb[rgb["identity"] == ident].iloc[0]
        b = ir[ir["identity"] == ident].iloc[0]
        _show(axes[0, i], a.path, f"pid {a.pid}\ncam {a.camid} rgb")
        _show(axes[1, i], b.path, f"cam {b.camid} ir")
    fig.suptitle(f"{dataset.name}: visible (top) and thermal (bottom) images of the same people", fontsize=9)
    fig.tight_layout()
    _save(fig, save)
    return fig


def description_examples(dataset: ReIDDataset, num: int = 6, save: str | os.PathLike | None = None) -> Figure:
    """Training identities with their ground-truth one-sentence descriptions."""
    table = manifest(dataset)
    records = identities(dataset)
    train = table[table["split"] == "train"].drop_duplicates("identity").head(num)
    fig, axes = plt.subplots(1, len(train), figsize=(1.9 * len(train), 3.6), squeeze=False)
    for ax, row in zip(axes[0], train.itertuples(), strict=True):
        key = str(row.pid) if str(row.pid) in records else f"train/{row.pid}"
        _show(ax, row.path)
        ax.set_xlabel("\n".join(textwrap.wrap(records[key]["description"], 28)), fontsize=6)
    fig.suptitle(f"{dataset.name}: identities and their descriptions", fontsize=9)
    fig.tight_layout()
    _save(fig, save)
    return fig


def description_table(dataset: ReIDDataset, num: int = 10) -> pd.DataFrame:
    """The first ``num`` identities' keys, splits and descriptions."""
    rows = [{"key": key, "splits": ", ".join(rec["splits"]), "description": rec["description"]}
            for key, rec in list(identities(dataset).items())[:num]]
    return pd.DataFrame(rows)
