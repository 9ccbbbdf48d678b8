"""Grad-CAM for embedding models: explain the *similarity* between an image and a reference embedding.

The CAM target is ``cos(embedding(image), reference)``. With the reference set to a matched
gallery image's embedding (and vice versa) a pair of heatmaps shows what made the two images
match. Where each model family is read (CNN, MuDeep v2's streams, ViT, CLIP towers) and how its
tokens go back to a grid is :mod:`reidlab.viz.gradcam_layers`. Models with SIE take the images'
camera ids (``camids=``). Methods: ``gradcam``, ``gradcam++``, ``scorecam``, ``eigencam`` (EigenCAM
ignores the target: it shows the first principal component of the layer).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import pytorch_grad_cam as pgc
import torch
import torch.nn.functional as F
from torch import nn

from reidlab.viz.gradcam_layers import (
    CamLayers,
    find_target_layer,
    find_vit,
    gradcam_layers,
    vit_grid_size,
    vit_reshape_transform,
)

__all__ = [
    "AUTO",
    "CAM_METHODS",
    "CamLayers",
    "EmbeddingCAM",
    "EmbeddingOutput",
    "SimilarityTarget",
    "cam_class",
    "find_target_layer",
    "find_vit",
    "gradcam_layers",
    "vit_grid_size",
    "vit_reshape_transform",
]

CAM_METHODS: dict[str, type] = {
    "gradcam": pgc.GradCAM,
    "gradcam++": pgc.GradCAMPlusPlus,
    "scorecam": pgc.ScoreCAM,
    "eigencam": pgc.EigenCAM,
}
_ALIASES = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++", "grad-cam": "gradcam", "score-cam": "scorecam"}
AUTO = "auto"
CamIds = torch.Tensor | Sequence[int] | int | None
LayerSpec = nn.Module | str | Sequence[nn.Module | str] | None


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class for a method name (case and ``_``/``-`` insensitive aliases accepted)."""
    key = method.lower().replace("_", "")
    key = _ALIASES.get(key, key)
    if key not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; expected one of {sorted(CAM_METHODS)}")
    return CAM_METHODS[key]


def as_camids(camids: CamIds, count: int) -> torch.Tensor | None:
    """Camera ids as a ``(count,)`` long tensor (one id is repeated), or None."""
    if camids is None:
        return None
    ids = torch.as_tensor(camids, dtype=torch.long).reshape(-1)
    if ids.numel() == 1:
        ids = ids.expand(count)
    if ids.numel() != count:
        raise ValueError(f"camids: expected 1 or {count} camera ids, got {ids.numel()}")
    return ids


class EmbeddingOutput(nn.Module):
    """Adapter: calls a ReID model in eval mode and returns its embedding tensor ``(B, D)``.

    ``camids`` (set for one call by :meth:`cameras`) go to the model as ``camids=``; a batch larger than
    the ids (ScoreCAM's masked copies of one image) takes the one id they share."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.camids: torch.Tensor | None = None

    @contextmanager
    def cameras(self, camids: torch.Tensor | None) -> Iterator[None]:
        previous, self.camids = self.camids, camids
        try:
            yield
        finally:
            self.camids = previous

    def _camids_for(self, images: torch.Tensor) -> torch.Tensor | None:
        ids = self.camids
        if ids is None or ids.numel() == images.shape[0]:
            return None if ids is None else ids.to(images.device)
        if ids.numel() and bool((ids == ids[0]).all()):
            return ids[:1].expand(images.shape[0]).to(images.device)
        raise ValueError(f"camids: {ids.numel()} camera ids for a batch of {images.shape[0]} images")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and not images.requires_grad:
            images = images.detach().requires_grad_(True)  # gradients reach the layer even in frozen models
        camids = self._camids_for(images)
        out = self.model(images) if camids is None else self.model(images, camids=camids)
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


def _resolve_layers(model: nn.Module, target_layer: LayerSpec) -> tuple[nn.Module, ...] | None:
    if target_layer is None:
        return None
    specs = [target_layer] if isinstance(target_layer, nn.Module | str) else list(target_layer)
    if not specs:
        raise ValueError("target_layer: expected a module, a dotted module name or a non-empty list of them")
    return tuple(model.get_submodule(s) if isinstance(s, str) else s for s in specs)


class EmbeddingCAM:
    """Similarity CAMs for a ReID model.

    ``cam(images, references, camids=None)`` returns maps ``(B, H, W)`` in ``[0, 1]`` at the input size,
    each explaining ``cos(embedding(images[i]), references[i])``. The layers default to the model
    family's (:func:`~reidlab.viz.gradcam_layers.gradcam_layers`); ``target_layer`` may be a module, a
    dotted name or a list of them (their maps are averaged). ``reshape_transform="auto"`` uses the
    family's token-to-grid reshape (ViTs and CLIP ViT towers).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        method: str = "gradcam",
        target_layer: LayerSpec = None,
        reshape_transform: Callable | str | None = AUTO,
        device: torch.device | str | None = None,
    ):
        self.model = model
        self.method = method
        self.cam_cls = cam_class(method)
        chosen = _resolve_layers(model, target_layer)
        try:
            self.family = gradcam_layers(model)
        except ValueError:  # no layer of its own to offer; fine when the caller names one
            if chosen is None:
                raise
            self.family = CamLayers("declared", chosen)
        self.target_layers = chosen or self.family.layers
        if reshape_transform == AUTO:
            reshape_transform = self.family.reshape_transform
        self.reshape_transform = reshape_transform
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.wrapper = EmbeddingOutput(model)

    @property
    def target_layer(self) -> nn.Module:
        """The (last) target layer."""
        return self.target_layers[-1]

    def layer_names(self) -> list[str]:
        """Dotted names of the target layers inside the model."""
        names = {id(module): name for name, module in self.model.named_modules()}
        return [names.get(id(layer), type(layer).__name__) for layer in self.target_layers]

    @torch.no_grad()
    def embed(self, images: torch.Tensor, camids: CamIds = None) -> torch.Tensor:
        """Embeddings ``(B, D)`` of normalised images ``(B, C, H, W)`` or one ``(C, H, W)`` (eval mode)."""
        if images.dim() == 3:
            images = images[None]
        was_training = self.model.training
        self.model.eval()
        try:
            with self.wrapper.cameras(as_camids(camids, images.shape[0])):
                return self.wrapper(images.to(self.device)).float()
        finally:
            self.model.train(was_training)

    def __call__(self, images: torch.Tensor, references: torch.Tensor, camids: CamIds = None) -> np.ndarray:
        if images.dim() == 3:
            images = images[None]
        references = references.reshape(-1, references.shape[-1]) if references.dim() > 1 else references[None]
        if references.shape[0] == 1 and images.shape[0] > 1:
            references = references.expand(images.shape[0], -1)
        if references.shape[0] != images.shape[0]:
            raise ValueError(f"references: expected 1 or {images.shape[0]} embeddings, got {references.shape[0]}")
        ids = as_camids(camids, images.shape[0])
        if self.cam_cls is pgc.ScoreCAM and ids is not None and len(set(ids.tolist())) > 1:
            # ScoreCAM batches masked copies of one image: one camera id per call
            return np.concatenate([self(images[i : i + 1], references[i : i + 1], ids[i : i + 1])
                                   for i in range(images.shape[0])])  # fmt: skip
        was_training = self.model.training
        cam = self.cam_cls(model=self.wrapper, target_layers=list(self.target_layers),
                           reshape_transform=self.reshape_transform)  # fmt: skip
        if isinstance(cam, pgc.ScoreCAM):
            cam.batch_size = 64  # masked copies per forward pass (the library's default is 16)
        try:
            targets = [SimilarityTarget(r) for r in references]
            # ScoreCAM draws tqdm bars for every image; keep notebook output readable
            quiet = contextlib.redirect_stderr(io.StringIO()) if isinstance(cam, pgc.ScoreCAM) else nullcontext()
            with quiet, self.wrapper.cameras(ids):
                maps = cam(input_tensor=images.to(self.device), targets=targets)
            return maps.astype(np.float32)
        finally:
            cam.activations_and_grads.release()
            self.model.zero_grad(set_to_none=True)
            self.model.train(was_training)

    def pair(
        self, image_a: torch.Tensor, image_b: torch.Tensor, camids: CamIds = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Maps for two images, each explained against the other's embedding, and their cosine similarity.
        ``camids``: the two images' camera ids (models with SIE)."""
        both = torch.stack([image_a, image_b])
        ids = as_camids(camids, 2)
        emb = self.embed(both, ids)
        maps = self(both, emb.flip(0), ids)
        sim = float(F.cosine_similarity(emb[0:1], emb[1:2]).item())
        return maps[0], maps[1], sim
