"""Token-level text features from a CLIP text tower: DMF's "Text Encoder" (methods spec §1.2).

:class:`TextTokenEncoder` holds an open_clip ``CLIP``'s own text modules (token embedding, position embedding,
causal transformer, final LN) and its tokenizer, and returns the feature of *every* token (not only the pooled end
token): ``forward(texts) -> (tokens (T, L, W), valid (T, L))``, where ``valid`` marks the start token, the words
and the end token and ``L`` is the longest text of the batch (the causal mask means no token sees a later one, so
cutting the context there is exact). Two towers are registered by name (:data:`TEXT_ENCODERS`):

* ``"clip_tiny_synth"`` — the lab's small CLIP (:mod:`reidlab.models.lab_clip`; width 128, context 64, a compact
  vocabulary covering the synthetic world's words), the smoke profile's encoder;
* ``"ViT-B-16"`` — OpenAI's CLIP ViT-B/16 text tower (width 512, context 77), read by open_clip from a local
  ``ViT-B-16.pt`` (resolved by :mod:`reidlab.weights`; ``pretrained=True`` and no file is an error naming it).

The paper's text encoder is not known (methods spec §1.2: presumably data2vec-text); CLIP's text tower is a
well-kept, offline-loadable encoder whose token features were trained to describe people in images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn

from reidlab.weights import Pretrained

OPENAI_TEXT = "ViT-B-16"
LAB_TEXT = "clip_tiny_synth"
TEXT_ENCODERS = (LAB_TEXT, OPENAI_TEXT)


class TextTokenEncoder(nn.Module):
    """A CLIP text tower's per-token outputs (after the final LN) for a list of strings.

    ``tokenize(texts) -> (T, context)`` ids (0 pads); ``token_names(ids)`` maps ids back to readable tokens
    (``<start>``, ``<end>``, ``<unk>``, BPE pieces) for attention pictures.
    """

    def __init__(self, clip: nn.Module, tokenize: Callable[[Sequence[str]], torch.Tensor],
                 token_names: Callable[[Sequence[int]], list[str]], *, name: str = "") -> None:  # fmt: skip
        super().__init__()
        for part in ("token_embedding", "positional_embedding", "transformer", "ln_final"):
            if getattr(clip, part, None) is None:
                raise TypeError(f"TextTokenEncoder needs an open_clip CLIP with a built-in text tower; no {part!r}")
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        mask = getattr(clip, "attn_mask", None)
        self.register_buffer("attn_mask", None if mask is None else mask.clone(), persistent=False)
        self.tokenize = tokenize
        self.token_names = token_names
        self.name = name
        self.width = int(self.positional_embedding.shape[1])
        self.context_length = int(self.positional_embedding.shape[0])
        self.pretrained_weights: dict[str, Any] | None = None

    def forward(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens (T, L, width), valid (T, L) bool)`` for ``texts``."""
        if isinstance(texts, str) or not len(texts):
            raise ValueError("texts must be a non-empty list of strings")
        ids = self.tokenize(list(texts)).to(self.positional_embedding.device)
        # a text ends at its end token, the largest id of its row in both tokenizers (CLIP's argmax rule); what
        # follows is padding (id 0, which OpenAI's vocabulary also uses for "!", so the id alone cannot tell)
        valid = torch.arange(ids.shape[1], device=ids.device) <= ids.argmax(dim=1, keepdim=True)
        length = int(valid.sum(1).max())
        ids, valid = ids[:, :length], valid[:, :length]
        x = self.token_embedding(ids) + self.positional_embedding[:length]
        mask = None if self.attn_mask is None else self.attn_mask[:length, :length]
        x = self.transformer(x, attn_mask=mask)
        return self.ln_final(x), valid

    def token_strings(self, text: str) -> list[str]:
        """The readable tokens of one text, in order (start and end tokens included, padding left out)."""
        ids = self.tokenize([text])[0]
        return self.token_names([int(i) for i in ids[: int(ids.argmax()) + 1]])


def _lab_text(pretrained: Pretrained) -> TextTokenEncoder:
    import open_clip

    from reidlab.models.lab_clip import SOT, UNK, create_lab_clip

    clip, tokenizer = create_lab_clip(pretrained)
    bpe = open_clip.get_tokenizer("ViT-B-16")  # the BPE the compact vocabulary indexes

    def names(ids: Sequence[int]) -> list[str]:
        out = []
        for i in ids:
            if i == SOT or i == tokenizer.eot or i == UNK:
                out.append({SOT: "<start>", tokenizer.eot: "<end>", UNK: "<unk>"}[i])
            else:
                out.append(bpe.decode([tokenizer.vocabulary[i - UNK - 1]]).strip())
        return out

    encoder = TextTokenEncoder(clip, tokenizer, names, name=LAB_TEXT)
    encoder.pretrained_weights = clip.pretrained_weights
    return encoder


def _openai_text(pretrained: Pretrained) -> TextTokenEncoder:
    from reidlab.models.clip_weights import load_clip

    clip, tokenizer, record = load_clip(OPENAI_TEXT, pretrained)
    start, end = tokenizer.sot_token_id, tokenizer.eot_token_id

    def names(ids: Sequence[int]) -> list[str]:
        return ["<start>" if i == start else "<end>" if i == end else tokenizer.decode([i]).strip() for i in ids]

    encoder = TextTokenEncoder(clip, tokenizer, names, name=OPENAI_TEXT)
    encoder.pretrained_weights = record
    return encoder


def build_text_tokens(name: str, pretrained: Pretrained = "auto") -> TextTokenEncoder:
    """The text tower ``name`` (:data:`TEXT_ENCODERS`); weights resolve like every backbone's."""
    if name == LAB_TEXT:
        return _lab_text(pretrained)
    if name == OPENAI_TEXT:
        return _openai_text(pretrained)
    raise ValueError(f"unknown text encoder {name!r}; expected one of {TEXT_ENCODERS}")
