"""The modality gap of a visible–infrared embedding: how far apart the RGB and IR features sit, against how tightly
each identity clusters — in numbers (:func:`modality_gap`) and as a picture (:func:`plot_modality_gap`).

All distances are Euclidean between L2-normalised features (the space cosine ranking works in). A model that
bridges the modalities brings the two modality centroids together relative to the spread of an identity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from reidlab.viz.figures import save_figure
from reidlab.viz.plots import embed_2d


def _np(values: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy() if values.is_floating_point() else values.cpu().numpy()
    return np.asarray(values, dtype=dtype)


def _codes(modalities: Any) -> np.ndarray:
    values = list(modalities.tolist() if isinstance(modalities, torch.Tensor | np.ndarray) else modalities)
    mapping = {"rgb": 0, "ir": 1, 0: 0, 1: 1}
    try:
        return np.array([mapping[v] for v in values], dtype=np.int64)
    except KeyError as error:
        raise ValueError(f"modalities must be 'rgb'/'ir' or 0/1, got {error.args[0]!r}") from None


@dataclass(frozen=True)
class ModalityGap:
    """``centroid_distance``: between the mean RGB and the mean IR feature; ``identity_spread``: mean distance of a
    feature to its identity's centroid (both modalities pooled); ``same_id_cross`` / ``same_id_within``: mean
    distance between two images of one identity in different / the same modality; ``ratio`` =
    centroid_distance / identity_spread."""

    centroid_distance: float
    identity_spread: float
    same_id_cross: float
    same_id_within: float
    ratio: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def modality_gap(features: Any, pids: Any, modalities: Any) -> ModalityGap:
    """The modality gap of ``features`` (N, D) with identity labels and modality labels (0 / "rgb", 1 / "ir")."""
    x = _np(features, np.float64)
    pids, codes = _np(pids), _codes(modalities)
    if x.ndim != 2 or not len(x) == len(pids) == len(codes):
        raise ValueError(f"features (N, D), pids and modalities must have one entry per image; got {x.shape}, "
                         f"{len(pids)}, {len(codes)}")  # fmt: skip
    if not ((codes == 0).any() and (codes == 1).any()):
        raise ValueError("modality_gap needs images of both modalities")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centroid = float(np.linalg.norm(x[codes == 0].mean(0) - x[codes == 1].mean(0)))
    spread, cross, within = [], [], []
    for pid in np.unique(pids):
        members = pids == pid
        xs, cs = x[members], codes[members]
        spread.extend(np.linalg.norm(xs - xs.mean(0), axis=1).tolist())
        dist = np.linalg.norm(xs[:, None] - xs[None], axis=2)
        upper = np.triu(np.ones_like(dist, dtype=bool), k=1)
        different = cs[:, None] != cs[None, :]
        cross.extend(dist[upper & different].tolist())
        within.extend(dist[upper & ~different].tolist())
    identity_spread = float(np.mean(spread))
    same_cross = float(np.mean(cross)) if cross else float("nan")
    same_within = float(np.mean(within)) if within else float("nan")
    return ModalityGap(centroid, identity_spread, same_cross, same_within, centroid / max(identity_spread, 1e-12))


def plot_modality_gap(
    stages: Mapping[str, tuple[Any, Any, Any]],
    *,
    max_identities: int = 12,
    seed: int = 0,
    title: str | None = None,
    save: str | os.PathLike | None = None,
) -> Figure:
    """One t-SNE map per stage (e.g. ``{"before training": (feats, pids, modalities), "after": ...}``), colour =
    identity, marker = modality (o RGB, ^ IR), and a bar chart of the modality-centroid distance against the
    within-identity spread per stage. At most ``max_identities`` identities (random, ``seed``) are drawn."""
    if not stages:
        raise ValueError("stages: expected at least one (features, pids, modalities) entry")
    names = list(stages)
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.3 * len(names) + 4.3, 4.4))
    gaps = {}
    for ax, name in zip(axes[:-1], names, strict=True):
        feats, pids, modalities = stages[name]
        x, pids, codes = _np(feats, np.float64), _np(pids), _codes(modalities)
        gaps[name] = modality_gap(x, pids, codes)
        ids = np.unique(pids)
        if len(ids) > max_identities:
            ids = np.sort(np.random.default_rng(seed).choice(ids, max_identities, replace=False))
        keep = np.isin(pids, ids)
        xy = embed_2d(x[keep], seed=seed)
        colours = plt.get_cmap("tab20")(np.searchsorted(ids, pids[keep]) % 20)
        for code, marker, label in ((0, "o", "RGB"), (1, "^", "IR")):
            m = codes[keep] == code
            ax.scatter(xy[m, 0], xy[m, 1], c=colours[m], marker=marker, s=22, edgecolors="k", linewidths=0.3,
                       label=label)  # fmt: skip
        ax.set_title(f"{name}\ncentroid gap {gaps[name].centroid_distance:.2f}, ID spread "
                     f"{gaps[name].identity_spread:.2f}", fontsize=9)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=8, loc="best")
    bars = axes[-1]
    width = 0.38
    positions = np.arange(len(names))
    bars.bar(positions - width / 2, [gaps[n].centroid_distance for n in names], width, label="RGB–IR centroid distance")
    bars.bar(positions + width / 2, [gaps[n].identity_spread for n in names], width, label="within-identity spread")
    bars.set_xticks(positions, names, fontsize=8)
    bars.set_ylabel("distance (L2-normalised features)")
    bars.set_title("modality gap vs identity spread", fontsize=9)
    bars.legend(fontsize=8)
    fig.suptitle(title or "Modality gap (t-SNE; colour = identity, o = RGB, ^ = IR)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, save)
    return fig
