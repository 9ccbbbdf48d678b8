"""``TrainConfig``: the plain settings every method's preset shares (data, augmentation, optimiser, schedule, run).

Method presets (e.g. ``BoTPreset``) subclass it and add their model / loss fields; :func:`reidlab.engine.fit`
reads only these fields, so any of them can be overridden by keyword.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainConfig:
    # data and augmentation (train: resize, flip, pad + crop, [jitter], normalise, random erasing)
    image_size: tuple[int, int] = (256, 128)
    batch_p: int = 16  # identities per batch (per process under DDP)
    batch_k: int = 4  # images per identity
    num_workers: int = 8
    interpolation: str = "bicubic"
    normalization: str = "imagenet"
    flip_p: float = 0.5
    padding: int = 10
    color_jitter: float | tuple[float, float, float, float] | None = None
    erasing_p: float = 0.5
    erasing_mode: str = "pixel"  # "pixel" (N(0,1) noise) or "zero" (the mean colour)
    erasing_area: tuple[float, float] = (0.02, 1 / 3)
    erasing_ratio: tuple[float, float] = (0.3, 1 / 0.3)
    erasing_log_ratio: bool = True
    erasing_attempts: int = 10
    fast_data: bool = False  # decode once to a uint8 tensor (on the GPU when it fits) and augment batched
    sampler: str = "pk"  # "pk" (P ids x K images) or "cross_modality" (P ids x (K RGB + K IR), e.g. IV-ReID)
    # optimisation
    epochs: int = 120
    max_iters_per_epoch: int | None = None
    optimizer: str = "adam"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    bias_lr_factor: float = 1.0
    weight_decay_bias: float | None = None  # None: same as weight_decay
    weight_decay_norm: float | None = None  # None: same as weight_decay
    no_decay: tuple[str, ...] = ()  # parameter-name substrings without weight decay (e.g. "pos_embed")
    lr_factors: dict[str, float] | None = None  # parameter-name prefix -> LR multiplier (e.g. {"heads.": 10})
    schedule: str = "multistep"  # "multistep" | "cosine" | "constant"
    warmup_epochs: int = 10
    warmup_factor: float = 0.1
    warmup_lr_init: float | None = None  # cosine only; None: warmup_factor * lr
    milestones: tuple[int, ...] = (40, 70)
    gamma: float = 0.1
    lr_min: float = 0.0
    loss_lr: float = 0.5  # SGD LR of a loss's own parameters (BoT's centre-loss centres)
    grad_clip: float | None = None
    amp: bool = True  # bf16 autocast on CUDA (CPU always runs fp32)
    compile: bool = False
    channels_last: bool | None = None  # None: on for CNNs on CUDA
    # evaluation and model selection (never on the test split)
    val_ids: int = 0  # identities held out of training as a validation query/gallery (0: none, last epoch wins)
    validate_every: int = 10
    eval_batch_size: int = 256
    flip_tta: bool = False
    # run
    seed: int = 1234
    checkpoint_every: int = 10  # 0: only at the end
    log_every: int = 10
    progress: bool = True

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides``; unknown names raise a ``ValueError`` listing the valid fields."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - valid)
        if unknown:
            raise ValueError(f"unknown {type(self).__name__} field(s) {unknown}; valid fields: {sorted(valid)}")
        if overrides.get("image_size") is not None:
            overrides["image_size"] = tuple(overrides["image_size"])
        if overrides.get("milestones") is not None:
            overrides["milestones"] = tuple(overrides["milestones"])
        return dataclasses.replace(self, **overrides)

    def transform_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``reidlab.data.build_train_transform`` / ``GPUTrainAugment``."""
        return {
            "image_size": tuple(self.image_size),
            "interpolation": self.interpolation,
            "flip_p": self.flip_p,
            "padding": self.padding,
            "color_jitter": self.color_jitter,
            "normalization": self.normalization,
            "erasing_p": self.erasing_p,
            "erasing_mode": self.erasing_mode,
            "erasing_area": tuple(self.erasing_area),
            "erasing_ratio": tuple(self.erasing_ratio),
            "erasing_log_ratio": self.erasing_log_ratio,
            "erasing_attempts": self.erasing_attempts,
        }

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
