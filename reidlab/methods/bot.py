"""BoT strong baseline (Luo et al. 2019, reid-strong-baseline): its preset, ``smoke`` / ``full`` presets and build.

``full`` is the paper: 256×128, P16×K4, Adam 3.5e-4 with weight decay 5e-4, linear warm-up over 10 epochs
from 3.5e-5, ×0.1 at epochs 40 and 70, 120 epochs, flip 0.5, pad 10 + random crop, random erasing 0.5, CE
with label smoothing 0.1 + batch-hard triplet (margin 0.3), optional centre loss (weight 5e-4, centres by
SGD at 0.5), BNNeck, test feature after BN, cosine distance. Random erasing fills with the mean colour (0
after normalisation), the intent of Zhong et al.; BoT's code writes the raw ImageNet mean values into the
normalised tensor. ``smoke`` is a CPU-minutes version on the synthetic world: 64×32 images, ResNet-18
(ResNet-50 is too slow on 2 CPU cores), 40 epochs with a 2-epoch warm-up and one decay (at 30), the fast
data path. Released checkpoints: ``load_official_checkpoint(path, method="bot")``
(:mod:`reidlab.models.bot_official`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch.nn as nn

from reidlab.engine import TrainConfig
from reidlab.losses import BoTLoss
from reidlab.methods.registry import Method, register_method
from reidlab.models import create_model
from reidlab.profiles import Profile


@dataclass
class BoTPreset(TrainConfig):
    """Every setting of a BoT run (data, model, loss, optimisation); override any field by keyword."""

    dataset: str = "market1501"
    data_root: str | None = None
    synth_size: str = "full"
    model: str = "bot_resnet50"
    pretrained: bool | Literal["auto", "lab"] = "auto"  # release file, else the lab's weights, else random init
    neck_feat: Literal["after", "before"] = "after"
    label_smoothing: float = 0.1
    triplet_margin: float | None = 0.3  # None: soft margin
    center_loss_weight: float = 0.0  # BoT's optional centre loss: 5e-4
    normalize_triplet: bool = False


def _from_profile(profile: Profile, **fields: Any) -> BoTPreset:
    common = dict(
        profile=profile.name,
        dataset=profile.dataset,
        data_root=profile.data_root,
        synth_size=profile.synth_size,
        image_size=tuple(profile.image_size),
        batch_p=profile.batch_p,
        batch_k=profile.batch_k,
        epochs=profile.epochs,
        max_iters_per_epoch=profile.max_iters_per_epoch,
        eval_batch_size=profile.eval_batch_size,
        num_workers=profile.num_workers,
        flip_tta=profile.flip_tta,
        seed=profile.seed,
        # BoT's augmentation: bilinear resize, flip, pad 10 + crop, Zhong et al.'s random erasing
        interpolation="bilinear",
        erasing_p=0.5,
        erasing_mode="zero",
        erasing_area=(0.02, 0.4),
        erasing_ratio=(0.3, 1 / 0.3),
        erasing_log_ratio=False,
        erasing_attempts=100,
    )
    common.update(fields)
    return BoTPreset(**common)


def bot_full(profile: Profile) -> BoTPreset:
    """The paper's recipe (see module docstring)."""
    return _from_profile(
        profile,
        model="bot_resnet50",
        optimizer="adam",
        lr=3.5e-4,
        weight_decay=5e-4,
        schedule="multistep",
        warmup_epochs=10,
        warmup_factor=0.1,
        milestones=(40, 70),
        gamma=0.1,
        checkpoint_every=10,
        validate_every=10,
    )


def bot_smoke(profile: Profile) -> BoTPreset:
    """Minutes on 2 CPU cores: ResNet-18 at the profile's small image size, fast (decode-once) data path.

    40 epochs (decay at 30) instead of the profile's few: a randomly initialised ResNet-18 needs a few
    hundred iterations on the mini world to learn identities rather than camera backgrounds; at 20
    epochs its training loss was still falling steeply. About 80 s of training on 2 idle CPU cores;
    a checkpoint every 10 epochs.
    """
    return _from_profile(
        profile,
        model="bot_resnet18",
        epochs=40,
        optimizer="adam",
        lr=1e-3,
        weight_decay=5e-4,
        schedule="multistep",
        warmup_epochs=2,
        warmup_factor=0.1,
        milestones=(30,),
        gamma=0.1,
        padding=4,
        fast_data=True,
        checkpoint_every=10,
        validate_every=5,
        log_every=5,
    )


def build_bot(preset: BoTPreset, dataset: Any) -> tuple[nn.Module, BoTLoss]:
    """The BoT model and loss for ``preset``; the class count comes from ``dataset.num_train_pids``."""
    num_classes = dataset.num_train_pids
    model = create_model(
        preset.model, num_classes=num_classes, pretrained=preset.pretrained, neck_feat=preset.neck_feat
    )
    loss = BoTLoss(
        num_classes=num_classes,
        feat_dim=model.embed_dim,
        label_smoothing=preset.label_smoothing,
        triplet_margin=preset.triplet_margin,
        center_weight=preset.center_loss_weight,
        normalize_triplet=preset.normalize_triplet,
    )
    return model, loss


BOT = register_method(
    Method(
        name="bot",
        description="BoT strong baseline (Luo et al. 2019): ResNet + BNNeck, CE-LS + triplet",
        preset_type=BoTPreset,
        presets={"smoke": bot_smoke, "full": bot_full},
        build=build_bot,
        official="bot",
    )
)
