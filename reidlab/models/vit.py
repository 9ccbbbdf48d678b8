"""The ReID vision transformer of TransReID (He et al., ICCV 2021), built on timm's ``VisionTransformer``.

What it adds to timm's model (whose blocks, attention and MLP are used as they are):

* an **overlapping patch embedding**: a 16×16 convolution with stride ``s`` on an H×W image gives a
  ``(floor((H−16)/s)+1) × (floor((W−16)/s)+1)`` grid (256×128: stride 16 → 16×8, 12 → 21×10, 11 → 22×11);
* **SIE** (side-information embedding): a learnable table of camera (or view, or camera×view) vectors,
  ``coef·table[id]`` added with the position embedding to every token (CLS and patches), ids 0-based;
* access for methods: :meth:`ReIDViT.forward_tokens` returns the tokens after any chosen blocks (DPM reads
  blocks 2, 4, 10, 12; JPM stops one block early) and :func:`cls_attention_logits` the pre-softmax CLS
  attention of a block, both computed with the blocks' own modules.

Backbone sizes live in :data:`VIT_SIZES` (timm-layout weight files resolve by these names through
:mod:`reidlab.weights`; :mod:`reidlab.models.vit_weights` loads them with the position grid resized).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.vision_transformer import VisionTransformer


@dataclass(frozen=True)
class ViTSize:
    """The shape of a ViT: width, depth, heads, MLP ratio, qkv bias and (TransReID's ViT-S) a fixed qk scale."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_scale: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Backbone names -> sizes. The names are the weight names :func:`reidlab.weights.resolve_weights` looks up.
VIT_SIZES: dict[str, ViTSize] = {
    # timm's original ViT-B/16 (TransReID's jx_vit_base_p16_224-80ecf9dd.pth)
    "vit_base_patch16_224": ViTSize(768, 12, 12),
    # the *old* timm ViT-S/16 TransReID uses (vit_small_p16_224-15ec54c9.pth): 768 wide, 8 blocks, 8 heads,
    # MLP ratio 3, no qkv bias and attention scale 768^-0.5 instead of head_dim^-0.5
    "vit_small_patch16_224": ViTSize(768, 8, 8, 3.0, False, 768**-0.5),
    # DeiT-S/16 (Touvron et al.): 384 wide, 12 blocks, 6 heads
    "deit_small_patch16_224": ViTSize(384, 12, 6),
    # the lab's smoke-profile ViT (timm VisionTransformer(patch 16, 192, depth 6, 3 heads)); its weights come
    # from the lab's own pretraining (data/weights/lab/) when present
    "vit_tiny_d6_patch16": ViTSize(192, 6, 3),
}


def vit_size(backbone: str | ViTSize | dict[str, Any]) -> ViTSize:
    """The size of a backbone name (an unknown name lists the known ones), a ``ViTSize`` or its dict."""
    if isinstance(backbone, ViTSize):
        return backbone
    if isinstance(backbone, dict):
        return ViTSize(**backbone)
    if backbone not in VIT_SIZES:
        raise ValueError(f"unknown ViT backbone {backbone!r}; known: {sorted(VIT_SIZES)}")
    return VIT_SIZES[backbone]


def patch_grid(image_size: Sequence[int], patch_size: int = 16, stride: int = 16) -> tuple[int, int]:
    """``(rows, cols)`` of the overlapping patch grid: ``floor((H − p)/s) + 1`` × ``floor((W − p)/s) + 1``."""
    h, w = (int(v) for v in image_size)
    if stride < 1 or stride > patch_size:
        raise ValueError(f"stride must be in [1, patch_size={patch_size}], got {stride}")
    if h < patch_size or w < patch_size:
        raise ValueError(f"image_size {h}x{w} is smaller than one {patch_size}x{patch_size} patch")
    return (h - patch_size) // stride + 1, (w - patch_size) // stride + 1


class OverlapPatchEmbed(PatchEmbed):
    """timm's ``PatchEmbed`` with a convolution stride below the patch size (overlapping patches)."""

    def __init__(self, *args: Any, stride: int = 16, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        patch = self.patch_size[0]
        self.stride = int(stride)
        self.grid_size = patch_grid(self.img_size, patch, self.stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        old = self.proj
        self.proj = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=patch, stride=self.stride,
                              bias=old.bias is not None)  # fmt: skip
        # TransReID's initialisation of the patch projection: N(0, 2 / (k·k·out))
        nn.init.normal_(self.proj.weight, std=(2.0 / (patch * patch * old.out_channels)) ** 0.5)
        if self.proj.bias is not None:
            nn.init.zeros_(self.proj.bias)


def sie_table_size(cameras: int, views: int) -> int:
    """Rows of TransReID's SIE table: cameras×views when both exceed 1, else cameras or views (when > 1), else 0."""
    if cameras > 1 and views > 1:
        return cameras * views
    if cameras > 1:
        return cameras
    return views if views > 1 else 0


class ReIDViT(VisionTransformer):
    """timm ``VisionTransformer`` with overlapping patches and SIE; no classifier head (``num_classes=0``).

    ``forward_tokens(images, camids, viewids)`` returns the token sequence ``(B, 1 + rows·cols, D)`` after the
    last block (before the final norm); ``forward(images, camids)`` the normed CLS token ``(B, D)``.
    """

    def __init__(
        self,
        *,
        size: ViTSize,
        image_size: Sequence[int] = (256, 128),
        patch_size: int = 16,
        stride: int = 16,
        drop_path_rate: float = 0.1,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        sie_cameras: int = 0,
        sie_views: int = 0,
        sie_coef: float = 3.0,
    ) -> None:
        image_size = tuple(int(v) for v in image_size)
        patch_grid(image_size, patch_size, stride)  # a clear error before timm's asserts
        super().__init__(
            img_size=image_size, patch_size=patch_size, num_classes=0, global_pool="token",
            embed_dim=size.embed_dim, depth=size.depth, num_heads=size.num_heads, mlp_ratio=size.mlp_ratio,
            qkv_bias=size.qkv_bias, norm_layer=partial(nn.LayerNorm, eps=1e-6), drop_path_rate=drop_path_rate,
            pos_drop_rate=drop_rate, proj_drop_rate=drop_rate, attn_drop_rate=attn_drop_rate,
            embed_layer=partial(OverlapPatchEmbed, stride=stride),
        )  # fmt: skip
        if size.qk_scale is not None:  # a fixed scale: timm's fused kernel always uses head_dim^-0.5
            for block in self.blocks:
                block.attn.scale = size.qk_scale
                block.attn.fused_attn = False
        self.size = size
        self.stride = int(stride)
        self.sie_cameras, self.sie_views, self.sie_coef = int(sie_cameras), int(sie_views), float(sie_coef)
        rows = sie_table_size(self.sie_cameras, self.sie_views)
        self.sie_embed: nn.Parameter | None = None
        if rows:
            self.sie_embed = nn.Parameter(torch.zeros(rows, 1, size.embed_dim))
            trunc_normal_(self.sie_embed, std=0.02)
        self.pretrained_weights: dict[str, Any] | None = None

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(self.patch_embed.grid_size)

    def side_embedding(self, camids: torch.Tensor | None, viewids: torch.Tensor | None) -> torch.Tensor | None:
        """``coef · table[id]`` of shape ``(B, 1, D)``, or None without SIE; a missing id is an error."""
        if self.sie_embed is None:
            return None
        both = self.sie_cameras > 1 and self.sie_views > 1
        need_cam = self.sie_cameras > 1
        need_view = self.sie_views > 1
        if (need_cam and camids is None) or (need_view and viewids is None):
            wanted = "camids and viewids" if both else ("camids" if need_cam else "viewids")
            raise ValueError(f"this ViT uses SIE ({self.sie_embed.shape[0]} embeddings): pass {wanted}")
        if both:
            index = camids.long() * self.sie_views + viewids.long()
        else:
            index = (camids if need_cam else viewids).long()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.sie_embed.shape[0]):
            raise ValueError(f"SIE ids must be in [0, {self.sie_embed.shape[0] - 1}], got {index.min()}..{index.max()}")
        return self.sie_coef * self.sie_embed[index]

    def embed(self, images: torch.Tensor, camids: torch.Tensor | None = None,
              viewids: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """``[CLS; patches] + pos_embed (+ coef·SIE[id])``, then dropout: the input of the first block."""
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        side = self.side_embedding(camids, viewids)
        if side is not None:
            x = x + side
        return self.norm_pre(self.pos_drop(x))

    def forward_tokens(
        self,
        images: torch.Tensor,
        camids: torch.Tensor | None = None,
        viewids: torch.Tensor | None = None,
        *,
        depth: int | None = None,
        keep: Sequence[int] = (),
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Tokens after the first ``depth`` blocks (all by default) and ``{k: tokens after block k}`` for the
        1-based block numbers in ``keep`` (``0``: the embedded input); no final norm."""
        depth = len(self.blocks) if depth is None else int(depth)
        if not 0 <= depth <= len(self.blocks):
            raise ValueError(f"depth must be in [0, {len(self.blocks)}], got {depth}")
        wanted = {int(k) for k in keep}
        bad = sorted(k for k in wanted if not 0 <= k <= depth)
        if bad:
            raise ValueError(f"keep: block numbers must be in [0, {depth}] (1-based), got {bad}")
        x = self.embed(images, camids, viewids)
        kept = {0: x} if 0 in wanted else {}
        for number, block in enumerate(self.blocks[:depth], start=1):
            x = block(x)
            if number in wanted:
                kept[number] = x
        return x, kept

    def forward_features(self, images: torch.Tensor, camids: torch.Tensor | None = None,
                         viewids: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """All blocks and the final norm: ``(B, 1 + rows·cols, D)``."""
        return self.norm(self.forward_tokens(images, camids, viewids)[0])

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None,
                viewids: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """The normed CLS token ``(B, D)``."""
        return self.forward_features(images, camids, viewids)[:, 0]


def patch_tokens_to_map(tokens: torch.Tensor, grid: Sequence[int], num_prefix_tokens: int = 1) -> torch.Tensor:
    """``(B, prefix + rows·cols, D)`` tokens -> ``(B, D, rows, cols)`` (row-major patch order)."""
    rows, cols = int(grid[0]), int(grid[1])
    b, n, d = tokens.shape
    if n - num_prefix_tokens != rows * cols:
        raise ValueError(f"{n} tokens do not hold a {rows}x{cols} grid after {num_prefix_tokens} prefix token(s)")
    return tokens[:, num_prefix_tokens:].transpose(1, 2).reshape(b, d, rows, cols)


def cls_attention_logits(block: nn.Module, tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Pre-softmax attention logits of the CLS query over the patch keys in ``block``: ``(B, heads, N_patches)``.

    ``tokens`` is the block's input. The CLS query and the keys come from the block's own ``norm1`` and
    ``attn.qkv`` weights (its q/k norms and scale included), exactly what the block's attention computes
    before its softmax; gradients reach the block and its input.
    """
    attn = block.attn
    heads, head_dim = attn.num_heads, attn.head_dim
    width = heads * head_dim
    h = block.norm1(tokens)
    weight, bias = attn.qkv.weight, attn.qkv.bias
    q = F.linear(h[:, :1], weight[:width], None if bias is None else bias[:width])
    k = F.linear(h[:, num_prefix_tokens:], weight[width : 2 * width], None if bias is None else bias[width : 2 * width])
    b = tokens.shape[0]
    q = attn.q_norm(q.reshape(b, 1, heads, head_dim).transpose(1, 2))  # (B, heads, 1, hd)
    k = attn.k_norm(k.reshape(b, -1, heads, head_dim).transpose(1, 2))  # (B, heads, N, hd)
    return ((q * attn.scale) @ k.transpose(-2, -1)).squeeze(2)
