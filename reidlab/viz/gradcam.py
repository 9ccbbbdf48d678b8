"""Grad-CAM for embedding models: explain the *similarity* between an image and a reference embedding.

The CAM target is ``cos(embedding(image), reference)``. With the reference set to a matched
gallery image's embedding (and vice versa) a pair of heatmaps shows what made the two images
match. CNNs use a per-model target layer (overridable); ViTs go through a token-to-grid
reshape that drops the CLS/prefix tokens. Methods: ``gradcam``, ``gradcam++``, ``scorecam``,
``eigencam`` (EigenCAM ignores the target: it shows the first principal component of the layer).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from contextlib import nullcontext

import numpy as np
import pytorch_grad_cam as pgc
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from torch import nn

from reidlab.viz.figures import save_figure
from reidlab.viz.images import IMAGENET_MEAN, IMAGENET_STD, as_rgb, overlay_heatmap

CAM_METHODS: dict[str, type] = {
    "gradcam": pgc.GradCAM,
    "gradcam++": pgc.GradCAMPlusPlus,
    "scorecam": pgc.ScoreCAM,
    "eigencam": pgc.EigenCAM,
}
_ALIASES = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++", "grad-cam": "gradcam", "score-cam": "scorecam"}
AUTO = "auto"


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class for a method name (case and ``_``/``-`` insensitive aliases accepted)."""
    key = method.lower().replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {sorted(CAM_METHODS)}")
    return CAM_METHODS[key]


def find_vit(model: nn.Module) -> nn.Module | None:
    """The first sub-module that looks like a ViT (has ``patch_embed`` and ``blocks``), else None."""
    for module in model.modules():
        if hasattr(module, "patch_embed") and hasattr(module, "blocks"):
            return module
    return None


def vit_grid_size(vit: nn.Module) -> tuple[int, int]:
    """Patch-grid ``(rows, cols)`` of a ViT from its patch embedding (timm ``grid_size`` or ``num_y/num_x``)."""
    pe = vit.patch_embed
    if getattr(pe, "grid_size", None) is not None:
        return int(pe.grid_size[0]), int(pe.grid_size[1])
    if hasattr(pe, "num_y") and hasattr(pe, "num_x"):
        return int(pe.num_y), int(pe.num_x)
    raise ValueError(f"cannot read the patch grid from {type(pe).__name__}: expected grid_size or num_y/num_x")


def vit_reshape_transform(
    grid_size: tuple[int, int], num_prefix_tokens: int | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Map ViT tokens ``(B, N, C)`` to a CNN-like ``(B, C, rows, cols)`` grid, dropping the leading
    prefix tokens (CLS, distillation, registers). ``num_prefix_tokens=None`` infers ``N - rows*cols``."""
    rows, cols = int(grid_size[0]), int(grid_size[1])

    def transform(tokens: torch.Tensor) -> torch.Tensor:
        if tokens.dim() != 3:
            raise ValueError(f"ViT reshape: expected tokens (B, N, C), got shape {tuple(tokens.shape)}")
        b, n, c = tokens.shape
        prefix = n - rows * cols if num_prefix_tokens is None else num_prefix_tokens
        if prefix < 0 or n - prefix != rows * cols:
            raise ValueError(
                f"ViT reshape: {n} tokens do not hold a {rows}x{cols} patch grid after {prefix} prefix token(s)"
            )
        return tokens[:, prefix:].reshape(b, rows, cols, c).permute(0, 3, 1, 2)

    return transform


def find_target_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM reads: ``model.gradcam_target_layer()`` if defined; for ViTs the last block's
    ``norm1`` (its patch tokens feed the CLS token); else the last block of ``layer4`` (ResNets), the
    last of ``stages``/``features``, else the last ``Conv2d``."""
    if callable(getattr(model, "gradcam_target_layer", None)):
        return model.gradcam_target_layer()
    vit = find_vit(model)
    if vit is not None:
        last = vit.blocks[-1]
        return getattr(last, "norm1", last)
    for name in ("layer4", "stages", "features"):
        for mod_name, module in model.named_modules():
            if mod_name.split(".")[-1] == name:
                children = list(module.children())
                return children[-1] if children else module
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(
            f"cannot choose a Grad-CAM target layer for {type(model).__name__}: no ViT blocks, layer4, "
            "stages or Conv2d found; pass target_layer= or define model.gradcam_target_layer()"
        )
    return convs[-1]


class EmbeddingOutput(nn.Module):
    """Adapter: calls a ReID model in eval mode and returns its embedding tensor ``(B, D)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and not images.requires_grad:
            images = images.detach().requires_grad_(True)  # gradients reach the layer even in frozen models
        out = self.model(images)
        if isinstance(out, dict):
            if "embedding" not in out:
                raise KeyError(f"model returned a dict without 'embedding' in eval mode (keys: {sorted(out)})")
            out = out["embedding"]
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise TypeError("model in eval mode must return an embedding tensor (B, D) or a dict with 'embedding'")
        return out


class SimilarityTarget:
    """CAM target: cosine similarity between the model output and a fixed reference embedding."""

    def __init__(self, reference: torch.Tensor):
        self.reference = F.normalize(reference.detach().float().reshape(-1), dim=0)

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        ref = self.reference.to(output.device)
        return (F.normalize(output.float(), dim=-1) * ref).sum(-1)


class EmbeddingCAM:
    """Similarity CAMs for a ReID model.

    ``cam(images, references)`` returns maps ``(B, H, W)`` in ``[0, 1]`` at the input size, each
    explaining ``cos(embedding(images[i]), references[i])``. ``target_layer`` may be a module or
    its dotted name; ``reshape_transform="auto"`` applies the ViT token reshape when the model
    contains a ViT.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        method: str = "gradcam",
        target_layer: nn.Module | str | None = None,
        reshape_transform: Callable | str | None = AUTO,
        device: torch.device | str | None = None,
    ):
        self.model = model
        self.method = method
        self.cam_cls = cam_class(method)
        if isinstance(target_layer, str):
            target_layer = model.get_submodule(target_layer)
        self.target_layer = target_layer if target_layer is not None else find_target_layer(model)
        if reshape_transform == AUTO:
            vit = find_vit(model)
            reshape_transform = None
            if vit is not None:
                reshape_transform = vit_reshape_transform(vit_grid_size(vit), getattr(vit, "num_prefix_tokens", None))
        self.reshape_transform = reshape_transform
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.wrapper = EmbeddingOutput(model)

    @torch.no_grad()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Embeddings ``(B, D)`` of normalised images ``(B, C, H, W)`` or one ``(C, H, W)`` (eval mode)."""
        if images.dim() == 3:
            images = images[None]
        was_training = self.model.training
        self.model.eval()
        try:
            return self.wrapper(images.to(self.device)).float()
        finally:
            self.model.train(was_training)

    def __call__(self, images: torch.Tensor, references: torch.Tensor) -> np.ndarray:
        if images.dim() == 3:
            images = images[None]
        references = references.reshape(-1, references.shape[-1]) if references.dim() > 1 else references[None]
        if references.shape[0] == 1 and images.shape[0] > 1:
            references = references.expand(images.shape[0], -1)
        if references.shape[0] != images.shape[0]:
            raise ValueError(f"references: expected 1 or {images.shape[0]} embeddings, got {references.shape[0]}")
        was_training = self.model.training
        layers = [self.target_layer]
        cam = self.cam_cls(model=self.wrapper, target_layers=layers, reshape_transform=self.reshape_transform)
        if isinstance(cam, pgc.ScoreCAM):
            cam.batch_size = 64  # masked copies per forward pass (the library's default is 16)
        try:
            targets = [SimilarityTarget(r) for r in references]
            # ScoreCAM draws tqdm bars for every image; keep notebook output readable
            quiet = contextlib.redirect_stderr(io.StringIO()) if isinstance(cam, pgc.ScoreCAM) else nullcontext()
            with quiet:
                maps = cam(input_tensor=images.to(self.device), targets=targets)
            return maps.astype(np.float32)
        finally:
            cam.activations_and_grads.release()
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)

    def pair(self, image_a: torch.Tensor, image_b: torch.Tensor) -> tuple[np.ndarray, np.ndarray, float]:
        """Maps for two images, each explained against the other's embedding, and their cosine similarity."""
        both = torch.stack([image_a, image_b])
        emb = self.embed(both)
        maps = self(both, emb.flip(0))
        sim = float(F.cosine_similarity(emb[0:1], emb[1:2]).item())
        return maps[0], maps[1], sim


def plot_gradcam_pairs(
    model: nn.Module | EmbeddingCAM,
    query_images: torch.Tensor | Sequence[torch.Tensor],
    gallery_images: torch.Tensor | Sequence[torch.Tensor],
    *,
    titles: Sequence[tuple[str, str]] | None = None,
    row_labels: Sequence[str] | None = None,
    method: str = "gradcam",
    target_layer: nn.Module | str | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    alpha: float = 0.5,
    suptitle: str | None = None,
    save=None,
) -> Figure:
    """One row per (query, gallery) pair: query | query + CAM | gallery + CAM | gallery.

    Each CAM explains the cosine similarity of its image to the *other* image's embedding, so
    the row shows what made the two match. Images are normalised model inputs ``(C, H, W)``.
    """
    cam = model if isinstance(model, EmbeddingCAM) else EmbeddingCAM(model, method=method, target_layer=target_layer)
    queries, galleries = list(query_images), list(gallery_images)
    if len(queries) != len(galleries) or not queries:
        raise ValueError(f"expected the same non-zero number of query and gallery images, got {len(queries)} and "
                         f"{len(galleries)}")  # fmt: skip
    if titles is not None and len(titles) != len(queries):
        raise ValueError(f"titles: expected {len(queries)} (query, gallery) pairs, got {len(titles)}")
    n = len(queries)
    fig, axes = plt.subplots(n, 4, figsize=(7.6, 2.9 * n + 0.6), squeeze=False)
    for row, (q, g) in enumerate(zip(queries, galleries, strict=True)):
        q_map, g_map, sim = cam.pair(q, g)
        q_rgb, g_rgb = as_rgb(q, mean=mean, std=std), as_rgb(g, mean=mean, std=std)
        q_title, g_title = titles[row] if titles is not None else ("query", "gallery")
        panels = [
            (q_rgb, q_title),
            (overlay_heatmap(q_rgb, q_map, alpha=alpha, normalize=False), f"{cam.method} on query"),
            (overlay_heatmap(g_rgb, g_map, alpha=alpha, normalize=False), f"{cam.method} on gallery"),
            (g_rgb, g_title),
        ]
        for ax, (img, title) in zip(axes[row], panels, strict=True):
            ax.imshow(img, interpolation="bilinear")
            ax.set_title(title, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        label = row_labels[row] if row_labels is not None else f"pair {row + 1}"
        axes[row, 0].set_ylabel(f"{label}\ncos = {sim:.3f}", fontsize=9)
    fig.suptitle(suptitle or f"What made each pair match ({cam.method}, target = cosine to the other image)",
                 fontsize=10)  # fmt: skip
    fig.subplots_adjust(right=0.86, wspace=0.08, hspace=0.35)
    cax = fig.add_axes((0.89, 0.15, 0.025, 0.7))
    fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap="jet"), cax=cax, label="relevance (normalised per image)")
    save_figure(fig, save)
    return fig
