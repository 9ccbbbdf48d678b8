"""CLIP image towers as ReID encoders (CLIP-ReID's changes, methods spec §2.2), wrapping open_clip's own modules.

Both encoders hold an open_clip tower (``self.visual``: a ``VisionTransformer`` or a ``ModifiedResNet``, with its
own weights and key names) and change only what CLIP-ReID changes:

* **ViT** (:class:`ClipViTEncoder`): the patch-embedding stride (``stride < patch``: overlapping patches), the
  token grid ``((H − P)//S + 1) × ((W − P)//S + 1)`` (21×10 for 256×128 at stride 12), the position embedding
  resized to that grid from any source grid, square or not, with its CLS row kept, and SIE: ``coef ·
  sie_embed[camera]`` added to the CLS token before the position embedding (CLIP-ReID's rule; TransReID adds it
  to every token). IVLP / PromptSRC visual prompts (spec §3.3.2) are optional: ``n`` tokens appended after the
  position embedding (before ``ln_pre``), and at the input of each block ``1 .. depth−1`` the last ``n`` tokens
  replaced by that block's own prompts.
* **ResNet** (:class:`ClipResNetEncoder`): layer4's stride set to 1 (a 256×128 input gives a 16×8 map) and the
  attention-pool position embedding resized to that grid, its mean-token row kept.

``forward(images, camids=None)`` returns the three CLIP-ReID features as a dict: ``f_last`` (ViT: the CLS token
before the last block, no LN; ResNet: GAP of layer3), ``f`` (ViT: CLS after the last block and ``ln_post``;
ResNet: GAP of layer4) and ``f_proj`` (ViT: ``f @ proj``; ResNet: the attention pool at the mean-token
position). ``tokens=True`` adds ``patch_proj`` (ViT: every patch token projected into the joint space, for
image–text similarity maps).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def patch_grid(image_size: Sequence[int], patch_size: int, stride: int) -> tuple[int, int]:
    """Token grid of a patch embedding: ``((H − P)//S + 1, (W − P)//S + 1)``."""
    h, w = (int(v) for v in image_size)
    if stride < 1 or stride > patch_size:
        raise ValueError(f"stride must be in [1, patch size {patch_size}], got {stride}")
    if h < patch_size or w < patch_size:
        raise ValueError(f"image_size {h}×{w} is smaller than the patch size {patch_size}")
    return (h - patch_size) // stride + 1, (w - patch_size) // stride + 1


def infer_stride(num_tokens: int, image_size: Sequence[int], patch_size: int) -> int:
    """The patch stride whose grid at ``image_size`` has ``num_tokens`` patches (211 − 1 at 256×128 ⇒ 12)."""
    found = [s for s in range(patch_size, 0, -1) if _area(patch_grid(image_size, patch_size, s)) == num_tokens]
    if not found:
        raise ValueError(
            f"no patch stride gives {num_tokens} patches at image size {tuple(image_size)} with patch {patch_size}; "
            "pass the image_size the checkpoint was trained at"
        )
    return found[0]


def _area(grid: Sequence[int]) -> int:
    return int(grid[0]) * int(grid[1])


def resize_grid_embedding(
    embedding: torch.Tensor, source_grid: Sequence[int], target_grid: Sequence[int], mode: str = "bilinear"
) -> torch.Tensor:
    """``(1 + h·w, D)`` position embedding resized to ``target_grid``: row 0 (CLS / mean token) kept as it is, the
    grid rows interpolated (``mode``: CLIP-ReID uses bilinear, Multimodal-ReID bicubic; ``align_corners=False``)."""
    sh, sw = (int(v) for v in source_grid)
    th, tw = (int(v) for v in target_grid)
    if embedding.ndim != 2 or embedding.shape[0] != 1 + sh * sw:
        raise ValueError(f"position embedding of shape {tuple(embedding.shape)} does not fit a {sh}×{sw} grid + 1")
    lead, grid = embedding[:1], embedding[1:]
    if (sh, sw) == (th, tw):
        return embedding.clone()
    grid = grid.reshape(1, sh, sw, -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(th, tw), mode=mode, align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(th * tw, -1).to(embedding.dtype)
    return torch.cat([lead, grid], dim=0)


def _run_blocks(transformer: nn.Module, x: torch.Tensor, before_block) -> tuple[torch.Tensor, torch.Tensor]:
    """Run open_clip's residual blocks on batch-first ``x``; ``before_block(i, x)`` may rewrite the input of block
    ``i``. Returns (input of the last block, output of the last block), both batch-first."""
    batch_first = getattr(transformer, "batch_first", True)
    blocks = transformer.resblocks
    last_input = x
    for i, block in enumerate(blocks):
        x = before_block(i, x)
        if i == len(blocks) - 1:
            last_input = x
        x = block(x) if batch_first else block(x.transpose(0, 1)).transpose(0, 1)
    return last_input, x


class ClipViTEncoder(nn.Module):
    """An open_clip ``VisionTransformer`` as a CLIP-ReID image encoder (see the module docstring).

    ``source_grid`` is the grid the tower's position embedding was trained on (default: the tower's
    ``grid_size``); ``num_cameras > 0`` adds SIE on the CLS token with coefficient ``sie_coef``;
    ``visual_prompts > 0`` adds IVLP prompts to the first ``prompt_depth`` blocks (default: all).
    """

    def __init__(
        self,
        visual: nn.Module,
        *,
        image_size: Sequence[int] = (256, 128),
        stride: int | None = None,
        source_grid: Sequence[int] | None = None,
        num_cameras: int = 0,
        sie_coef: float = 1.0,
        visual_prompts: int = 0,
        prompt_depth: int | None = None,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        for name in ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer", "ln_post", "proj"):
            if getattr(visual, name, None) is None:
                raise TypeError(f"ClipViTEncoder needs an open_clip VisionTransformer; {type(visual).__name__} "
                                f"has no {name!r}")  # fmt: skip
        if getattr(visual, "attn_pool", None) is not None:
            raise ValueError("ClipViTEncoder supports CLIP towers with CLS pooling (no attentional pooler)")
        self.visual = visual
        patch = int(visual.conv1.kernel_size[0])
        stride = patch if stride is None else int(stride)
        self.image_size = tuple(int(v) for v in image_size)
        self.grid = patch_grid(self.image_size, patch, stride)
        source = tuple(source_grid) if source_grid is not None else tuple(visual.grid_size)
        visual.conv1.stride = (stride, stride)
        with torch.no_grad():
            resized = resize_grid_embedding(visual.positional_embedding.data, source, self.grid, interpolation)
        visual.positional_embedding = nn.Parameter(resized)
        visual.grid_size, visual.image_size = self.grid, self.image_size
        self.patch_size, self.stride = patch, stride
        width = int(visual.class_embedding.shape[0])
        layers = len(visual.transformer.resblocks)
        self.feat_dim = self.last_dim = width
        self.proj_dim = int(visual.proj.shape[1])
        self.sie_coef = float(sie_coef)
        self.sie_embed = None
        if num_cameras > 0:
            self.sie_embed = nn.Parameter(nn.init.trunc_normal_(torch.zeros(num_cameras, width), std=0.02))
        depth = layers if prompt_depth is None else int(prompt_depth)
        if visual_prompts < 0 or not 1 <= depth <= layers:
            raise ValueError(f"visual_prompts must be >= 0 and prompt_depth in [1, {layers}], got "
                             f"{visual_prompts}, {prompt_depth}")  # fmt: skip
        self.num_prompts = int(visual_prompts)
        self.prompt_shallow = self.prompt_deep = None
        if self.num_prompts:
            self.prompt_shallow = nn.Parameter(torch.randn(self.num_prompts, width) * 0.02)
            if depth > 1:
                self.prompt_deep = nn.Parameter(torch.randn(depth - 1, self.num_prompts, width) * 0.02)

    @property
    def num_patches(self) -> int:
        return _area(self.grid)

    def embed(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        """Token sequence before ``ln_pre``: ``[CLS (+ SIE); patches] + position`` (+ shallow prompts)."""
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        if self.sie_embed is not None and camids is not None:
            cls = cls + self.sie_coef * self.sie_embed[camids].unsqueeze(1).to(x.dtype)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        if self.prompt_shallow is not None:
            x = torch.cat([x, self.prompt_shallow.to(x.dtype).expand(x.shape[0], -1, -1)], dim=1)
        return x

    def _deep_prompts(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.prompt_deep is None or not 1 <= i <= len(self.prompt_deep):
            return x
        prompts = self.prompt_deep[i - 1].to(x.dtype).expand(x.shape[0], -1, -1)
        return torch.cat([x[:, : -self.num_prompts], prompts], dim=1)

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None, *, tokens: bool = False
    ) -> dict[str, torch.Tensor]:
        v = self.visual
        x = v.ln_pre(self.embed(images, camids))
        last_input, x = _run_blocks(v.transformer, x, self._deep_prompts)
        x = v.ln_post(x)
        out = {"f_last": last_input[:, 0], "f": x[:, 0], "f_proj": x[:, 0] @ v.proj}
        if tokens:
            out["patch_proj"] = x[:, 1 : 1 + self.num_patches] @ v.proj
        return out


def set_layer4_stride_one(visual: nn.Module) -> None:
    """CLIP ``ModifiedResNet``: layer4 without its anti-aliasing average pools (stride 2 -> 1)."""
    first = visual.layer4[0]
    first.avgpool = nn.Identity()
    first.stride = 1
    if first.downsample is not None and "-1" in first.downsample._modules:
        first.downsample._modules["-1"] = nn.Identity()


class ClipResNetEncoder(nn.Module):
    """An open_clip ``ModifiedResNet`` as a CLIP-ReID image encoder: layer4 stride 1, the attention-pool position
    embedding resized to the ``H/16 × W/16`` map (from the square grid it was trained on, or ``source_grid``)."""

    def __init__(
        self,
        visual: nn.Module,
        *,
        image_size: Sequence[int] = (256, 128),
        source_grid: Sequence[int] | None = None,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        if not all(hasattr(visual, n) for n in ("stem", "layer3", "layer4", "attnpool")):
            raise TypeError(f"ClipResNetEncoder needs an open_clip ModifiedResNet, got {type(visual).__name__}")
        self.image_size = tuple(int(v) for v in image_size)
        if any(v % 16 for v in self.image_size):
            raise ValueError(f"image_size must be multiples of 16 for the CLIP ResNet, got {self.image_size}")
        self.visual = visual
        set_layer4_stride_one(visual)
        self.grid = (self.image_size[0] // 16, self.image_size[1] // 16)
        pool = visual.attnpool
        if source_grid is None:
            side = round((pool.positional_embedding.shape[0] - 1) ** 0.5)
            source_grid = (side, side)
        with torch.no_grad():
            resized = resize_grid_embedding(pool.positional_embedding.data, source_grid, self.grid, interpolation)
        pool.positional_embedding = nn.Parameter(resized)
        self.feat_dim = int(visual.layer4[-1].bn3.num_features)
        self.last_dim = int(visual.layer3[-1].bn3.num_features)
        self.proj_dim = int(pool.c_proj.out_features)

    def forward(
        self, images: torch.Tensor, camids: torch.Tensor | None = None, *, tokens: bool = False
    ) -> dict[str, torch.Tensor]:
        v = self.visual
        x3 = v.layer3(v.layer2(v.layer1(v.stem(images))))
        x4 = v.layer4(x3)
        return {"f_last": x3.mean(dim=(2, 3)), "f": x4.mean(dim=(2, 3)), "f_proj": v.attnpool(x4)}
