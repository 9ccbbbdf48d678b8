"""MuDeep v2 (Qian et al., TPAMI 2019; naiq/MuDeep_v2): its preset, ``smoke`` / ``full`` presets, build and stage.

``full`` is the official recipe (spec §1.5): ResNet-50 at 384×192 (bicubic), an epoch of 3 passes over every
identity with K = 6 images each in batches of P12 × K6 = 72 (187 iterations on Market-1501), horizontal flip,
Zhong et al.'s random erasing (p 0.5, area 0.02-0.4, aspect 0.3-3.33 drawn uniformly, 100 attempts, filled with
the mean colour = 0 after normalisation), no padding or crop; SGD with Nesterov momentum 0.9 and weight decay
5e-4, LR 0.09 for the heads and the attention's query/key convolutions and 0.009 for everything else (trunk,
streams, leader, γ gates), no warm-up; 160 epochs with one ×0.1 drop: epochs 1-79 at the base LR, 80-160 at
×0.1 (``milestones=(80,)``). The official script steps ``StepLR(80)`` before each epoch, which also runs the
last epoch (160) at ×0.01: ``milestones=(80, 160)`` reproduces that exactly. Loss: 2 · CE over the 12 part
classifiers (averaged per scale) + batch-hard triplet, margin 1.0, on each scale's L2-normalised global feature
(:mod:`reidlab.losses.mudeep`). Test: the 6144-d descriptor, flip TTA, cosine distance; the official numbers use
the Market devkit (trapezoid) AP — :func:`evaluate_ap_flavours` reports it beside the standard AP.

``smoke`` is minutes on 2 CPU cores on the synthetic world: the ResNet-18-width model at the profile's 64×32, the
profile's P×K sampler and the fast data path; see :func:`mudeep_v2_smoke`. Each training step logs the γ gates
(``gamma/s1`` ... in ``metrics.csv``). Released checkpoints: ``load_official_checkpoint(path, method="mudeep_v2")``
(:mod:`reidlab.models.mudeep_v2_official`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from reidlab.data import ImageDataset, Sample, build_train_transform
from reidlab.data.pass_sampler import IdentityPassSampler
from reidlab.engine import Stage, StageInputs, StagePlan, TrainConfig, split_validation, standard_stage
from reidlab.engine.distributed import get_rank, get_world_size
from reidlab.engine.loaders import default_cache_dir, fits_on_device
from reidlab.engine.trainer import StepContext, StepFn
from reidlab.evaluation import RankResult, evaluate
from reidlab.losses.mudeep import MuDeepLoss
from reidlab.methods.registry import Method, get_method, register_method
from reidlab.methods.run import evaluate_method
from reidlab.models import create_model
from reidlab.profiles import Profile
from reidlab.settings import require

#: Parameter-name prefixes of the layers the official optimiser trains at 10x the base LR.
NEW_LAYERS = ("heads.", "attention.")


@dataclass
class MuDeepV2Preset(TrainConfig):
    """Every setting of a MuDeep v2 run; override any field by keyword."""

    dataset: str = "market1501"
    data_root: str | None = None
    synth_size: str = "full"
    model: str = "mudeep_v2_resnet50"
    pretrained: bool | Literal["auto", "lab"] = "auto"  # release file, else the lab's weights, else random init
    attention: Literal["channel", "spatial", "none"] = "channel"  # code / paper's wording / plain multi-scale
    scaled_attention: bool = False  # divide the attention logits by sqrt(d); the code does not
    triplet_margin: float = 1.0
    id_weight: float = 2.0
    triplet_weight: float = 1.0
    sampler_passes: int = 0  # > 0: the official sampler (that many passes over every identity per epoch); 0: P×K

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.sampler_passes >= 0, self, "sampler_passes", "an integer >= 0 (0: the lab's P×K sampler)")
        require(self.triplet_margin >= 0, self, "triplet_margin", "a margin >= 0")
        require(self.sampler_passes == 0 or self.sampler == "pk", self, "sampler_passes",
                "0 with sampler='cross_modality'")  # fmt: skip


def _from_profile(profile: Profile, **fields: Any) -> MuDeepV2Preset:
    common = dict(
        profile=profile.name, dataset=profile.dataset, data_root=profile.data_root, synth_size=profile.synth_size,
        image_size=tuple(profile.image_size), batch_p=profile.batch_p, batch_k=profile.batch_k, epochs=profile.epochs,
        max_iters_per_epoch=profile.max_iters_per_epoch, eval_batch_size=profile.eval_batch_size,
        num_workers=profile.num_workers, seed=profile.seed,
        # the official augmentation: bicubic resize, flip, random erasing filled with the mean colour; no crop
        interpolation="bicubic", padding=0, erasing_p=0.5, erasing_mode="zero", erasing_area=(0.02, 0.4),
        erasing_ratio=(0.3, 1 / 0.3), erasing_log_ratio=False, erasing_attempts=100, flip_tta=True,
        # the official optimiser: SGD-Nesterov, 10x LR on the new layers, no warm-up, one step decay
        optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4, lr_factors=dict.fromkeys(NEW_LAYERS, 10.0),
        schedule="multistep", warmup_epochs=0, gamma=0.1,
    )  # fmt: skip
    common.update(fields)
    return MuDeepV2Preset(**common)


def mudeep_v2_full(profile: Profile) -> MuDeepV2Preset:
    """The official recipe (module docstring): 384×192, 3 passes × P12 × K6, SGD 0.009 / 0.09, drop at epoch 80."""
    return _from_profile(
        profile, model="mudeep_v2_resnet50", image_size=(384, 192), batch_p=12, batch_k=6, sampler_passes=3,
        lr=0.009, epochs=160, milestones=(80,), eval_batch_size=128, seed=12345, checkpoint_every=10,
        validate_every=5,
    )  # fmt: skip


def mudeep_v2_smoke(profile: Profile) -> MuDeepV2Preset:
    """Minutes on 2 CPU cores: ``mudeep_v2_resnet18`` at the profile's 64×32 (a 4×2 map after layer3 at stride 1),
    P8×K4, the fast data path, the official optimiser and loss, no flip TTA (notebook 03 reports both).

    10 epochs (about 110 iterations on the mini world), LR 0.02 / 0.2 on the new layers (the official ratio of
    10), ×0.1 from epoch 8. An iteration costs about 2.7 times BoT-ResNet-18's at this size (three last-stage
    copies and three 512×512 channel affinities), so the epochs are what fits the notebook's time. The LR was
    chosen on a validation split of 12 training identities (``val_ids=12``, a 12-epoch schedule with the drop at
    10), never on the test split: validation mAP at epochs 5 / 10 was 54.0 / 61.5 with LR 0.02, 51.8 / 56.4 with
    the official 0.009, and 52.1 at epoch 5 with 0.05 (whose training loss was higher throughout).
    """
    return _from_profile(
        profile, model="mudeep_v2_resnet18", epochs=10, lr=0.02, milestones=(8,), fast_data=True, flip_tta=False,
        checkpoint_every=5, validate_every=5, log_every=5,
    )  # fmt: skip


def build_mudeep_v2(preset: MuDeepV2Preset, dataset: Any) -> tuple[nn.Module, MuDeepLoss]:
    """The MuDeep v2 model and loss for ``preset``; the class count comes from ``dataset.num_train_pids``."""
    model = create_model(
        preset.model, num_classes=dataset.num_train_pids, pretrained=preset.pretrained, attention=preset.attention,
        scaled_attention=preset.scaled_attention,
    )  # fmt: skip
    loss = MuDeepLoss(triplet_margin=preset.triplet_margin, id_weight=preset.id_weight,
                      triplet_weight=preset.triplet_weight)  # fmt: skip
    return model, loss


def gamma_logging_step(model: nn.Module) -> StepFn:
    """The default step, also logging the model's γ gates (``gamma/s1``, ...) so they land in ``metrics.csv``."""

    def step(ctx: StepContext, batch: dict[str, Any]) -> dict[str, Any]:
        logged = ctx.default_step(batch)
        gamma = getattr(model, "gamma", None)
        if gamma is not None:
            logged.update({f"gamma/s{i + 1}": g.detach() for i, g in enumerate(gamma)})
        return logged

    return step


def pass_loader(preset: MuDeepV2Preset, samples: list[Sample], device: torch.device):
    """Training batches drawn by :class:`IdentityPassSampler` (standard or fast data path, as the preset says)."""
    sampler = IdentityPassSampler.from_samples(samples, preset.batch_p, preset.batch_k, preset.sampler_passes,
                                               preset.seed, rank=get_rank(), world_size=get_world_size())  # fmt: skip
    kwargs = preset.transform_kwargs()
    if preset.fast_data:
        from reidlab.data.cache import TensorBatcher, decode_images
        from reidlab.data.gpu_augment import GPUTrainAugment

        images = decode_images(samples, tuple(preset.image_size), interpolation=preset.interpolation,
                               cache_dir=default_cache_dir(), progress=preset.progress)  # fmt: skip
        augment = GPUTrainAugment.from_transform_kwargs(**kwargs).to(device)
        return TensorBatcher(images, samples, batch_size=sampler.batch_size, sampler=sampler, device=device,
                             transform=augment, images_on_device=fits_on_device(images, device))  # fmt: skip
    return torch.utils.data.DataLoader(
        ImageDataset(samples, build_train_transform(**kwargs)), batch_size=sampler.batch_size, sampler=sampler,
        drop_last=True, num_workers=preset.num_workers, pin_memory=device.type == "cuda",
    )  # fmt: skip


def mudeep_v2_stages(preset: MuDeepV2Preset, dataset: Any, model: nn.Module, loss: MuDeepLoss) -> list[Stage]:
    """One stage: the standard recipe with the γ-logging step, on the official pass sampler when
    ``sampler_passes > 0``."""
    step = gamma_logging_step(model)
    if preset.sampler_passes == 0:
        return [standard_stage(preset, loss, dataset, step_fn=step)]

    def build(inputs: StageInputs) -> StagePlan:
        samples, split = list(dataset.train), None
        if preset.val_ids > 0:
            samples, split = split_validation(samples, preset.val_ids, seed=preset.seed)
        loader = pass_loader(preset, samples, inputs.device)
        return standard_stage(preset, loss, samples, val_split=split, loader=loader, step_fn=step).build(inputs)

    return [Stage("train", preset.epochs, build)]


def evaluate_ap_flavours(
    model: nn.Module,
    dataset: Any,
    preset: Any,
    *,
    method: str = "mudeep_v2",
    flip: bool | None = None,
    device: torch.device | str | None = None,
) -> tuple[dict[str, RankResult], dict[str, dict[str, torch.Tensor]]]:
    """The test split ranked once with ``method``'s test distance and ``preset``'s settings, scored with the
    standard (non-interpolated) AP and the Market devkit (trapezoid) AP of the official MuDeep code; returns
    ``({"standard": ..., "devkit": ...}, features)``."""
    standard, feats = evaluate_method(method, model, dataset, preset, flip=flip, device=device, return_features=True)
    q, g = feats["query"], feats["gallery"]
    distance = get_method(method).distance.evaluate_kwargs(q)
    devkit = evaluate(q["features"], g["features"], q["pids"], g["pids"], q["camids"], g["camids"], **distance,
                      protocol=standard.protocol, ap="devkit")  # fmt: skip
    return {"standard": standard, "devkit": devkit}, feats


METHOD = register_method(
    Method(
        name="mudeep_v2",
        description="MuDeep v2 (Qian et al. 2019): leader-based multi-scale attention, 12 part heads, CE + triplet",
        preset_type=MuDeepV2Preset,
        presets={"smoke": mudeep_v2_smoke, "full": mudeep_v2_full},
        build=build_mudeep_v2,
        stages=mudeep_v2_stages,
        official="mudeep_v2",
    )
)
