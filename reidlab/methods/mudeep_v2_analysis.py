"""What notebook 03 measures on a MuDeep v2 model: the descriptor ablation, the attention of each scale, domain
generalisation to other worlds and the training budget of a run. Numbers only; the pictures live in
:mod:`reidlab.viz.mudeep`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.evaluation import RankResult, evaluate
from reidlab.methods.mudeep_v2 import evaluate_ap_flavours
from reidlab.methods.run import load_method_dataset

AP_FLAVOURS = ("standard", "devkit")


def descriptor_groups(head_names: Sequence[str], num_scales: int) -> dict[str, list[int]]:
    """Head subsets of the test descriptor: each head alone, each scale alone, scales 1..k, the globals, the
    stripes and all heads. Keys name the subset; values are head indices in descriptor order."""
    names = list(head_names)
    if not names or len(names) % num_scales:
        raise ValueError(f"head_names must hold num_scales={num_scales} equal groups, got {len(names)} names")
    per_scale = len(names) // num_scales
    groups = {name: [i] for i, name in enumerate(names)}
    for s in range(num_scales):
        groups[f"scale {s + 1} ({per_scale} heads)"] = list(range(s * per_scale, (s + 1) * per_scale))
    for k in range(2, num_scales):
        groups[f"scales 1-{k} ({k * per_scale} heads)"] = list(range(k * per_scale))
    groups[f"globals of all scales ({num_scales} heads)"] = list(range(0, len(names), per_scale))
    groups[f"stripes of all scales ({len(names) - num_scales} heads)"] = [
        i for i in range(len(names)) if i % per_scale
    ]
    groups[f"all {len(names)} heads"] = list(range(len(names)))
    return groups


def descriptor_ablation(
    features: dict[str, dict[str, torch.Tensor]],
    groups: dict[str, list[int]],
    head_dim: int,
    *,
    protocol: str = "market",
    ap: str = "standard",
):
    """Rank the test split with each head subset of the (flip-averaged, unnormalised) descriptor, cosine distance
    (each subset L2-normalised on its own, as the official test normalises the whole). Returns a DataFrame."""
    import pandas as pd

    q, g = features["query"], features["gallery"]
    rows = []
    for name, heads in groups.items():
        cols = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])
        rank = evaluate(q["features"][:, cols], g["features"][:, cols], q["pids"], g["pids"], q["camids"],
                        g["camids"], metric="cosine", protocol=protocol, ap=ap)  # fmt: skip
        rows.append({"descriptor": name, "heads": len(heads), "dim": len(cols), **rank.as_dict(),
                     "protocol": rank.protocol, "AP": rank.ap})  # fmt: skip
    return pd.DataFrame(rows)


@torch.no_grad()
def scale_attention_maps(model: nn.Module, images: torch.Tensor) -> dict[str, Any]:
    """Per scale, for each image: where the stream responds (``stream``: channel-mean |x_s|, (B, h, w)), where the
    leader's attention changes it (``update``: channel-mean |γ_s·A_s V_s|), the relative size of that change
    (``ratio``: ‖γ_s A_s V_s‖ / ‖x_s‖, (B,)) and how many inputs each affinity row mixes (``mixing``: exp of the
    row entropy averaged over rows, (B,); 1 = each output copies one input, C or N = uniform). Also ``gamma``."""
    was_training = model.training
    model.eval()
    try:
        maps = model.forward_maps(images)
    finally:
        model.train(was_training)
    out: dict[str, Any] = {"stream": [], "update": [], "ratio": [], "mixing": []}
    for s, (x, u) in enumerate(zip(maps["streams"], maps["updates"], strict=True)):
        out["stream"].append(x.abs().mean(1).float().cpu().numpy())
        out["update"].append(u.abs().mean(1).float().cpu().numpy())
        norms = x.flatten(1).norm(dim=1).clamp_min(1e-12)
        out["ratio"].append((u.flatten(1).norm(dim=1) / norms).float().cpu().numpy())
        if maps["affinity"]:
            a = maps["affinity"][s].float()
            entropy = -(a * a.clamp_min(1e-30).log()).sum(-1)
            out["mixing"].append(entropy.exp().mean(-1).cpu().numpy())
        else:
            out["mixing"].append(np.ones(len(x), dtype=np.float32))
    gamma = getattr(model, "gamma", None)
    out["gamma"] = gamma.detach().float().cpu().numpy() if gamma is not None else np.zeros(len(out["stream"]))
    return out


def evaluate_worlds(
    method: str,
    model: nn.Module,
    preset: Any,
    targets: Sequence[str],
    *,
    device: torch.device | str | None = None,
) -> dict[str, dict[str, RankResult]]:
    """Direct transfer: ``model`` (trained on ``preset.dataset``) ranks each target dataset's test split, with the
    method's test distance and the preset's TTA; ``{target: {"standard": RankResult, "devkit": RankResult}}``."""
    results = {}
    for target in targets:
        data = load_method_dataset(preset.replace(dataset=target))
        results[target], _ = evaluate_ap_flavours(model, data, preset, method=method, device=device)
    return results


def run_budget(record: dict[str, Any], history: Any, model: nn.Module) -> dict[str, Any]:
    """What a run spent: epochs, iterations, images seen, image size, batch, training seconds, parameters."""
    preset = record.get("preset") or {}
    iterations = int(history["iterations"].sum()) if "iterations" in history else None
    batch = int(preset.get("batch_p", 0)) * int(preset.get("batch_k", 0))
    return {
        "method": record.get("method"), "model": preset.get("model"), "epochs": record.get("epochs"),
        "iterations": iterations, "images seen": iterations * batch if iterations is not None else None,
        "image size": "×".join(str(v) for v in preset.get("image_size", [])), "batch": batch,
        "optimizer": preset.get("optimizer"), "train s": record.get("train_seconds"),
        "parameters (M)": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
    }  # fmt: skip
