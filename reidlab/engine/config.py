"""``TrainConfig``: the plain settings every method's preset shares (data, augmentation, optimiser, schedule, run).

Method presets (e.g. ``BoTPreset``) subclass it and add their model / loss fields; :func:`reidlab.engine.fit`
reads only these fields, so any of them can be overridden by keyword. Every value is converted to its
declared type and range-checked on construction (:mod:`reidlab.settings`): ``flip_tta="false"`` becomes
``False``, ``epochs=2.5`` or ``checkpoint_every=-1`` fail at once naming the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from reidlab.settings import coerce_fields, replace_fields, require

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("multistep", "cosine", "constant")
SAMPLERS = ("pk", "cross_modality")

#: Settings that change how a run is executed or shown, not what it learns: they may differ when a run resumes.
RUNTIME_FIELDS = frozenset(
    {"num_workers", "eval_batch_size", "progress", "log_every", "checkpoint_every", "validate_every", "compile",
     "channels_last", "data_root", "profile"}
)  # fmt: skip


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
    profile: str = "custom"  # the profile the preset was made for ("smoke", "full"); names the run folder
    seed: int = 1234
    checkpoint_every: int = 10  # 0: only at the end
    log_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        coerce_fields(self)
        self.optimizer, self.schedule = self.optimizer.lower(), self.schedule.lower()
        unit = "a probability in [0, 1]"
        require(min(self.image_size) > 0, self, "image_size", "(height, width) with positive sizes")
        require(self.batch_p >= 1, self, "batch_p", "an integer >= 1")
        require(self.batch_k >= 1, self, "batch_k", "an integer >= 1")
        require(self.num_workers >= 0, self, "num_workers", "an integer >= 0")
        require(0 <= self.flip_p <= 1, self, "flip_p", unit)
        require(self.padding >= 0, self, "padding", "an integer >= 0")
        require(0 <= self.erasing_p <= 1, self, "erasing_p", unit)
        require(0 < self.erasing_area[0] <= self.erasing_area[1] <= 1, self, "erasing_area", "0 < min <= max <= 1")
        require(0 < self.erasing_ratio[0] <= self.erasing_ratio[1], self, "erasing_ratio", "0 < min <= max")
        require(self.erasing_attempts >= 1, self, "erasing_attempts", "an integer >= 1")
        require(self.sampler in SAMPLERS, self, "sampler", f"one of {SAMPLERS}")
        require(self.epochs >= 1, self, "epochs", "an integer >= 1")
        require(self.max_iters_per_epoch is None or self.max_iters_per_epoch >= 1, self, "max_iters_per_epoch",
                "None (the whole epoch) or an integer >= 1")  # fmt: skip
        require(self.optimizer in OPTIMIZERS, self, "optimizer", f"one of {OPTIMIZERS}")
        require(self.lr > 0, self, "lr", "a learning rate > 0")
        require(self.weight_decay >= 0, self, "weight_decay", "a value >= 0")
        require(self.schedule in SCHEDULES, self, "schedule", f"one of {SCHEDULES}")
        require(self.warmup_epochs >= 0, self, "warmup_epochs", "an integer >= 0")
        require(0 <= self.warmup_factor <= 1, self, "warmup_factor", "a factor in [0, 1]")
        require(list(self.milestones) == sorted(self.milestones), self, "milestones", "increasing epochs")
        require(self.grad_clip is None or self.grad_clip > 0, self, "grad_clip", "None or a norm > 0")
        require(self.val_ids >= 0, self, "val_ids", "an integer >= 0")
        require(self.validate_every >= 1, self, "validate_every", "an integer >= 1")
        require(self.eval_batch_size >= 1, self, "eval_batch_size", "an integer >= 1")
        require(self.checkpoint_every >= 0, self, "checkpoint_every", "an integer >= 0 (0: only at the end)")
        require(self.log_every >= 1, self, "log_every", "an integer >= 1")

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with ``overrides`` (converted and checked); unknown names raise an error listing the valid fields."""
        return replace_fields(self, **overrides)

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


def changed_settings(before: dict[str, Any], after: dict[str, Any], ignore: frozenset[str] = RUNTIME_FIELDS) -> dict:
    """``{field: (before, after)}`` for the settings that differ (tuples and lists compare equal), minus ``ignore``."""

    def plain(value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    keys = (set(before) | set(after)) - set(ignore)
    return {k: (before.get(k), after.get(k)) for k in sorted(keys) if plain(before.get(k)) != plain(after.get(k))}
