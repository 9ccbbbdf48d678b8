"""``fit``: one call from a model, a loss and a training set to a trained model; ``standard_stage``: that recipe
as a stage a method can run (alone, or beside stages of its own)."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.data import Sample
from reidlab.engine.config import TrainConfig
from reidlab.engine.distributed import get_rank
from reidlab.engine.evaluate import EvalSplit, evaluate_model, split_validation
from reidlab.engine.loaders import build_train_loader, with_sample_fields
from reidlab.engine.optim import build_optimizer, build_scheduler, param_groups
from reidlab.engine.stages import Resume, Stage, StageInputs, StagePlan, run_stages
from reidlab.engine.trainer import ForwardFn, StepFn, TrainResult
from reidlab.paths import runs_dir
from reidlab.preprocessing import Preprocessing


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


def standard_stage(
    config: TrainConfig,
    loss: Any,
    train_set: Any,
    *,
    name: str = "train",
    epochs: int | None = None,
    val_split: EvalSplit | None = None,
    loader: Any = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    schedulers: dict[str, Any] | None = None,
    step_fn: StepFn | None = None,
    forward_fn: ForwardFn | None = None,
    batch_fields: Sequence[str] | Mapping[str, Any] = (),
    keep_best: bool = True,
    find_unused_parameters: bool = False,
) -> Stage:
    """The usual one-stage recipe as a :class:`Stage`: P×K loader, the config's optimiser and schedule, validation.

    When the stage starts it seeds every generator from ``config.seed`` (plus the rank), carves ``val_ids``
    validation identities out of the training set when asked, and builds what is not given: the loader
    (standard or fast path; ``batch_fields`` adds per-sample values to each batch, see
    :func:`~reidlab.engine.loaders.with_sample_fields`), the model's
    optimiser (plus SGD for a loss's own parameters) and the schedule of the ``"model"`` optimiser.
    """

    def build(inputs: StageInputs) -> StagePlan:
        model, device = inputs.model, inputs.device
        seed_everything(config.seed + get_rank())  # augmentation differs per rank; the sampler's seed is shared
        samples, split = _train_samples(train_set), val_split
        if split is None and config.val_ids > 0:
            samples, split = split_validation(samples, config.val_ids, seed=config.seed)
        batches = loader
        if batches is None:
            kwargs = config.transform_kwargs()
            image_size = kwargs.pop("image_size")
            batches = build_train_loader(
                samples, image_size=image_size, batch_p=config.batch_p, batch_k=config.batch_k, seed=config.seed,
                num_workers=config.num_workers, fast=config.fast_data, device=device, progress=config.progress,
                sampler=config.sampler, **kwargs,
            )  # fmt: skip
        if batch_fields:
            batches = with_sample_fields(batches, samples, batch_fields)
        model.to(device)
        if isinstance(loss, nn.Module):
            loss.to(device)
        opts = optimizers if optimizers is not None else build_optimizers(model, loss, config)
        scheds = schedulers if schedulers is not None else (build_schedulers(opts, config) if "model" in opts else {})
        validate = None
        if split is not None:
            preprocessing = Preprocessing.of(config)

            def validate(m: nn.Module) -> dict[str, float]:
                result = evaluate_model(m, split, flip=config.flip_tta, batch_size=config.eval_batch_size,
                                        num_workers=config.num_workers, device=device, fast=config.fast_data,
                                        preprocessing=preprocessing)  # fmt: skip
                return {"mAP": 100 * result.mAP, "rank1": 100 * result.rank(1)}

        return StagePlan(
            loader=batches, optimizers=opts, schedulers=scheds, loss_fn=loss, step_fn=step_fn, forward_fn=forward_fn,
            validate=validate, select_metric="mAP" if (validate is not None and keep_best) else None,
            find_unused_parameters=find_unused_parameters,
        )  # fmt: skip

    return Stage(name, epochs if epochs is not None else config.epochs, build)


def fit(
    model: nn.Module,
    loss: Any,
    train_set: Any,
    *,
    config: TrainConfig | None = None,
    run_dir: str | Path | None = None,
    resume: Resume = False,
    overwrite: bool = False,
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
    """Train ``model`` with ``loss`` on ``train_set`` (a ``ReIDDataset`` or its train ``Sample`` list): one stage.

    Settings come from ``config`` (a :class:`TrainConfig` or a method preset such as ``BoTPreset``) with any
    field overridden by keyword (``fit(..., epochs=5, lr=1e-3)``). Validation, when asked for
    (``val_ids > 0`` carves identities out of the training set, or pass ``val_split``), runs every
    ``validate_every`` epochs; with ``keep_best`` the returned model is the best validation epoch, otherwise
    the last epoch. The test split is never looked at. ``loader``, ``optimizers``, ``schedulers`` and
    ``step_fn`` replace the defaults built from the config. Run-folder rules (``resume``, ``overwrite``) are
    those of :func:`~reidlab.engine.stages.run_stages`; a method with several stages uses ``reidlab.methods.run``.
    """
    config = (config or TrainConfig()).replace(**overrides)
    stage = standard_stage(config, loss, train_set, val_split=val_split, loader=loader, optimizers=optimizers,
                           schedulers=schedulers, step_fn=step_fn, keep_best=keep_best)  # fmt: skip
    result = run_stages(
        model, [stage], config=config, run_dir=run_dir if run_dir is not None else default_run_dir(),
        device=device, resume=resume, overwrite=overwrite,
        stop_after=("train", stop_after_epoch) if stop_after_epoch is not None else None, meta=meta,
    )  # fmt: skip
    result.extras["config"] = config
    return result
