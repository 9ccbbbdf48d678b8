"""CLIP-ReID (Li, Sun, Li, AAAI 2023; Syliz517/CLIP-ReID) and its baseline: presets, build, the two stages.

Stage 1 learns 4 text tokens per identity in "A photo of a X X X X person." with CLIP's image and text towers
frozen (symmetric SupCon on cached image features, τ = 1, raw dot products); stage 2 fine-tunes the image encoder
with CE-LS on both BN-necks, batch-hard triplets on ``f_last`` / ``f`` / ``f_proj`` and CE of ``f_proj`` against the
frozen per-identity text features (methods spec §2.4–2.5). Test feature: ``concat(f, f_proj)`` before the BN-necks,
cosine ranking, no TTA (§2.6). ``clip_reid_baseline`` is the same image model trained with ID + triplet only (§2.7).

Presets: ``full`` is the ViT-B/16 recipe of ``configs/person/vit_clipreid.yml`` (256×128, P16×K4, bicubic resize,
flip, pad 10 + crop, pixel random erasing 0.5, mean = std = 0.5; stage 1: Adam 3.5e-4, weight decay 1e-4, timm
cosine with 5 warm-up epochs from 1e-5 to a floor of 1e-6, batch 64, 120 epochs; stage 2: Adam 5e-6, weight decay
1e-4, bias LR ×2, warm-up factor 0.1 over 10 epochs, ×0.1 at 30 and 50, 60 epochs; loss weights 0.25 / 1 / 1);
:func:`clip_reid_full_rn50` the RN50 recipe (``cnn_clipreid.yml``: ImageNet statistics, stage 2 Adam 3.5e-4, weight
decay 5e-4, warm-up factor 0.01, ×0.1 at 40 and 70, 120 epochs, stage 1 60 epochs, weights 1 / 1 / 1);
:func:`clip_reid_full_sie_olp` the README's "CLIP-ReID + SIE + OLP" (stride 12, SIE on the camera, coefficient
1.0). Run those with ``run("clip_reid", preset=clip_reid_full_rn50(get_profile("full")))``. The lab trains and
tests with one interpolation (the seed tests with bilinear after training with bicubic); the seed's
``TEST.RE_RANKING`` / ``FEAT_NORM`` string flags are replaced by the evaluator's real options.

``smoke`` is the same recipe in CPU minutes on the lab's small CLIP (:func:`clip_reid_smoke` says what changes).
Released checkpoints: ``load_official_checkpoint(path, method="clipreid")``
(:mod:`reidlab.models.clip_reid_official`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch.nn as nn

from reidlab.data.records import SPLITS
from reidlab.engine import Stage, TrainConfig
from reidlab.losses.clip_reid import ClipReIDLoss
from reidlab.methods.clip_stages import prompt_stage, reid_stage
from reidlab.methods.registry import Method, register_method
from reidlab.models import create_model
from reidlab.models.clip_text import CLIP_REID_TEMPLATE
from reidlab.profiles import Profile


@dataclass
class ClipReIDPreset(TrainConfig):
    """Every setting of a CLIP-ReID run (data, CLIP backbone, prompts, both stages, losses); override by keyword.

    The stage-2 optimisation is :class:`~reidlab.engine.TrainConfig`'s (``lr``, ``epochs``, ``milestones``, ...);
    stage 1 has its own ``stage1_*`` fields. ``normalize_text`` / ``text_logit_scale`` switch the image–text terms of
    both stages from CLIP-ReID's raw dot products to scaled cosines (off by default, for parity).
    """

    dataset: str = "market1501"
    data_root: str | None = None
    synth_size: str = "full"
    model: str = "clip_reid_vit_b16"
    pretrained: bool | Literal["auto", "lab"] = "auto"  # OpenAI file, else the lab's weights, else random init
    stride: int | None = None  # patch stride (None: the patch size; 12: overlapping patches, OLP)
    sie: bool = False  # SIE on the CLS token from the camera id
    sie_coef: float = 1.0
    neck_feat: Literal["before", "after"] = "before"
    pos_interpolation: str = "bilinear"  # position-embedding resize (CLIP-ReID bilinear, Multimodal-ReID bicubic)
    template: str = CLIP_REID_TEMPLATE
    # stage 1: the identity tokens
    stage1_epochs: int = 120
    stage1_batch: int = 64
    stage1_lr: float = 3.5e-4
    stage1_weight_decay: float = 1e-4
    stage1_warmup_epochs: int = 5
    stage1_warmup_lr: float = 1e-5
    stage1_lr_min: float = 1e-6
    # losses
    id_weight: float = 0.25
    triplet_weight: float = 1.0
    i2t_weight: float = 1.0
    label_smoothing: float = 0.1
    triplet_margin: float | None = 0.3
    normalize_text: bool = False
    text_logit_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage1_epochs < 1 or self.stage1_batch < 1:
            raise ValueError(f"stage1_epochs and stage1_batch must be >= 1, got {self.stage1_epochs}, "
                             f"{self.stage1_batch}")  # fmt: skip


def camera_count(dataset: Any) -> int:
    """SIE rows a dataset needs: its largest camera id (over every split) + 1."""
    return 1 + max((s.camid for split in SPLITS for s in getattr(dataset, split, [])), default=-1)


def vit_recipe(profile: Profile) -> dict[str, Any]:
    """``configs/person/vit_clipreid.yml`` (see the module docstring) as preset fields."""
    return dict(
        profile=profile.name, data_root=profile.data_root, eval_batch_size=profile.eval_batch_size,
        num_workers=profile.num_workers, seed=profile.seed, max_iters_per_epoch=profile.max_iters_per_epoch,
        dataset="market1501", synth_size="full", image_size=(256, 128), batch_p=16, batch_k=4, interpolation="bicubic",
        normalization="half", flip_p=0.5, padding=10, erasing_p=0.5, erasing_mode="pixel", erasing_area=(0.02, 1 / 3),
        erasing_ratio=(0.3, 1 / 0.3), erasing_log_ratio=True, erasing_attempts=10, flip_tta=False,
        optimizer="adam", lr=5e-6, weight_decay=1e-4, bias_lr_factor=2.0, weight_decay_bias=1e-4,
        schedule="multistep", warmup_epochs=10, warmup_factor=0.1, milestones=(30, 50), gamma=0.1, epochs=60,
        stage1_epochs=120, id_weight=0.25, checkpoint_every=10, validate_every=10,
    )  # fmt: skip


def rn50_recipe(profile: Profile) -> dict[str, Any]:
    """``configs/person/cnn_clipreid.yml``: the ViT recipe with the RN50's optimisation and loss weights."""
    return {**vit_recipe(profile), "model": "clip_reid_rn50", "normalization": "imagenet", "lr": 3.5e-4,
            "weight_decay": 5e-4, "weight_decay_bias": 5e-4, "warmup_factor": 0.01, "milestones": (40, 70),
            "epochs": 120, "stage1_epochs": 60, "id_weight": 1.0}  # fmt: skip


def clip_reid_full(profile: Profile) -> ClipReIDPreset:
    """CLIP-ReID on ViT-B/16, the paper's main setting (stride 16, no SIE)."""
    return ClipReIDPreset(**vit_recipe(profile))


def clip_reid_full_sie_olp(profile: Profile) -> ClipReIDPreset:
    """The README's recommended "CLIP-ReID + SIE + OLP": stride 12, SIE on the camera with coefficient 1.0."""
    return ClipReIDPreset(**vit_recipe(profile), stride=12, sie=True, sie_coef=1.0)


def clip_reid_full_rn50(profile: Profile) -> ClipReIDPreset:
    """CLIP-ReID on RN50 (layer4 stride 1, attention pool resized)."""
    return ClipReIDPreset(**rn50_recipe(profile))


def smoke_recipe(profile: Profile) -> dict[str, Any]:
    """The smoke-profile changes every CLIP method of the lab shares (see :func:`clip_reid_smoke`)."""
    return dict(
        dataset=profile.dataset, synth_size=profile.synth_size, model="clip_reid_tiny", image_size=(128, 64),
        normalization="clip", interpolation="bicubic", batch_p=profile.batch_p, batch_k=profile.batch_k, padding=4,
        fast_data=True, lr=1e-4, warmup_epochs=1, milestones=(5,), epochs=6, stage1_epochs=20, stage1_batch=160,
        stage1_warmup_epochs=2, stage1_lr=3e-3, checkpoint_every=0, log_every=5,
    )  # fmt: skip


def clip_reid_smoke(profile: Profile) -> ClipReIDPreset:
    """Minutes on 2 CPU cores: the lab's small CLIP (``clip_tiny_synth``: ViT width 192, 4 blocks, 128×64, patch 16
    at stride 16 — the 8×4 grid its caption pretraining used — and its CLIP normalisation), initialised from the
    lab's caption-pretrained weights when they resolve (``run.json`` records which). P8×K4, pad 4, the fast data
    path. Stage 1: 20 epochs over the 480 cached training features in batches of 160 (3 steps, each one text pass
    per identity in the batch) at LR 3e-3 with 2 warm-up epochs: 60 identities need a larger step than the full
    recipe's 3.5e-4 over 120 epochs of 751, and a batch holding most identities makes every step a full contrast.
    Stage 2: 6 epochs at LR 1e-4 (×0.1 at 5, one warm-up epoch): the full recipe's 5e-6 barely moves a small model
    in 90 steps. Single-thread CPU cost at 128×64: about 0.26 s per stage-2 step, 0.06 s per stage-1 step.
    """
    return ClipReIDPreset(**{**vit_recipe(profile), **smoke_recipe(profile)})


def build_clip_reid(preset: ClipReIDPreset, dataset: Any) -> tuple[nn.Module, ClipReIDLoss]:
    """The CLIP-ReID model (with its prompt learner) and the stage-2 loss; classes from ``dataset.num_train_pids``."""
    model = create_model(
        preset.model, num_classes=dataset.num_train_pids, pretrained=preset.pretrained,
        image_size=tuple(preset.image_size), stride=preset.stride,
        num_cameras=camera_count(dataset) if preset.sie else 0, sie_coef=preset.sie_coef, neck_feat=preset.neck_feat,
        text=preset.i2t_weight > 0, template=preset.template, normalization=preset.normalization,
        interpolation=preset.interpolation, pos_interpolation=preset.pos_interpolation,
    )  # fmt: skip
    return model, stage2_loss(preset)


def stage2_loss(preset: ClipReIDPreset, self_consistency_weight: float = 0.0) -> ClipReIDLoss:
    return ClipReIDLoss(id_weight=preset.id_weight, triplet_weight=preset.triplet_weight,
                        i2t_weight=preset.i2t_weight, label_smoothing=preset.label_smoothing,
                        triplet_margin=preset.triplet_margin,
                        self_consistency_weight=self_consistency_weight)  # fmt: skip


def clip_reid_stages(preset: ClipReIDPreset, dataset: Any, model: nn.Module, loss: ClipReIDLoss) -> list[Stage]:
    """Stage 1 on cached image features, then stage 2 against stage 1's text features."""
    return [prompt_stage(preset, dataset, images="cached"), reid_stage(preset, loss, dataset, text="locked")]


def clip_reid_baseline_stages(preset: ClipReIDPreset, dataset: Any, model: nn.Module, loss: Any) -> list[Stage]:
    """One stage: the image encoder fine-tuned with ID + triplet (no text, no stage 1)."""
    return [reid_stage(preset, loss, dataset, text="none", name="train")]


def _baseline(make):
    def preset(profile: Profile) -> ClipReIDPreset:
        return make(profile).replace(i2t_weight=0.0)

    preset.__doc__ = f"The CLIP-ReID baseline (ID + triplet only) of {make.__name__}."
    return preset


CLIP_REID = register_method(
    Method(
        name="clip_reid",
        description="CLIP-ReID (Li et al. 2023): identity text tokens (stage 1), image encoder vs text features (2)",
        preset_type=ClipReIDPreset,
        presets={"smoke": clip_reid_smoke, "full": clip_reid_full},
        build=build_clip_reid,
        stages=clip_reid_stages,
        official="clipreid",
    )
)

CLIP_REID_BASELINE = register_method(
    Method(
        name="clip_reid_baseline",
        description="CLIP-ReID's baseline: the CLIP image encoder fine-tuned with ID + triplet losses only",
        preset_type=ClipReIDPreset,
        presets={"smoke": _baseline(clip_reid_smoke), "full": _baseline(clip_reid_full)},
        build=build_clip_reid,
        stages=clip_reid_baseline_stages,
        official="clipreid",
    )
)
