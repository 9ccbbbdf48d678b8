"""``pretrain(model, profile)``: train one of the lab's backbones on the pretraining world, then export it.

Training goes through the lab's engine (one stage of :func:`reidlab.engine.run_stages`, so run folders,
locking, exact resume, the CSV and TensorBoard logs are those of every method) into
``runs/pretrain/synth_pretrain-<profile>-<model>``. The export writes the backbone's weights in the layout
its consumers load (timm's for the CNN and ViT, open_clip's for CLIP), as fp16 safetensors, with a model
card, to ``data/weights/lab/<model>.safetensors`` / ``.json`` (both atomically).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from reidlab.device import pick_device
from reidlab.engine import TrainResult, run_folder, run_stages, standard_stage
from reidlab.engine.checkpoint import unwrap_model
from reidlab.preprocessing import Preprocessing, attach_preprocessing
from reidlab.pretrain.cards import export_weights
from reidlab.pretrain.objectives import (
    ContrastiveForward,
    SupervisedPretrainer,
    SupervisedPretrainLoss,
    contrastive_loss,
)
from reidlab.pretrain.specs import PretrainPreset, PretrainSpec, get_pretrain_preset, get_spec
from reidlab.pretrain.world import ATTRIBUTE_HEADS, PRETRAIN_WORLD, identity_labels, load_pretrain_world


@dataclass
class PretrainResult:
    """A pretraining run: its trained module (the backbone or the CLIP), where the weights and card went."""

    name: str
    preset: PretrainPreset
    backbone: nn.Module
    run_dir: Path
    train: TrainResult
    weights: Path | None = None
    card: dict[str, Any] = field(default_factory=dict)


def _supervised_stage(spec: PretrainSpec, preset: PretrainPreset, dataset, labels):
    backbone = spec.build(preset)
    model = SupervisedPretrainer(backbone, num_classes=dataset.num_train_pids,
                                 attribute_classes={k: len(v) for k, v in ATTRIBUTE_HEADS.items()})  # fmt: skip
    loss = SupervisedPretrainLoss(list(ATTRIBUTE_HEADS), label_smoothing=preset.label_smoothing,
                                  triplet_weight=preset.triplet_weight, attribute_weight=preset.attribute_weight)
    stage = standard_stage(preset, loss, dataset, keep_best=False,
                           batch_fields={"attributes": labels.attribute_tensor})  # fmt: skip
    return model, backbone, stage


def _contrastive_stage(spec: PretrainSpec, preset: PretrainPreset, dataset, labels):
    from reidlab.models.lab_clip import CompactTokenizer, default_vocabulary

    clip = spec.build(preset)
    tokenizer = CompactTokenizer(default_vocabulary())

    def step(ctx, batch):
        parts = ctx.default_step(batch)
        with torch.no_grad():  # CLIP's rule: the temperature stays below 100
            clip.logit_scale.clamp_(0, math.log(100))
        return parts

    stage = standard_stage(preset, contrastive_loss, dataset, keep_best=False, step_fn=step,
                           forward_fn=ContrastiveForward(tokenizer), batch_fields={"caption": labels.caption})
    return clip, clip, stage


def pretrain(
    model: str,
    profile: str = "smoke",
    *,
    dataset: Any = None,
    device: torch.device | str | None = None,
    resume: bool | str = False,
    overwrite: bool = False,
    export: bool = True,
    run_dir: str | Path | None = None,
    **overrides: Any,
) -> PretrainResult:
    """Pretrain ``model`` (a name of :data:`reidlab.pretrain.specs.SPECS`) under ``profile`` and export it.

    ``dataset`` defaults to the pretraining world at the preset's ``world_size`` (tests pass a tiny world of
    their own). ``resume`` / ``overwrite`` follow the run-folder rules of every run; ``export=False`` only
    trains. Returns the run, the trained backbone and the card.
    """
    spec = get_spec(model)
    preset = get_pretrain_preset(model, profile, **overrides)
    device = torch.device(device) if device is not None else pick_device()
    dataset = dataset if dataset is not None else load_pretrain_world(preset.world_size)
    labels = identity_labels(dataset)
    torch.manual_seed(preset.seed)
    build = _supervised_stage if spec.kind == "supervised" else _contrastive_stage
    trained_module, backbone, stage = build(spec, preset, dataset, labels)
    attach_preprocessing(backbone, Preprocessing.of(preset))
    run_dir = Path(run_dir) if run_dir is not None else run_folder("pretrain", PRETRAIN_WORLD, profile, name=model)
    started = time.time()
    meta = {"method": "pretrain", "model": model, "profile": profile}
    result = run_stages(trained_module, [stage], config=preset, run_dir=run_dir, device=device, resume=resume,
                        overwrite=overwrite, meta=meta)
    backbone = unwrap_model(backbone).cpu().eval()
    out = PretrainResult(model, preset, backbone, run_dir, result)
    if export and result.completed:
        out.weights, out.card = export_weights(spec, preset, backbone, dataset, result,
                                               wall_seconds=time.time() - started, overwrite=overwrite)
    return out


def load_lab_backbone(name: str, pretrained: Any = "lab") -> nn.Module:
    """The backbone ``name`` with the lab's weights (``pretrained="lab"``) or randomly initialised (False)."""
    from reidlab.weights import load_into, resolve_weights

    spec = get_spec(name)
    preset = get_pretrain_preset(name)
    if spec.kind == "contrastive":
        from reidlab.models.lab_clip import create_lab_clip

        model, _ = create_lab_clip(pretrained)
        return model.eval()
    backbone = spec.build(preset)
    path = resolve_weights(name, pretrained)
    if path is not None:
        load_into(backbone, path)
    return attach_preprocessing(backbone, Preprocessing.of(preset)).eval()


def check_and_record(name: str, *, device: torch.device | str = "cpu") -> dict:
    """Run :func:`reidlab.pretrain.checks.run_checks` (and, for the ViT, the smoke TransReID fine-tuning from lab
    weights vs random initialisation) on the lab weights ``name``, and store the numbers in its card."""
    from reidlab.pretrain.cards import read_card, write_card
    from reidlab.pretrain.checks import FINETUNE_CHECKS, finetune_check, run_checks
    from reidlab.weights import lab_weight_file

    card = read_card(name)
    torch.manual_seed(0)
    checks = run_checks(name, load_lab_backbone(name, "lab"), load_lab_backbone(name, False), device=device)
    if name in FINETUNE_CHECKS:
        checks["finetune"] = finetune_check(name, device=device)
    card["checks"] = checks
    write_card(lab_weight_file(name), card)
    return checks
