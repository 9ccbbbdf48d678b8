"""Embedding extraction for evaluation: eval mode, no grad, optional flip TTA, DDP-aware gathering."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn

from reidlab.device import autocast
from reidlab.engine.distributed import all_gather_padded, is_distributed

_LABEL_KEYS = {"pid": "pids", "camid": "camids", "modality": "modalities", "index": "indices"}


def _embed(model: nn.Module, images: torch.Tensor, camids: torch.Tensor | None) -> dict[str, torch.Tensor]:
    out = model(images, camids=camids)
    if isinstance(out, torch.Tensor):
        return {"features": out}
    if not isinstance(out, dict) or "embedding" not in out:
        raise TypeError(f"{type(model).__name__} must return a tensor or a dict with 'embedding' in eval mode")
    return {("features" if k == "embedding" else k): v for k, v in out.items()}


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    device: torch.device | str,
    flip: bool = False,
    *,
    amp: bool = True,
    channels_last: bool = False,
) -> dict[str, torch.Tensor]:
    """Run ``model`` in eval mode over ``loader`` (batches of ``{"image", "pid", "camid", "modality", "index"}``).

    Returns ``{"features": (N, D) float32, "pids", "camids", "modalities": (N,) long}`` on the CPU, plus any
    extra eval outputs of the model (dict outputs: ``"embedding"`` becomes ``"features"``). With ``flip``, the
    outputs for an image and its horizontal mirror are averaged. Under DDP (a ``DistributedSampler`` per
    rank), every rank gets the full set in dataset order, with the sampler's padding duplicates removed.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    try:
        for batch in loader:
            images = batch["image"].to(device, non_blocking=True)
            if channels_last and images.ndim == 4:
                images = images.contiguous(memory_format=torch.channels_last)
            camids = batch["camid"].to(device, non_blocking=True) if "camid" in batch else None
            with autocast(device, enabled=amp):
                outs = _embed(model, images, camids)
                if flip:
                    mirrored = _embed(model, images.flip(dims=[-1]), camids)
                    outs = {k: (v.float() + mirrored[k].float()) / 2 for k, v in outs.items()}
            for key, value in outs.items():
                value = value.float() if value.is_floating_point() else value
                chunks.setdefault(key, []).append(value)
            for key, name in _LABEL_KEYS.items():
                if key in batch:
                    chunks.setdefault(name, []).append(torch.as_tensor(batch[key]).long().to(device))
    finally:
        model.train(was_training)
    if not chunks:
        raise ValueError("extract_features got an empty loader")
    result = {k: torch.cat(v) for k, v in chunks.items()}
    if is_distributed():
        result = {k: torch.cat(all_gather_padded(v.contiguous())) for k, v in result.items()}
    if "indices" in result:
        order = torch.argsort(result["indices"], stable=True)
        result = {k: v[order] for k, v in result.items()}
        keep = torch.ones_like(result["indices"], dtype=torch.bool)
        keep[1:] = result["indices"][1:] != result["indices"][:-1]  # DistributedSampler pads with repeats
        result = {k: v[keep] for k, v in result.items()}
    return {k: v.cpu() for k, v in result.items()}
