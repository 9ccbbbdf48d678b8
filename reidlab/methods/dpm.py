"""DPM (Tan et al., ACM MM 2022, stone96123/DPM): dynamic prototype masks on TransReID for occluded ReID.

``full`` is the seed's ``configs/OCC_Duke/dpm.yml`` (methods spec §2.4): TransReID's recipe (§0; see
:mod:`reidlab.methods.transreid`) without JPM, stride 11, SIE on the camera, 150 epochs; the hierarchical mask
generator on blocks 2/4/10/12; loss ``0.5·CE(z) + 0.5·CE(masked-prototype ArcFace, s = 30) + λ·L_orth + soft
triplet``; two optimisers updated alternately on every batch (§2.3, :func:`alternating_step`); the test distance
is the query-mask-weighted cosine (§2.6), declared below and used by evaluation and re-ranking alike.

The repository's faults are fixed by default (§2.8); where results depend on them its behaviour is an option
named after it, collected in :data:`REPO_OCCLUDED_DUKE` / :data:`REPO_MARKET` (pass as overrides):

* the mask optimiser follows the backbone's schedule (``mask_lr_schedule="backbone"``); the repo never
  attaches it to the scheduler (``"repo_constant"``: LR 0.008 for the whole run);
* the orthogonality loss is a batch mean with an explicit weight (``orth_reduction="mean"``); the repo sums it
  over the batch (``"repo_batch_sum"``);
* the ArcFace margin is 0.3 everywhere, as the repo's Market and Duke configs; its Occluded-Duke config leaves
  the default 0.5 (``arcface_margin=0.5``);
* ArcFace in float32 with a clamped sine, a batch of one, the CPU path and the patch grid from the patch
  embedding need no option.

Occluded-REID is evaluated as the seed does: train on Market-1501 (:data:`MARKET_FOR_OCCLUDED_REID`: 50 epochs,
stride 12, λ = 0.01 and colour jitter, the two manual edits the author names in issue #5; ``REPO_MARKET`` adds the
repository's faults), test on Occluded-REID with queries on camera 0 and the gallery on camera 2 (the loader's
documented default).

``update="alternating"`` is the seed's update. Its two passes need not backpropagate what their optimiser does
not step: the first pass holds the mask generator's parameters fixed, the second the backbone's, which leaves
both updates exactly the seed's (the seed computes those gradients and discards them) at a lower cost.
``update="joint"`` (one forward and backward, both optimisers stepped) is a cheaper variant with the same
fixed points but not the same trajectory: the mask generator then learns from the pre-update backbone.
Training FLOPs per image (``torch.utils.flop_counter``; ``full``: ViT-B at 256×128, stride 11; ``smoke``: the tiny
ViT at 128×64, stride 16): TransReID with JPM 135 / 0.64 GFLOP; DPM alternating 256 / 1.48 (1.9× / 2.3×), the
seed's two full backward passes would be about 382 / 2.19, joint 191 / 1.10.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from reidlab.engine import (
    EvalSplit,
    Stage,
    StageInputs,
    StagePlan,
    StepContext,
    TestDistance,
    build_optimizer,
    build_scheduler,
    evaluate_model,
    param_groups,
    split_validation,
    standard_stage,
)
from reidlab.losses.dpm import DPMLoss
from reidlab.methods.registry import Method, register_method
from reidlab.methods.transreid import TransReIDPreset, camera_slots, seed_recipe, smoke_recipe
from reidlab.models import create_model
from reidlab.models.dpm import DPM
from reidlab.preprocessing import Preprocessing
from reidlab.profiles import Profile

#: DPM's test distance: the query's mask re-weights the normalised gallery feature (methods spec §2.6).
DPM_DISTANCE = TestDistance("masked_cosine", {"q_masks": "mask"})

#: The repository's result-changing behaviour on Occluded-Duke (``get_preset("dpm", "full", **REPO_OCCLUDED_DUKE)``).
REPO_OCCLUDED_DUKE: dict[str, Any] = {"mask_lr_schedule": "repo_constant", "orth_reduction": "repo_batch_sum",
                                      "arcface_margin": 0.5}  # fmt: skip
#: The seed's Market-1501 training for Occluded-REID: its Market config (stride 12, 50 epochs) plus the two manual
#: edits the author names in issue #5 (λ_orth = 0.01, colour jitter), with the lab's fixes.
MARKET_FOR_OCCLUDED_REID: dict[str, Any] = {"dataset": "market1501", "stride": 12, "epochs": 50, "orth_weight": 0.01,
                                            "color_jitter": (0.3, 0.3, 0.2, 0.2)}  # fmt: skip
#: The same with the repository's result-changing behaviour (its Market config sets the ArcFace margin 0.3).
REPO_MARKET: dict[str, Any] = {**MARKET_FOR_OCCLUDED_REID, "mask_lr_schedule": "repo_constant",
                               "orth_reduction": "repo_batch_sum", "arcface_margin": 0.3}  # fmt: skip


@dataclass
class DPMPreset(TransReIDPreset):
    """TransReID's settings (no JPM) plus DPM's: mask blocks, ArcFace, head-enrich loss, the two optimisers."""

    model: str = "dpm_vit_base_patch16"
    jpm: bool = False
    epochs: int = 150
    mask_blocks: tuple[int, ...] | None = None  # None: 2, 4, 10, 12 of 12 (the same relative depths otherwise)
    arcface_scale: float = 30.0
    arcface_margin: float = 0.3
    orth_weight: float = 0.1
    orth_reduction: Literal["mean", "repo_batch_sum"] = "mean"
    mask_lr: float | None = None  # None: the backbone's base LR (bias ×bias_lr_factor)
    mask_lr_schedule: Literal["backbone", "repo_constant"] = "backbone"
    update: Literal["alternating", "joint"] = "alternating"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.jpm:
            raise ValueError("DPMPreset.jpm: DPM has no JPM branch (the seed's DPM configs set JPM False)")


def dpm_full(profile: Profile) -> DPMPreset:
    """The seed's Occluded-Duke recipe (module docstring) with the repository's faults fixed; 150 epochs."""
    return DPMPreset(**{**seed_recipe(profile), "dataset": "occluded_duke", "synth_size": "full", "epochs": 150,
                        "checkpoint_every": 10, "validate_every": 10})


def dpm_smoke(profile: Profile) -> DPMPreset:
    """TransReID's smoke recipe (:func:`reidlab.methods.transreid.transreid_smoke`: 128×64, stride 16 -> 8×4
    patches, the lab's tiny ViT, 12 epochs) with DPM's modules; the mask reads blocks 1, 2, 5, 6 of the 6-block ViT
    (2, 4, 10, 12 of 12 at the same relative depths). The same data, epochs, batch, optimiser and schedule as
    TransReID's smoke preset: equal budget."""
    return DPMPreset(**{**seed_recipe(profile), **smoke_recipe(profile)}, model="dpm_vit_tiny_d6_patch16")


def build_dpm(preset: DPMPreset, dataset: Any) -> tuple[nn.Module, DPMLoss]:
    """The DPM model and loss for ``preset``; classes from ``dataset.num_train_pids``, SIE rows from its cameras."""
    model = create_model(
        preset.model, num_classes=dataset.num_train_pids, pretrained=preset.pretrained,
        image_size=tuple(preset.image_size), stride=preset.stride, drop_path_rate=preset.drop_path,
        sie_cameras=camera_slots(dataset) if preset.sie == "camera" else 0, sie_coef=preset.sie_coef,
        mask_blocks=preset.mask_blocks, neck_feat=preset.neck_feat,
    )  # fmt: skip
    loss = DPMLoss(arcface_scale=preset.arcface_scale, arcface_margin=preset.arcface_margin,
                   orth_weight=preset.orth_weight, orth_reduction=preset.orth_reduction,
                   triplet_margin=preset.triplet_margin)  # fmt: skip
    return model, loss


def split_parameters(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """``(backbone, mask generator)`` named trainable parameters: the seed's split (``ConvLayer`` / ``attfc`` vs
    everything else: ViT, SIE, BNNeck, prototypes)."""
    mask, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (mask if name.startswith("mask_generator.") else rest).append((name, param))
    if not mask:
        raise ValueError(f"{type(model).__name__} has no mask_generator parameters; is it a DPM model?")
    return rest, mask


def dpm_optimizers(model: nn.Module, preset: DPMPreset) -> dict[str, torch.optim.Optimizer]:
    """``{"backbone": ..., "mask": ...}``: the preset's optimiser over each share, bias LR ×``bias_lr_factor``."""
    backbone, mask = split_parameters(model)
    common = dict(weight_decay=preset.weight_decay, bias_lr_factor=preset.bias_lr_factor,
                  weight_decay_bias=preset.weight_decay_bias, weight_decay_norm=preset.weight_decay_norm,
                  no_decay=tuple(preset.no_decay), lr_factors=preset.lr_factors)  # fmt: skip
    mask_lr = preset.lr if preset.mask_lr is None else preset.mask_lr
    opt = dict(weight_decay=preset.weight_decay, momentum=preset.momentum, nesterov=preset.nesterov)
    return {
        "backbone": build_optimizer(preset.optimizer, param_groups(model, lr=preset.lr, include=backbone, **common),
                                    lr=preset.lr, **opt),  # fmt: skip
        "mask": build_optimizer(preset.optimizer, param_groups(model, lr=mask_lr, include=mask, **common),
                                lr=mask_lr, **opt),  # fmt: skip
    }


def dpm_schedulers(optimizers: dict[str, torch.optim.Optimizer], preset: DPMPreset) -> dict[str, Any]:
    """The preset's schedule for the backbone; for the mask optimiser the same, or a constant LR (the repo's)."""
    schedule = dict(epochs=preset.epochs, warmup_epochs=preset.warmup_epochs, warmup_factor=preset.warmup_factor,
                    warmup_lr_init=preset.warmup_lr_init, milestones=preset.milestones, gamma=preset.gamma,
                    lr_min=preset.lr_min)  # fmt: skip
    mask_kind = preset.schedule if preset.mask_lr_schedule == "backbone" else "constant"
    return {"backbone": build_scheduler(preset.schedule, optimizers["backbone"], **schedule),
            "mask": build_scheduler(mask_kind, optimizers["mask"], **schedule)}  # fmt: skip


@contextlib.contextmanager
def frozen(params: list[nn.Parameter]) -> Iterator[None]:
    """Parameters excluded from backpropagation inside the block (their flags restored after it)."""
    flags = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(params, flags, strict=True):
            p.requires_grad_(flag)


def _share(ctx: StepContext, name: str) -> list[nn.Parameter]:
    return [p for group in ctx.optimizers[name].param_groups for p in group["params"]]


def alternating_step(ctx: StepContext, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """DPM's update on one batch: forward, loss, backward, step the backbone optimiser; then a second forward
    with the updated backbone, the same loss, backward, step the mask optimiser. Each pass backpropagates only
    into the parameters its optimiser steps (gradients still flow *through* the mask into the backbone in the
    first pass), which is the seed's update without the gradients it discards."""
    backbone, mask = _share(ctx, "backbone"), _share(ctx, "mask")
    ctx.zero_grad(["backbone"])
    with frozen(mask):
        total, parts = ctx.loss(ctx.forward(batch), batch)
        ctx.backward(total)
    ctx.step(["backbone"])
    ctx.zero_grad(["mask"])
    with frozen(backbone):
        second, _ = ctx.loss(ctx.forward(batch), batch)
        ctx.backward(second)
    ctx.step(["mask"])
    return {"loss": total.detach(), **parts, "loss_mask_pass": second.detach()}


def joint_step(ctx: StepContext, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """One forward and backward, both optimisers stepped (``update="joint"``)."""
    return ctx.default_step(batch)


def masked_validation(split: EvalSplit, preset: DPMPreset, device: torch.device):
    """Validation on held-out training identities with DPM's own (masked) test distance."""
    preprocessing = Preprocessing.of(preset)

    def validate(model: nn.Module) -> dict[str, float]:
        result = evaluate_model(model, split, flip=preset.flip_tta, distance=DPM_DISTANCE, device=device,
                                batch_size=preset.eval_batch_size, num_workers=preset.num_workers,
                                fast=preset.fast_data, preprocessing=preprocessing)  # fmt: skip
        return {"mAP": 100 * result.mAP, "rank1": 100 * result.rank(1)}

    return validate


def dpm_stages(preset: DPMPreset, dataset: Any, model: nn.Module, loss: DPMLoss) -> list[Stage]:
    """One stage: the P×K loader, the two optimisers with their schedules and the alternating (or joint) step."""
    if not isinstance(model, DPM):
        raise TypeError(f"the dpm method trains a DPM model, got {type(model).__name__}")
    train: Any = dataset
    split = None
    if preset.val_ids > 0:
        train, split = split_validation(list(dataset.train), preset.val_ids, seed=preset.seed)
    optimizers = dpm_optimizers(model, preset)
    step = alternating_step if preset.update == "alternating" else joint_step
    base = standard_stage(preset, loss, train, val_split=split, optimizers=optimizers,
                          schedulers=dpm_schedulers(optimizers, preset), step_fn=step,
                          find_unused_parameters=True)  # fmt: skip

    def build(inputs: StageInputs) -> StagePlan:
        plan = base.build(inputs)
        if split is not None:
            plan.validate = masked_validation(split, preset, inputs.device)
        return plan

    return [Stage(base.name, base.epochs, build)]


DPM_METHOD = register_method(
    Method(
        name="dpm",
        description="DPM (Tan et al. 2022): TransReID + hierarchical channel mask on the identity prototypes, "
        "head-enrich loss, alternating two-optimiser update, masked test distance",
        preset_type=DPMPreset,
        presets={"smoke": dpm_smoke, "full": dpm_full},
        build=build_dpm,
        stages=dpm_stages,
        distance=DPM_DISTANCE,
        official="dpm",
    )
)
