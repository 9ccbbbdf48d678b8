"""A BEiT-style ReID ViT, and the one block loop every DMF sequence (image, text, or both) goes through.

BEiT (Bao et al., ICLR 2022) and data2vec vision (Baevski et al., ICML 2022; a BEiT fork) differ from the plain
ViT in three ways, all kept here so their checkpoints run exactly (:mod:`reidlab.models.beit_weights`):

* **q and v biases, no k bias**: the qkv projection's bias is ``[q_bias; 0; v_bias]`` (timm's attention module
  of the ReID ViT, unchanged);
* **layer scale** ``gamma_1`` / ``gamma_2``: timm's ``LayerScale`` (``ls1`` / ``ls2`` of each block);
* **relative position bias**: a learnt table per block over the token grid (timm's ``RelativePositionBias``,
  which also gives the CLS token its own entries), added to the attention logits through the blocks' own
  ``attn_mask`` argument; most checkpoints have no absolute position embedding (``pos_embed`` then stays 0).

:func:`run_blocks` runs a token sequence through a ViT's blocks with an optional key-padding mask (text tokens
pad) and, for a BEiT-style ViT, its relative position bias over the *image* part of the sequence: a text token
has no place on the image grid, so pairs involving text get no positional bias (the lab's reading; the paper
says nothing about it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from timm.layers import LayerScale
from timm.models.beit import RelativePositionBias

from reidlab.models.vit import ReIDViT, ViTSize


class ReIDBeitViT(ReIDViT):
    """:class:`~reidlab.models.vit.ReIDViT` with BEiT's layer scale and per-block relative position bias.

    ``relative_position[i]`` holds block ``i``'s table over the ``rows × cols`` token grid (a checkpoint's shared
    table is copied into every block when loaded, as BEiT's fine-tuning does). ``forward_tokens`` and every
    method built on it (``forward``, ``forward_features``) apply the bias.
    """

    def __init__(self, *, size: ViTSize, init_values: float | None = 0.1, **kwargs: Any) -> None:
        super().__init__(size=size, **kwargs)
        dim = size.embed_dim
        if init_values:
            for block in self.blocks:
                block.ls1 = LayerScale(dim, init_values=init_values)
                block.ls2 = LayerScale(dim, init_values=init_values)
        self.relative_position = nn.ModuleList(
            RelativePositionBias(window_size=self.grid_size, num_heads=size.num_heads) for _ in self.blocks
        )
        self.init_values = init_values

    def attention_biases(self) -> list[torch.Tensor]:
        """Each block's relative position bias over ``[CLS; patches]``: ``(heads, N, N)``."""
        return [table() for table in self.relative_position]

    def forward_tokens(
        self,
        images: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
        *,
        depth: int | None = None,
        keep: Sequence[int] = (),
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        x = self.embed(images, camids, viewids)
        return run_blocks(self, x, image_tokens=x.shape[1], depth=depth, keep=keep)


def attention_mask(
    bias: torch.Tensor | None, image_tokens: int, length: int, key_valid: torch.Tensor | None
) -> torch.Tensor | None:
    """The ``attn_mask`` of one block: None, a boolean key mask ``(B, 1, 1, L)``, or an additive float mask
    ``(B or 1, heads, L, L)`` holding ``bias`` over the first ``image_tokens`` positions and ``-inf`` on padding."""
    if bias is None or image_tokens == 0:
        return None if key_valid is None else key_valid[:, None, None, :]
    if bias.shape[-1] != image_tokens:
        raise ValueError(f"relative position bias covers {bias.shape[-1]} tokens, the sequence has {image_tokens} "
                         "image tokens; is the image size the one the ViT was built for?")  # fmt: skip
    if image_tokens == length:
        full = bias.unsqueeze(0)
    else:
        full = bias.new_zeros(1, bias.shape[0], length, length)
        full[:, :, :image_tokens, :image_tokens] = bias
    if key_valid is not None:
        full = full.masked_fill(~key_valid[:, None, None, :], float("-inf"))
    return full


def block_attention(block: nn.Module, tokens: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The softmax attention ``(B, heads, L, L)`` of a timm ViT ``block`` on its input ``tokens``, computed with the
    block's own ``norm1`` / ``attn.qkv`` / q-k norms / scale and the same ``attn_mask`` the block is given."""
    attn = block.attn
    b, length, _ = tokens.shape
    qkv = attn.qkv(block.norm1(tokens)).reshape(b, length, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    logits = (q * attn.scale) @ k.transpose(-2, -1)
    if attn_mask is not None:
        logits = logits.masked_fill(~attn_mask, float("-inf")) if attn_mask.dtype == torch.bool else logits + attn_mask
    return logits.softmax(dim=-1)


def run_blocks(
    vit: ReIDViT,
    x: torch.Tensor,
    *,
    image_tokens: int = 0,
    key_valid: torch.Tensor | None = None,
    depth: int | None = None,
    keep: Sequence[int] = (),
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """``x`` (B, L, D) through the first ``depth`` blocks of ``vit`` (no final norm), the first ``image_tokens``
    positions being ``[CLS; patches]`` of an image (0: a text sequence); ``key_valid`` (B, L) marks real tokens.
    Returns the tokens and ``{k: tokens after block k}`` for the 1-based block numbers in ``keep``."""
    depth = len(vit.blocks) if depth is None else int(depth)
    if not 0 <= depth <= len(vit.blocks):
        raise ValueError(f"depth must be in [0, {len(vit.blocks)}], got {depth}")
    biases = vit.attention_biases() if isinstance(vit, ReIDBeitViT) and image_tokens else [None] * depth
    wanted = {int(k) for k in keep}
    kept = {0: x} if 0 in wanted else {}
    for number, block in enumerate(vit.blocks[:depth], start=1):
        mask = attention_mask(biases[number - 1], image_tokens, x.shape[1], key_valid)
        x = block(x) if mask is None else block(x, attn_mask=mask)
        if number in wanted:
            kept[number] = x
    return x, kept
