"""Pictures of DMF's text path: image and text embeddings in one 2-D map, and the attention image tokens pay to the
words of the concatenated sequence."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from reidlab.viz.figures import save_figure
from reidlab.viz.plots import embed_2d


def plot_modality_map(
    embeddings: Mapping[str, Any],
    *,
    seed: int = 0,
    title: str | None = None,
    save: str | os.PathLike | None = None,
) -> Figure:
    """One t-SNE map of image embeddings (dots) and text embeddings (stars, outlined) coloured by identity
    (:func:`reidlab.methods.dmf_analysis.modality_embeddings`'s output). Features are centred by the mean over both
    modalities first, so the map shows how they differ rather than the component they share."""
    image = embeddings["image"].float() if isinstance(embeddings["image"], torch.Tensor) else torch.as_tensor(
        embeddings["image"]).float()  # fmt: skip
    text = torch.as_tensor(embeddings["text"]).float()
    both = torch.cat([image, text])
    xy = embed_2d(both - both.mean(0, keepdim=True), seed=seed, perplexity=15.0)
    ipids, tpids = np.asarray(embeddings["image_pids"]), np.asarray(embeddings["text_pids"])
    ids = np.unique(np.concatenate([ipids, tpids]))
    colours = matplotlib.colormaps["tab20"].resampled(max(len(ids), 2))
    colour = {p: colours(i) for i, p in enumerate(ids)}
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    n = len(image)
    ax.scatter(xy[:n, 0], xy[:n, 1], c=[colour[p] for p in ipids], s=16, alpha=0.75, label="image")
    ax.scatter(xy[n:, 0], xy[n:, 1], c=[colour[p] for p in tpids], s=170, marker="*", edgecolors="black",
               linewidths=0.8, label="text")  # fmt: skip
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or f"images (dots) and texts (stars) of {len(ids)} identities, one colour each")
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def plot_text_attention(
    attention: Mapping[str, Any],
    images: Sequence[np.ndarray],
    *,
    titles: Sequence[str] | None = None,
    save: str | os.PathLike | None = None,
) -> Figure:
    """Per sample: the image, then a bar per text token of the attention its image tokens (CLS and patches, heads
    averaged) pay to that token (:func:`reidlab.methods.dmf_analysis.text_attention`'s output)."""
    weights, tokens = attention["weights"], attention["tokens"]
    rows = len(tokens)
    fig, axes = plt.subplots(rows, 2, figsize=(12.0, 1.9 * rows), gridspec_kw={"width_ratios": [1, 9]}, squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(images[i])
        axes[i, 0].axis("off")
        names = tokens[i]
        values = weights[i, : len(names)].numpy()
        axes[i, 1].bar(range(len(names)), values, color="tab:blue")
        axes[i, 1].set_xticks(range(len(names)))
        axes[i, 1].set_xticklabels(names, rotation=60, fontsize=7, ha="right")
        axes[i, 1].set_ylabel("attention", fontsize=8)
        share = float(attention["text_share"][i])
        label = titles[i] if titles is not None else f"sample {i}"
        axes[i, 1].set_title(f"{label}: {100 * share:.1f} % of the image tokens' attention goes to text", fontsize=8)
    fig.tight_layout()
    save_figure(fig, save)
    return fig
