"""The lab's small CLIP: an open_clip ``CLIP`` with a custom config, pretrained on the synthetic world's captions.

Image tower: a ViT (width 192, 4 layers, patch 16) at 128×64; text tower: width 128, 4 layers, context 64;
a 128-d joint space and CLIP's learnable temperature — 2.9 M parameters. It is built with open_clip (never a
copy of CLIP) and tokenised with open_clip's own BPE tokenizer; only the embedding table is compact: the
BPE ids the lab's texts can produce (every word of the synthetic world's description grammar, attribute
and prompt words) get rows, any other BPE id maps to one ``<unk>`` row. Id 0 pads, 1 starts, the last id
ends a text — the largest id, so CLIP's argmax pooling finds the end token as in OpenAI's CLIP.
``create_lab_clip(pretrained)`` returns ``(model, tokenizer)``; weights resolve through :mod:`reidlab.weights`
under the name :data:`LAB_CLIP_NAME` (made by ``python -m reidlab.pretrain --model clip_tiny_synth``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn

from reidlab.preprocessing import Preprocessing, attach_preprocessing
from reidlab.weights import Pretrained, load_into, resolve_weights

LAB_CLIP_NAME = "clip_tiny_synth"
IMAGE_SIZE = (128, 64)
CONTEXT_LENGTH = 64
PAD, SOT, UNK = 0, 1, 2

#: Every word the lab's texts use: the synthetic world's description grammar (colour, hair, garment, pattern
#: and build names; a test checks that its descriptions tokenize without unknowns), prompt and attribute
#: words (CLIP prompts, DMF's attribute sentences, Market's attribute names), punctuation and digits.
VOCABULARY_WORDS = (
    "black white grey dark navy blue light red maroon pink purple green olive beige brown yellow orange blond "
    "man woman thin average broad slim heavy-set short medium long t-shirt shirt jacket plain striped checked "
    "logo trousers shorts skirt backpack handbag hat with hair and a in over top shoes carrying "
    "an the photo image picture of person people pedestrian male female boy girl someone who is wearing wears "
    "on at holding walking standing seen from front back side view left right rear indoor outdoor street "
    "campus scene road building winter night young adult old teenager child sleeves sleeve upper lower body "
    "clothing clothes bottom pants dress jeans coat cap bag boots bald colour color unknown no not X "
    ". , ; : - ' \" ( ) 0 1 2 3 4 5 6 7 8 9"
)


@functools.lru_cache(maxsize=1)
def _bpe():
    import open_clip

    return open_clip.get_tokenizer("ViT-B-16")


def default_vocabulary(extra_texts: Iterable[str] = ()) -> list[int]:
    """The sorted BPE ids of :data:`VOCABULARY_WORDS` and ``extra_texts``."""
    tokenizer = _bpe()
    ids: set[int] = set()
    for text in [*VOCABULARY_WORDS.split(), *extra_texts]:
        ids.update(tokenizer.encode(text))
        ids.update(tokenizer.encode(f"a {text}")[1:])  # BPE merges can depend on a leading space
    return sorted(ids)


class CompactTokenizer:
    """open_clip's BPE tokenizer followed by a map of BPE ids onto the compact embedding table."""

    def __init__(self, vocabulary: Sequence[int], context_length: int = CONTEXT_LENGTH) -> None:
        if context_length < 3:
            raise ValueError(f"context_length must be >= 3, got {context_length}")
        self.vocabulary = [int(v) for v in vocabulary]
        self.index = {bpe: UNK + 1 + i for i, bpe in enumerate(self.vocabulary)}
        self.eot = UNK + 1 + len(self.vocabulary)
        self.vocab_size = self.eot + 1
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        """Compact ids of ``text`` without start / end tokens (unknown BPE ids become ``<unk>``)."""
        return [self.index.get(bpe, UNK) for bpe in _bpe().encode(text)]

    def __call__(self, texts: str | Sequence[str]) -> torch.Tensor:
        """``(N, context_length)`` long tensor: start, tokens (truncated), end, padding."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.full((len(texts), self.context_length), PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [SOT, *self.encode(text)[: self.context_length - 2], self.eot]
            out[row, : len(ids)] = torch.tensor(ids)
        return out

    def unknown_share(self, texts: Sequence[str]) -> float:
        """Fraction of BPE tokens of ``texts`` that fall outside the vocabulary."""
        tokens = [t for text in texts for t in self.encode(text)]
        return sum(t == UNK for t in tokens) / max(len(tokens), 1)


def lab_clip_config(vocab_size: int) -> dict[str, Any]:
    """The open_clip ``CLIP`` keyword arguments of the lab's small CLIP."""
    return {
        "embed_dim": 128,
        "vision_cfg": {"image_size": IMAGE_SIZE, "patch_size": 16, "width": 192, "layers": 4, "head_width": 64},
        "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": vocab_size, "width": 128, "heads": 4,
                     "layers": 4},
    }  # fmt: skip


def create_lab_clip(pretrained: Pretrained = "auto") -> tuple[nn.Module, CompactTokenizer]:
    """The lab's small CLIP (open_clip ``CLIP``) and its tokenizer; weights resolve like every backbone's.

    The model carries ``preprocessing`` (128×64, CLIP normalisation, bicubic) and ``pretrained_weights``.
    A weight file built on another vocabulary is an error naming the file.
    """
    import open_clip

    path = resolve_weights(LAB_CLIP_NAME, pretrained)
    vocabulary = default_vocabulary()
    if path is not None:
        stored = read_vocabulary(path)
        if stored is not None and stored != vocabulary:
            raise ValueError(
                f"{path}: built on another vocabulary ({len(stored)} BPE ids, this lab's has {len(vocabulary)}); "
                f"remake it with `python -m reidlab.pretrain --model {LAB_CLIP_NAME}`"
            )
    tokenizer = CompactTokenizer(vocabulary)
    model = open_clip.CLIP(**lab_clip_config(tokenizer.vocab_size))
    report = load_into(model, path) if path is not None else None
    model.pretrained_weights = None if report is None else report.record()
    return attach_preprocessing(model, Preprocessing(IMAGE_SIZE, "clip", "bicubic")), tokenizer


def read_vocabulary(path) -> list[int] | None:
    """The vocabulary stored in a lab CLIP weight file's metadata (None for files without one)."""
    from safetensors import safe_open

    if str(path).endswith(".safetensors"):
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        return json.loads(meta["vocabulary"]) if "vocabulary" in meta else None
    return None


class ClipImageEmbedding(nn.Module):
    """An open_clip ``CLIP``'s image tower as a ReID model: eval ``forward(images, camids=None)`` is the
    L2-normalised image embedding; the text tower stays in ``clip`` for text queries (``encode_texts``)."""

    def __init__(self, clip: nn.Module, tokenizer: CompactTokenizer | None = None) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        if hasattr(clip, "preprocessing"):
            self.preprocessing = clip.preprocessing

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        return self.clip.encode_image(images, normalize=True)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """L2-normalised text embeddings ``(N, D)`` of ``texts`` (needs the tokenizer)."""
        if self.tokenizer is None:
            raise ValueError("ClipImageEmbedding was built without a tokenizer; pass the one create_lab_clip returned")
        device = next(self.clip.parameters()).device
        chunks = [self.clip.encode_text(self.tokenizer(texts[i : i + batch_size]).to(device), normalize=True)
                  for i in range(0, len(texts), batch_size)]  # fmt: skip
        return torch.cat(chunks).float().cpu()
