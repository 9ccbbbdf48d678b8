"""Checks of the lab's pretrained weights on a held-out world of another domain (``synth_duke`` by default).

* Every backbone: zero-shot image-to-image ReID (cosine on its pooled feature, Market protocol, standard AP,
  no TTA) with the lab weights and with a random initialisation of the same architecture, beside the
  difficulty card's colour matchers (no learning) on the same world.
* The small CLIP, also: text-to-image retrieval — each test identity's description as the query, the
  gallery images as candidates (no camera rule: a text has no camera) — against chance (the same ranking
  with random distances, averaged over 20 draws).
* The tiny ViT, also: the smoke TransReID run from the lab weights and from random initialisation, same budget.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.data import ReIDDataset, load_dataset
from reidlab.engine import evaluate_model
from reidlab.evaluation import evaluate_rank
from reidlab.pretrain.world import identity_labels

HELD_OUT_WORLD = "synth_duke"


class PooledEmbedding(nn.Module):
    """A pooled-feature backbone as a ReID model: ``forward(images, camids=None)`` -> its feature."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.preprocessing = backbone.preprocessing

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone(images)


def _numbers(rank) -> dict[str, float]:
    return {"mAP": round(100 * rank.mAP, 2), "R1": round(100 * rank.rank(1), 2)}


def zero_shot_reid(model: nn.Module, dataset: ReIDDataset, device: torch.device | str = "cpu") -> dict[str, float]:
    """Image-to-image retrieval with ``model``'s eval output (Market protocol, standard AP, no TTA)."""
    return _numbers(evaluate_model(model.eval(), dataset, device=device, batch_size=128))


def text_to_image(clip_embedding: nn.Module, dataset: ReIDDataset, device: torch.device | str = "cpu",
                  chance_draws: int = 20) -> dict[str, Any]:  # fmt: skip
    """Each gallery identity's description -> the gallery images; rank-1 / mAP and their chance levels."""
    from reidlab.engine import extract_split_features

    labels = identity_labels(dataset)
    gallery = [s for s in dataset.gallery if s.pid > 0 and s.original_pid in labels.captions]
    pids = sorted({s.pid for s in gallery})
    by_pid = {s.pid: s for s in gallery}
    texts = [labels.caption(by_pid[p]) for p in pids]
    feats = extract_split_features(clip_embedding.eval(), gallery, device=device, batch_size=128)
    q = clip_embedding.encode_texts(texts)
    distmat = 1 - q @ feats["features"].T
    q_pids, g_pids = np.array(pids), feats["pids"].numpy()
    q_cams, g_cams = np.full(len(pids), -1), feats["camids"].numpy()
    rank = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    rng = np.random.default_rng(0)
    chance = [evaluate_rank(rng.random(distmat.shape), q_pids, g_pids, q_cams, g_cams) for _ in range(chance_draws)]
    return {
        **_numbers(rank),
        "chance_mAP": round(100 * float(np.mean([c.mAP for c in chance])), 2),
        "chance_R1": round(100 * float(np.mean([c.rank(1) for c in chance])), 2),
        "queries": len(pids),
        "gallery": len(gallery),
        "distinct_descriptions": len(set(texts)),
    }


def colour_matchers(world: str, size: str = "mini") -> dict[str, dict[str, float]]:
    """The difficulty card's no-learning colour matchers on ``world`` (mAP / R1, Market protocol)."""
    import tempfile

    from reidlab.data.synthetic.difficulty import difficulty_card

    with tempfile.TemporaryDirectory() as scratch:  # the card's files are not wanted here, only its numbers
        card = difficulty_card(worlds=(world,), size=size, pairs=(), resnet=False, out_dir=scratch)
    rows = card[card["train"] == "-"]
    return {str(r["matcher"]): {"mAP": round(float(r["mAP"]), 2), "R1": round(float(r["rank1"]), 2)}
            for _, r in rows.iterrows()}  # fmt: skip


def run_checks(name: str, backbone: nn.Module, random_backbone: nn.Module, *, world: str = HELD_OUT_WORLD,
               size: str = "mini", device: torch.device | str = "cpu") -> dict[str, Any]:  # fmt: skip
    """Every check of the module docstring for a trained ``backbone`` against ``random_backbone``."""
    dataset = load_dataset(world, size=size)
    checks: dict[str, Any] = {"world": world, "size": size, "protocol": "market", "ap": "standard",
                              "flip_tta": False, "colour_matchers": colour_matchers(world, size)}  # fmt: skip
    if name == "clip_tiny_synth":
        from reidlab.models.lab_clip import ClipImageEmbedding, CompactTokenizer, default_vocabulary

        tokenizer = CompactTokenizer(default_vocabulary())
        trained, random = ClipImageEmbedding(backbone, tokenizer), ClipImageEmbedding(random_backbone, tokenizer)
        checks["text_to_image"] = {"lab": text_to_image(trained, dataset, device),
                                   "random_init": text_to_image(random, dataset, device)}  # fmt: skip
    else:
        trained, random = PooledEmbedding(backbone), PooledEmbedding(random_backbone)
    checks["zero_shot_reid"] = {"lab": zero_shot_reid(trained, dataset, device),
                                "random_init": zero_shot_reid(random, dataset, device)}  # fmt: skip
    return checks


#: The method whose smoke run measures what a backbone's lab weights are worth after fine-tuning.
FINETUNE_CHECKS = {"vit_tiny_d6_patch16": "transreid", "resnet18": "bot"}


def finetune_check(name: str, *, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The method's smoke run from the lab weights and from random initialisation, the same budget otherwise;
    test mAP / R1 of each (the method's own protocol, AP flavour and TTA, as recorded in its ``run.json``)."""
    from reidlab.methods import run

    method = FINETUNE_CHECKS[name]
    out: dict[str, Any] = {"method": method, "profile": "smoke"}
    for init, pretrained in (("lab", "lab"), ("random_init", False)):
        result = run(method, profile="smoke", pretrained=pretrained, name=f"pretrain-check-{init}", overwrite=True,
                     device=device)  # fmt: skip
        metrics = result.metrics
        out[init] = {"mAP": round(metrics["mAP"], 2), "R1": round(metrics["R1"], 2)}
        out.update(dataset=result.preset.dataset, protocol=metrics["protocol"], ap=metrics["ap"],
                   flip_tta=metrics["flip_tta"], epochs=result.preset.epochs)  # fmt: skip
    return out
