"""Text in the loop for CLIP ReID models (:class:`~reidlab.models.clip_reid.ClipReID`): people retrieved by a sentence,
the vocabulary words nearest to learned identity tokens, and image–text similarity maps over the patch grid.

:class:`TextQueryModel` puts a CLIP ReID model in the joint image–text space (eval output: the L2-normalised
``f_proj``; ``encode_texts``: its text tower), the interface of :func:`reidlab.pretrain.checks.text_to_image`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from matplotlib.figure import Figure

from reidlab.viz.figures import save_figure
from reidlab.viz.images import load_image, overlay_heatmap
from reidlab.viz.ranking import MATCH_COLOR, MISMATCH_COLOR


class TextQueryModel(nn.Module):
    """A CLIP ReID model in CLIP's joint space: eval ``forward`` = normalised ``f_proj``; ``encode_texts``: its text."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if getattr(model, "text_encoder", None) is None:
            raise ValueError("TextQueryModel needs a CLIP ReID model with its text tower (text=True)")
        self.model = model
        self.preprocessing = model.preprocessing

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.model.image_encoder(images)["f_proj"].float(), dim=-1)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        return self.model.encode_texts(texts, batch_size=batch_size)


def token_words(tokenizer: Any, vocab_size: int) -> list[str]:
    """The word (BPE piece) of every row of a CLIP token-embedding table: open_clip's BPE tokenizer, or the lab's
    compact one (its rows map onto BPE ids; ``<pad>``, ``<start>``, ``<unk>``, ``<end>`` for the special rows)."""
    from open_clip.tokenizer import SimpleTokenizer

    def piece(bpe: int, decoder: dict[int, str]) -> str:
        return decoder.get(bpe, f"<{bpe}>").replace("</w>", "")

    vocabulary = getattr(tokenizer, "vocabulary", None)
    if vocabulary is not None:  # reidlab.models.lab_clip.CompactTokenizer
        decoder = SimpleTokenizer().decoder
        words = ["<pad>", "<start>", "<unk>"] + [piece(b, decoder) for b in vocabulary] + ["<end>"]
        return (words + [f"<{i}>" for i in range(len(words), vocab_size)])[:vocab_size]
    decoder = getattr(tokenizer, "decoder", None) or SimpleTokenizer().decoder
    return [piece(i, decoder) for i in range(vocab_size)]


@torch.no_grad()
def nearest_words(model: nn.Module, identities: Sequence[int] | None = None, k: int = 5) -> pd.DataFrame:
    """For each learned token of each identity (``prompt_learner.cls_ctx``), the ``k`` vocabulary words whose token
    embeddings are nearest in cosine similarity; one row per (identity, token position)."""
    learner, encoder = model.prompt_learner, model.text_encoder
    table = F.normalize(encoder.token_embedding.weight.float(), dim=-1)
    words = token_words(model.tokenizer, table.shape[0])
    identities = list(range(min(learner.num_classes, 4))) if identities is None else list(identities)
    rows = []
    for pid in identities:
        ctx = F.normalize(learner.cls_ctx[pid].float(), dim=-1)
        sims, index = (ctx @ table.T).topk(k, dim=-1)
        for position in range(ctx.shape[0]):
            found = ", ".join(f"{words[i]} ({s:.2f})" for i, s in zip(index[position].tolist(), sims[position].tolist(),
                                                                       strict=True))  # fmt: skip
            rows.append({"identity": pid, "token": position + 1, "nearest words (cosine)": found})
    return pd.DataFrame(rows)


@torch.no_grad()
def rank_by_text(query: TextQueryModel, gallery: Sequence[Any], sentences: Sequence[str], *, device: Any = "cpu",
                 batch_size: int = 128) -> torch.Tensor:  # fmt: skip
    """Indices of ``gallery`` samples by cosine similarity to each sentence: ``(len(sentences), len(gallery))``."""
    from reidlab.engine import extract_split_features

    feats = extract_split_features(query.eval(), list(gallery), device=device, batch_size=batch_size)["features"]
    text = query.encode_texts(list(sentences))
    return (text @ F.normalize(feats, dim=-1).T).argsort(dim=1, descending=True)


def plot_text_retrieval(query: TextQueryModel, gallery: Sequence[Any], sentences: Sequence[str],
                        targets: Sequence[int] | None = None, *, k: int = 6, device: Any = "cpu",
                        title: str | None = None, save: str | None = None) -> Figure:  # fmt: skip
    """One row per sentence: the top-``k`` gallery images (framed green when their pid is the sentence's target)."""
    order = rank_by_text(query, gallery, sentences, device=device)
    fig, axes = plt.subplots(len(sentences), k, figsize=(1.2 * k + 3.2, 2.3 * len(sentences)), squeeze=False)
    for row, sentence in enumerate(sentences):
        for col in range(k):
            ax = axes[row, col]
            sample = gallery[int(order[row, col])]
            ax.imshow(load_image(sample.path))
            ax.set_xticks([])
            ax.set_yticks([])
            if targets is not None:
                color = MATCH_COLOR if sample.pid == targets[row] else MISMATCH_COLOR
                for spine in ax.spines.values():
                    spine.set_edgecolor(color)
                    spine.set_linewidth(3)
        axes[row, 0].set_ylabel(_wrap(sentence), rotation=0, ha="right", va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, save)
    return fig


def _wrap(text: str, width: int = 34) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if len(line) + len(word) + 1 > width and line:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


@torch.no_grad()
def plot_similarity_maps(model: nn.Module, samples: Sequence[Any], texts: Sequence[str], *, device: Any = "cpu",
                         title: str | None = None, save: str | None = None) -> Figure:  # fmt: skip
    """Each image beside the cosine similarity of its patches (projected into the joint space) with each text."""
    from reidlab.engine.loaders import build_test_loader

    pre = model.preprocessing
    loader = build_test_loader(list(samples), image_size=pre.image_size, batch_size=len(samples),
                               interpolation=pre.interpolation, normalization=pre.normalization)  # fmt: skip
    images = next(iter(loader))["image"].to(device)
    model = model.eval().to(device)
    maps = model.patch_similarity(images, model.encode_texts(list(texts))).cpu().numpy()
    fig, axes = plt.subplots(len(samples), len(texts) + 1, figsize=(1.3 * (len(texts) + 1), 2.4 * len(samples)),
                             squeeze=False)  # fmt: skip
    for row, sample in enumerate(samples):
        rgb = load_image(sample.path, pre.image_size)
        axes[row, 0].imshow(rgb)
        for col, text in enumerate(texts, start=1):
            axes[row, col].imshow(overlay_heatmap(rgb, maps[row, col - 1], alpha=0.5))
            if row == 0:
                axes[row, col].set_title(_wrap(text, 14), fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, save)
    return fig
