"""Pictures of a dataset: images per identity and per camera, one identity across cameras, and for a
synthetic world its identities across cameras, occluded and infrared images, and identity descriptions.

The tables behind them live in :mod:`reidlab.data.stats` and :mod:`reidlab.data.synthetic.showcase`;
``reidlab.data`` draws nothing. Every function returns its matplotlib ``Figure`` and takes ``save``
like every figure of :mod:`reidlab.viz` (see :func:`reidlab.viz.figures.save_figure`).
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterable

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from reidlab.data.records import SPLITS, ReIDDataset
from reidlab.data.synthetic.showcase import identities, manifest
from reidlab.viz.figures import save_figure
from reidlab.viz.images import load_image


# ----------------------------------------------------------------------------- any dataset
def plot_images_per_identity(
    dataset: ReIDDataset, splits: Iterable[str] = ("train", "gallery"), save: str | os.PathLike | None = None
) -> Figure:
    """Histogram of images per identity for each split that has samples."""
    import seaborn as sns

    frames = []
    for split in splits:
        pids = pd.Series([s.pid for s in dataset.split(split)], dtype="int64")
        if len(pids):
            counts = pids.value_counts()
            frames.append(pd.DataFrame({"images per identity": counts.to_numpy(), "split": split}))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if frames:
        table = pd.concat(frames, ignore_index=True)
        top = int(table["images per identity"].max())
        sns.histplot(data=table, x="images per identity", hue="split", bins=np.arange(0.5, top + 1.5),
                     multiple="dodge", shrink=0.8, ax=ax)
    ax.set_ylabel("identities")
    ax.set_title(f"{dataset.name}: images per identity")
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def plot_images_per_camera(dataset: ReIDDataset, save: str | os.PathLike | None = None) -> Figure:
    """Images per camera (0-based camid) and split; IR cameras are labelled."""
    import seaborn as sns

    table = pd.DataFrame(
        [{"camera": s.camid, "split": split, "modality": s.modality}
         for split in SPLITS for s in dataset.split(split)]
    )
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * (table["camera"].nunique() if len(table) else 1) + 3), 3.5))
    if len(table):
        ir = set(table.loc[table["modality"] == "ir", "camera"])
        table["camera"] = [f"{c} (ir)" if c in ir else str(c) for c in table["camera"]]
        order = sorted(table["camera"].unique(), key=lambda name: int(name.split()[0]))
        sns.countplot(data=table, x="camera", hue="split", order=order, ax=ax)
        ax.legend(title="split", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylabel("images")
    ax.set_title(f"{dataset.name}: images per camera")
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def identity_montage(
    dataset: ReIDDataset,
    pid: int | None = None,
    split: str = "train",
    per_camera: int = 3,
    image_size: tuple[int, int] = (128, 64),
    save: str | os.PathLike | None = None,
) -> Figure:
    """One identity across cameras: a column per camera, up to ``per_camera`` images each.

    ``pid`` defaults to the identity of ``split`` seen by the most cameras.
    """
    samples = dataset.split(split)
    if not samples:
        raise ValueError(f"{dataset.name}: split {split!r} is empty; choose another split for the montage")
    if pid is None:
        cameras: dict[int, set[int]] = {}
        for s in samples:
            cameras.setdefault(s.pid, set()).add(s.camid)
        pid = max(sorted(cameras), key=lambda p: len(cameras[p]))
    mine = [s for s in samples if s.pid == pid]
    if not mine:
        raise ValueError(f"{dataset.name}: identity {pid} has no images in split {split!r}")
    by_camera: dict[int, list] = {}
    for s in mine:
        by_camera.setdefault(s.camid, []).append(s)
    cols, rows = len(by_camera), min(per_camera, max(len(v) for v in by_camera.values()))
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols + 0.4, 2.1 * rows + 0.5), squeeze=False)
    for col, (camid, items) in enumerate(sorted(by_camera.items())):
        for row in range(rows):
            ax = axes[row, col]
            ax.axis("off")
            if row < len(items):
                ax.imshow(load_image(items[row].path, size=image_size))
            if row == 0:
                ax.set_title(f"cam {camid}\n{items[0].modality}", fontsize=8)
    fig.suptitle(f"{dataset.name} {split}: identity {pid} ({len(mine)} images, {cols} cameras)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, save)
    return fig


# ----------------------------------------------------------------------------- a synthetic world
def _show(ax: Axes, path: str, title: str | None = None) -> None:
    ax.imshow(load_image(path, size=(128, 64)))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def camera_montage(
    dataset: ReIDDataset, num_ids: int = 6, split: str = "train", save: str | os.PathLike | None = None
) -> Figure:
    """Synthetic world: a row per identity (those seen by most cameras), a column per camera, one image each."""
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
    save_figure(fig, save)
    return fig


def occlusion_examples(dataset: ReIDDataset, num: int = 8, save: str | os.PathLike | None = None) -> Figure:
    """Synthetic world: occluded images (top) above unoccluded images of the same people (bottom).

    Each occluded image is titled with its occluder and the share of the body it hides.
    """
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
    save_figure(fig, save)
    return fig


def infrared_examples(dataset: ReIDDataset, num: int = 8, save: str | os.PathLike | None = None) -> Figure:
    """Synthetic world: visible (top) and infrared (bottom) images of the same people."""
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
    save_figure(fig, save)
    return fig


def description_examples(dataset: ReIDDataset, num: int = 6, save: str | os.PathLike | None = None) -> Figure:
    """Synthetic world: training identities with their ground-truth one-sentence descriptions."""
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
    save_figure(fig, save)
    return fig
