"""``fit``: one call from a model, a loss and a training set to a trained model (what notebooks use)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.data import Sample
from reidlab.device import pick_device
from reidlab.engine.config import TrainConfig
from reidlab.engine.distributed import get_rank
from reidlab.engine.evaluate import EvalSplit, evaluate_model, split_validation
from reidlab.engine.loaders import build_train_loader
from reidlab.engine.optim import build_optimizer, build_scheduler, param_groups
from reidlab.engine.trainer import StepFn, Trainer, TrainResult
from reidlab.paths import runs_dir


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_run_dir(name: str = "train") -> Path:
    """``<runs_dir>/<name>-<YYYYmmdd-HHMMSS>``."""
    return runs_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def build_optimizers(model: nn.Module, loss: Any, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """The model's optimiser from ``config`` (param groups with bias / weight-decay rules) and, when the loss has
    its own parameters (centre-loss centres), an SGD optimiser for them at ``config.loss_lr``."""
    groups = param_groups(
        model,
        lr=config.lr,
        weight_decay=config.weight_decay,
        bias_lr_factor=config.bias_lr_factor,
        weight_decay_bias=config.weight_decay_bias,
        weight_decay_norm=config.weight_decay_norm,
        no_decay=tuple(config.no_decay),
        lr_factors=config.lr_factors,
    )
    optimizers = {
        "model": build_optimizer(
            config.optimizer,
            groups,
            lr=config.lr,
            weight_decay=config.weight_decay,
            momentum=config.momentum,
            nesterov=config.nesterov,
        )
    }
    loss_params = [p for p in loss.parameters() if p.requires_grad] if isinstance(loss, nn.Module) else []
    if loss_params:
        optimizers["loss"] = torch.optim.SGD(loss_params, lr=config.loss_lr)
    return optimizers


def build_schedulers(optimizers: dict[str, torch.optim.Optimizer], config: TrainConfig) -> dict[str, Any]:
    """The ``config.schedule`` for the model's optimiser (the loss's optimiser keeps a constant LR, as in BoT)."""
    return {
        "model": build_scheduler(
            config.schedule,
            optimizers["model"],
            epochs=config.epochs,
            warmup_epochs=config.warmup_epochs,
            warmup_factor=config.warmup_factor,
            warmup_lr_init=config.warmup_lr_init,
            milestones=config.milestones,
            gamma=config.gamma,
            lr_min=config.lr_min,
        )
    }


def _train_samples(train_set: Any) -> list[Sample]:
    if hasattr(train_set, "train"):
        return list(train_set.train)
    if isinstance(train_set, Sequence) and (not train_set or isinstance(train_set[0], Sample)):
        return list(train_set)
    raise TypeError(f"train_set must be a ReIDDataset or a list of Sample, got {type(train_set).__name__}")


def fit(
    model: nn.Module,
    loss: Any,
    train_set: Any,
    *,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool | str | Path = False,
    device: torch.device | str | None = None,
    val_split: EvalSplit | None = None,
    loader: Any = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, Any] | None = None,
    step_fn: StepFn | None = None,
    keep_best: bool = True,
    stop_after_epoch: int | None = None,
    meta: dict[str, Any] | None = None,
    **overrides: Any,
) -> TrainResult:
    """Train ``model`` with ``loss`` on ``train_set`` (a ``ReIDDataset`` or its train ``Sample`` list).

    Settings come from ``config`` (a :class:`TrainConfig` or a method preset such as ``BoTPreset``) with any
    field overridden by keyword (``fit(..., epochs=5, lr=1e-3)``). Validation, when asked for
    (``val_ids > 0`` carves identities out of the training set, or pass ``val_split``), runs every
    ``validate_every`` epochs; with ``keep_best`` the returned model is the best validation epoch, otherwise
    the last epoch. The test split is never looked at. ``loader``, ``optimizers``, ``schedulers`` and
    ``step_fn`` replace the defaults built from the config (e.g. DPM's two optimisers).
    """
    config = (config or TrainConfig()).replace(**overrides)
    device = torch.device(device) if device is not None else pick_device()
    seed_everything(config.seed + get_rank())  # augmentation differs per rank; the sampler's seed is shared
    samples = _train_samples(train_set)
    if val_split is None and config.val_ids > 0:
        samples, val_split = split_validation(samples, config.val_ids, seed=config.seed)
    if loader is None:
        kwargs = config.transform_kwargs()
        image_size = kwargs.pop("image_size")
        loader = build_train_loader(
            samples,
            image_size=image_size,
            batch_p=config.batch_p,
            batch_k=config.batch_k,
            seed=config.seed,
            num_workers=config.num_workers,
            fast=config.fast_data,
            device=device,
            progress=config.progress,
            sampler=config.sampler,
            **kwargs,
        )
    model.to(device)
    if isinstance(loss, nn.Module):
        loss.to(device)
    if optimizers is None:
        optimizers = build_optimizers(model, loss, config)
    if schedulers is None:
        schedulers = build_schedulers(optimizers, config) if "model" in optimizers else {}
    validate = None
    if val_split is not None:

        def validate(m: nn.Module) -> dict[str, float]:
            result = evaluate_model(
                m,
                val_split,
                image_size=config.image_size,
                flip=config.flip_tta,
                batch_size=config.eval_batch_size,
                num_workers=config.num_workers,
                device=device,
                normalization=config.normalization,
                interpolation=config.interpolation,
                fast=config.fast_data,
            )
            return {"mAP": 100 * result.mAP, "rank1": 100 * result.rank(1)}

    if resume and run_dir is None and not isinstance(resume, str | Path):
        raise ValueError("resume=True needs the run_dir of the run to continue")
    trainer = Trainer(
        model,
        loss,
        loader,
        optimizers=optimizers,
        schedulers=schedulers,
        epochs=config.epochs,
        device=device,
        amp=config.amp,
        channels_last=config.channels_last,
        compile=config.compile,
        grad_clip=config.grad_clip,
        run_dir=run_dir if run_dir is not None else default_run_dir(),
        checkpoint_every=config.checkpoint_every,
        resume=resume,
        step_fn=step_fn,
        validate=validate,
        validate_every=config.validate_every,
        select_metric="mAP" if (validate is not None and keep_best) else None,
        max_iters_per_epoch=config.max_iters_per_epoch,
        stop_after_epoch=stop_after_epoch,
        progress=config.progress,
        log_every=config.log_every,
        meta={"config": _plain(config.as_dict()), **(meta or {})},
    )
    result = trainer.fit()
    result.extras["config"] = config
    result.extras["val_split"] = val_split
    return result


def _plain(value: Any) -> Any:
    """Config values as weights_only-loadable containers (tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
