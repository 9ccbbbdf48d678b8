"""Difficulty card: how far untrained or shallow matchers get on each synthetic world.

Matchers:

* ``colour histogram`` — joint HSV histograms (8 x 4 x 4 bins) of three horizontal stripes of the
  whole image, Hellinger-normalised, cosine distance. No training.
* ``colour histogram, grey-world`` — the same on the central part of the box (where the body is)
  after per-image grey-world normalisation, which undoes most of a camera's colour cast and
  brightness: the strongest colour-only matcher here. If it solved a world, colour alone would.
* ``colour histogram, grey-world + LDA`` — those features with a linear discriminant metric learned
  on a world's *train* split (in-domain: train and test on the same world; cross-domain: learned
  on one world, tested on another). The gap is a first view of how much the domains differ.
* ``random ResNet-18`` — timm ``resnet18`` with random weights (fixed seed), eval mode, global
  average pooled features, cosine distance. No training.

Every number is mAP / Rank-1 under the world's protocol (market; sysu for SYSU, regdb for RegDB),
standard (non-interpolated) AP, no re-ranking, no flip TTA.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from reidlab.markdown import markdown_table
from reidlab.paths import figures_dir

DEFAULT_WORLDS = ("synth_market", "synth_duke", "synth_msmt", "synth_cuhk03_np", "synth_occluded_duke",
                  "synth_occluded_reid", "synth_sysu", "synth_regdb")
DEFAULT_PAIRS = (("synth_market", "synth_duke"), ("synth_duke", "synth_market"))
PROTOCOL = {"sysu_mm01": "sysu", "regdb": "regdb"}


def load_images(paths: Sequence[str], size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """uint8 (N, H, W, 3) images resized to ``size`` (height, width)."""
    out = np.empty((len(paths), size[0], size[1], 3), np.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            out[i] = np.asarray(im)
    return out


def _hsv(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB in 0..1 -> HSV in 0..1."""
    r, g, b = images[:, 0], images[:, 1], images[:, 2]
    maxc, _ = images.max(1)
    minc, _ = images.min(1)
    delta = maxc - minc
    sat = torch.where(maxc > 0, delta / maxc.clamp_min(1e-6), torch.zeros_like(maxc))
    d = delta.clamp_min(1e-6)
    hue = torch.where(maxc == r, ((g - b) / d) % 6, torch.where(maxc == g, (b - r) / d + 2, (r - g) / d + 4)) / 6
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    return torch.stack([hue, sat, maxc], 1)


def grey_world_centre(images: np.ndarray) -> np.ndarray:
    """Central part of the box (rows 8-94 %, columns 25-75 %) with each image's mean colour set to grey."""
    _, h, w, _ = images.shape
    crop = images[:, int(0.08 * h) : int(0.94 * h), int(0.25 * w) : int(0.75 * w)].astype(np.float32)
    crop = crop * (110.0 / crop.mean(axis=(1, 2), keepdims=True).clip(min=1.0))
    return np.clip(crop, 0, 255).astype(np.uint8)


def colour_histograms(images: np.ndarray, bins: tuple[int, int, int] = (8, 4, 4), stripes: int = 3) -> np.ndarray:
    """Hellinger-normalised joint HSV histograms of ``stripes`` horizontal stripes: (N, stripes * prod(bins))."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    hsv = _hsv(x)
    idx = [(hsv[:, c] * bins[c]).long().clamp_(0, bins[c] - 1) for c in range(3)]
    code = (idx[0] * bins[1] + idx[1]) * bins[2] + idx[2]  # (N, H, W)
    n, h, _ = code.shape
    nb = bins[0] * bins[1] * bins[2]
    feats = []
    edges = np.linspace(0, h, stripes + 1).astype(int)
    for s in range(stripes):
        part = code[:, edges[s] : edges[s + 1]].reshape(n, -1)
        hist = torch.zeros(n, nb).scatter_add_(1, part, torch.ones_like(part, dtype=torch.float32))
        feats.append(torch.sqrt(hist / hist.sum(1, keepdim=True)))
    return torch.cat(feats, 1).numpy()


@torch.no_grad()
def random_resnet_features(
    images: np.ndarray, seed: int = 0, batch_size: int = 128, arch: str = "resnet18"
) -> np.ndarray:
    """Global-average-pooled features of a randomly initialised timm ResNet (eval mode)."""
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=0).eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2).float() / 255.0
        out.append(model((x - mean) / std))
    return torch.cat(out).numpy()


def fit_lda(feats: np.ndarray, pids: np.ndarray, dim: int = 64):
    """A shrinkage LDA projection learned on training features (returns a callable)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    n_comp = int(min(dim, len(np.unique(pids)) - 1, feats.shape[1]))
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage="auto", n_components=n_comp)
    lda.fit(feats, pids)
    return lda.transform


def _split_arrays(samples) -> tuple[list[str], np.ndarray, np.ndarray]:
    return ([s.path for s in samples], np.array([s.pid for s in samples]), np.array([s.camid for s in samples]))


def _evaluate(q: np.ndarray, g: np.ndarray, qa, ga, protocol: str) -> tuple[float, float, int]:
    from reidlab.evaluation import evaluate

    res = evaluate(q, g, qa[1], ga[1], qa[2], ga[2], metric="cosine", protocol=protocol)
    return float(res.mAP), float(res.cmc[0]), int(res.num_valid_queries)


def difficulty_card(
    worlds: Sequence[str] = DEFAULT_WORLDS,
    size: str = "mini",
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    root: str | Path | None = None,
    out_dir: str | Path | None = None,
    resnet: bool = True,
    seed: int = 0,
    image_size: tuple[int, int] = (128, 64),
) -> pd.DataFrame:
    """Compute the card for the synthetic ``worlds`` (generated at ``size`` if missing) and write
    ``difficulty_card_<size>.csv`` / ``.md`` under ``out_dir`` (default ``figures_dir()``).

    Images are read at ``image_size`` (height, width) for every matcher; the table records it.
    """
    from reidlab.data import load_dataset

    rows = []
    cache: dict[str, dict] = {}

    def data(name: str) -> dict:
        if name not in cache:
            ds = load_dataset(name, root=root, size=size)
            entry = {"protocol": PROTOCOL.get(ds.options.get("stands_for", ""), "market")}
            for split in ("train", "query", "gallery"):
                arrays = _split_arrays(ds.split(split))
                entry[split] = arrays
                entry[f"{split}_img"] = load_images(arrays[0], tuple(image_size)) if arrays[0] else None
            for split in ("train", "query", "gallery"):
                img = entry[f"{split}_img"]
                entry[f"{split}_hist"] = colour_histograms(img) if img is not None else None
                entry[f"{split}_grey"] = colour_histograms(grey_world_centre(img)) if img is not None else None
            cache[name] = entry
        return cache[name]

    def record(matcher: str, source: str, target: str, result: tuple[float, float, int], protocol: str) -> None:
        rows.append({"matcher": matcher, "train": source, "test": target, "size": size,
                     "image": f"{image_size[0]}x{image_size[1]}", "protocol": protocol,
                     "mAP": 100 * result[0], "rank1": 100 * result[1], "queries": result[2]})

    for name in worlds:
        d = data(name)
        if d["query_img"] is None:
            continue
        for matcher, key in (("colour histogram", "hist"), ("colour histogram, grey-world", "grey")):
            res = _evaluate(d[f"query_{key}"], d[f"gallery_{key}"], d["query"], d["gallery"], d["protocol"])
            record(matcher, "-", name, res, d["protocol"])
        if resnet:
            q = random_resnet_features(d["query_img"], seed)
            g = random_resnet_features(d["gallery_img"], seed)
            record("random ResNet-18", "-", name, _evaluate(q, g, d["query"], d["gallery"], d["protocol"]),
                   d["protocol"])
    for source, target in pairs:
        s = data(source)
        if s["train_grey"] is None:
            raise ValueError(f"{source} has no training split to learn the LDA metric on")
        project = fit_lda(s["train_grey"], s["train"][1])
        for tgt in dict.fromkeys([source, target]):
            t = data(tgt)
            res = _evaluate(project(t["query_grey"]), project(t["gallery_grey"]), t["query"], t["gallery"],
                            t["protocol"])
            record("colour histogram, grey-world + LDA", source, tgt, res, t["protocol"])
    table = pd.DataFrame(rows)
    out = Path(out_dir) if out_dir is not None else figures_dir()
    out.mkdir(parents=True, exist_ok=True)
    from reidlab.io import atomic_write_text

    atomic_write_text(out / f"difficulty_card_{size}.csv", table.to_csv(index=False, float_format="%.1f"))
    atomic_write_text(out / f"difficulty_card_{size}.md", markdown_table(table))
    return table
