"""The lab's one training loop for one stage: methods plug in a model, a loss (and optionally their own step).

Features: bf16 autocast on CUDA (fp32 on CPU), channels-last for CNNs, optional ``torch.compile``,
gradient clipping, DDP when ``torch.distributed`` is initialised, one ``tqdm.auto`` bar per stage with
loss / LR / images/s, TensorBoard events and a CSV per run, atomic checkpoints with every state needed to
continue exactly, optional validation on held-out training identities. Several stages, resuming and run
folders are the business of :func:`reidlab.engine.stages.run_stages`.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from reidlab.device import autocast, pick_device
from reidlab.engine.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_model,
    save_rotating,
    unwrap_model,
)
from reidlab.engine.distributed import (
    all_reduce_grads,
    barrier,
    broadcast_buffers,
    get_rank,
    get_world_size,
    is_distributed,
    is_main_process,
)
from reidlab.io import atomic_write_text

StepFn = Callable[["StepContext", dict[str, Any]], dict[str, Any]]
ForwardFn = Callable[[nn.Module, dict[str, Any]], Any]
ValidateFn = Callable[[nn.Module], dict[str, float]]
FinishFn = Callable[[nn.Module], dict[str, Any]]


def default_forward(model: nn.Module, batch: dict[str, Any]) -> Any:
    """How a ReID model is called in training unless a method says otherwise: ``model(images, camids=...)``."""
    return model(batch["image"], camids=batch.get("camid"))


def batch_size_of(batch: dict[str, Any]) -> int:
    """Images in a batch: ``len(batch["image"])``, else the length of its first tensor."""
    if isinstance(batch.get("image"), torch.Tensor):
        return int(batch["image"].shape[0])
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return 0


def _check_finite(values: dict[str, Any], epoch: int) -> None:
    bad = {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"epoch {epoch}: non-finite training values {bad}; lower the LR or check the data")


def is_convnet(model: nn.Module) -> bool:
    """Whether most of the model's weights sit in 2-D convolutions (channels-last pays off).

    A ViT has one ``Conv2d`` (its patch embedding) holding under 1 % of its weights: not a convnet.
    """
    conv = sum(p.numel() for m in model.modules() if isinstance(m, nn.Conv2d) for p in m.parameters(recurse=False))
    total = sum(p.numel() for p in model.parameters())
    return total > 0 and conv / total > 0.5


def prepare_model(
    model: nn.Module,
    device: torch.device,
    *,
    channels_last: bool = False,
    compile: bool = False,
    find_unused_parameters: bool = False,
) -> nn.Module:
    """Channels-last memory format, then DDP (when ``torch.distributed`` is initialised), then ``torch.compile``."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if is_distributed():
        device_ids = None
        if device.type == "cuda":
            device_ids = [device.index if device.index is not None else torch.cuda.current_device()]
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
        )
    if compile:
        model = torch.compile(model)
    return model


def batch_to_device(batch: dict[str, Any], device: torch.device, *, channels_last: bool = False) -> dict[str, Any]:
    """Move the tensors of a batch to ``device`` (non-blocking); images channels-last when asked."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device, non_blocking=True)
            if key == "image" and channels_last and value.ndim == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class StepContext:
    """What a training step needs; :meth:`default_step` is forward, loss, backward and optimiser steps.

    Methods with unusual updates (DPM's two optimisers, two passes) pass their own
    ``step_fn(ctx, batch)`` to the trainer and use :meth:`forward`, :meth:`loss`, :meth:`backward`,
    :meth:`zero_grad` and :meth:`step` with optimiser names. A step returns the values to log (tensors);
    it may add ``"batch_size"`` (an int) when its batch is not ``batch["image"]``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        loss_fn: Callable,
        optimizers: dict[str, torch.optim.Optimizer],
        scaler: torch.amp.GradScaler,
        device: torch.device,
        amp: bool,
        grad_clip: float | None,
        forward_fn: ForwardFn = default_forward,
    ) -> None:
        self.model = model
        self.forward_fn = forward_fn
        self.loss_fn = loss_fn
        self.optimizers = optimizers
        self.scaler = scaler
        self.device = device
        self.amp = amp
        self.grad_clip = grad_clip
        self._loss_params = (
            [p for p in loss_fn.parameters() if p.requires_grad] if isinstance(loss_fn, nn.Module) else []
        )

    def autocast(self):
        return autocast(self.device, enabled=self.amp)

    def forward(self, batch: dict[str, Any]) -> Any:
        with self.autocast():
            return self.forward_fn(self.model, batch)

    def loss(self, outputs: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        result = self.loss_fn(outputs, batch)  # outside autocast: losses run in float32
        if isinstance(result, tuple):
            return result
        return result, {}

    def _names(self, names: Iterable[str] | None) -> list[str]:
        """``None`` means every optimiser; an empty list means none."""
        chosen = list(self.optimizers) if names is None else list(names)
        unknown = [n for n in chosen if n not in self.optimizers]
        if unknown:
            raise KeyError(f"unknown optimiser(s) {unknown}; this stage has {sorted(self.optimizers)}")
        return chosen

    def zero_grad(self, names: Iterable[str] | None = None) -> None:
        for name in self._names(names):
            self.optimizers[name].zero_grad(set_to_none=True)

    def backward(self, total: torch.Tensor) -> None:
        self.scaler.scale(total).backward()  # finiteness is checked at log points (no per-step GPU sync)
        all_reduce_grads(self._loss_params)  # parameters outside DDP (e.g. centre-loss centres)

    def step(self, names: Iterable[str] | None = None) -> None:
        """Unscale, clip (``grad_clip``: max global norm over each optimiser's parameters), step, update."""
        for name in self._names(names):
            optimizer = self.optimizers[name]
            if self.grad_clip:
                self.scaler.unscale_(optimizer)
                params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
            self.scaler.step(optimizer)
        self.scaler.update()

    def default_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self.zero_grad()
        outputs = self.forward(batch)
        total, parts = self.loss(outputs, batch)
        self.backward(total)
        self.step()
        return {"loss": total.detach(), **parts}


@dataclass
class StageCarry:
    """What earlier stages of a run left behind: their names, their outputs (handed to later stages and saved
    with the run) and their history rows."""

    finished: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def epochs_before(self) -> int:
        return len(self.history)


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` (one stage) or :func:`~reidlab.engine.stages.run_stages` (all) returns.

    ``history`` has one row per epoch of every stage run so far (the CSV's content); ``completed`` is False
    when the run stopped early (``stop_after``); ``stage_outputs`` maps each finished stage to what it produced.
    """

    model: nn.Module
    history: pd.DataFrame
    run_dir: Path | None
    checkpoint: Path | None
    epochs: int
    seconds: float
    best_epoch: int | None = None
    best_metric: float | None = None
    completed: bool = True
    stage_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Train ``model`` for one stage with ``loss_fn(outputs, batch) -> (total, parts)`` over ``train_loader``.

    ``train_loader`` yields dict batches (``image``, ``pid``, ``camid``, ``modality``, ``index``, and whatever a
    method adds) and may have ``set_epoch`` (directly, or on its ``sampler`` / ``batch_sampler``). ``optimizers``
    and ``schedulers`` are one object or dicts keyed by name; each schedule is stepped per epoch with the 1-based
    epoch number, an optimiser without a schedule keeps its LR. ``forward_fn(model, batch)`` says how the model
    is called (default ``model(images, camids=...)``); ``step_fn(ctx, batch)`` replaces the whole update.
    ``run_dir`` receives ``metrics.csv``, ``tb/`` (TensorBoard) and ``last.pt`` (every ``checkpoint_every``
    epochs, when stopped, and when the stage completes; the one before is kept as ``previous.pt``).
    ``stop_after_epoch`` ends the stage early with a checkpoint, as if the job were killed. ``resume_state`` (a
    checkpoint of this stage) continues exactly. When the stage completes, ``finish(model)`` computes what it
    hands to the next stage; it is saved in the checkpoint with the stage marked finished.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: Callable,
        train_loader: Iterable[dict[str, Any]],
        *,
        optimizers: torch.optim.Optimizer | dict[str, torch.optim.Optimizer],
        schedulers: Any | dict[str, Any] | None = None,
        epochs: int,
        device: torch.device | str | None = None,
        amp: bool = True,
        channels_last: bool | None = None,
        compile: bool = False,
        grad_clip: float | None = None,
        run_dir: str | Path | None = None,
        checkpoint_every: int = 0,
        step_fn: StepFn | None = None,
        forward_fn: ForwardFn | None = None,
        validate: ValidateFn | None = None,
        validate_every: int = 1,
        select_metric: str | None = None,
        max_iters_per_epoch: int | None = None,
        stop_after_epoch: int | None = None,
        progress: bool = True,
        log_every: int = 10,
        tensorboard: bool = True,
        find_unused_parameters: bool = False,
        stage: str = "train",
        carry: StageCarry | None = None,
        resume_state: dict[str, Any] | None = None,
        finish: FinishFn | None = None,
        meta: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 (0: only at the end), got {checkpoint_every}")
        self.device = torch.device(device) if device is not None else pick_device()
        self.raw_model = unwrap_model(model).to(self.device)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, nn.Module) else loss_fn
        self.train_loader = train_loader
        self.optimizers = optimizers if isinstance(optimizers, dict) else {"model": optimizers}
        if not self.optimizers:
            raise ValueError(f"stage {stage!r} has no optimiser")
        schedulers = schedulers if schedulers is not None else {}
        self.schedulers = schedulers if isinstance(schedulers, dict) else {"model": schedulers}
        unknown = set(self.schedulers) - set(self.optimizers)
        if unknown:
            raise ValueError(
                f"schedulers {sorted(unknown)} have no optimiser of the same name ({sorted(self.optimizers)})"
            )
        self.epochs = epochs
        self.amp = amp
        if channels_last is None:
            channels_last = self.device.type == "cuda" and is_convnet(self.raw_model)
        self.channels_last = channels_last
        self.compile = compile
        self.grad_clip = grad_clip
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.step_fn = step_fn
        self.forward_fn = forward_fn or default_forward
        self.validate = validate
        self.validate_every = max(1, validate_every)
        self.select_metric = select_metric
        self.max_iters_per_epoch = max_iters_per_epoch
        self.stop_after_epoch = stop_after_epoch
        self.progress = progress
        self.log_every = max(1, log_every)
        self.tensorboard = tensorboard
        self.find_unused_parameters = find_unused_parameters
        self.stage = stage
        self.carry = carry if carry is not None else StageCarry()
        self.finish = finish
        self.meta = dict(meta or {})
        self.config = dict(config or {})
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=False)  # bf16 autocast needs no scaling
        self.history: list[dict[str, Any]] = list(self.carry.history)
        self._global_step = int(sum(row.get("iterations", 0) for row in self.history))
        self.start_epoch = 0
        self.best: dict[str, Any] = {}
        self._writer = None
        if resume_state is not None:
            self.load_state_dict(resume_state)

    # ------------------------------------------------------------------ state
    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / "last.pt" if self.run_dir is not None else None

    def _epoch_targets(self) -> list[Any]:
        loader = self.train_loader
        return [
            o
            for o in (loader, getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None))
            if o is not None
        ]

    def _sampler_state(self, epoch: int) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": epoch}
        for obj in self._epoch_targets():
            if hasattr(obj, "state_dict"):
                state["state"] = obj.state_dict()
                break
        return state

    def _set_epoch(self, epoch: int) -> None:
        for obj in self._epoch_targets():
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
                return

    def state_dict(self, epoch: int, *, done: bool = False, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything needed to continue this stage exactly (or, with ``done``, to start the next one)."""
        rng = capture_rng()
        if is_distributed():
            gathered: list[Any] = [None] * get_world_size()
            torch.distributed.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]
        preprocessing = getattr(self.raw_model, "preprocessing", None)
        stage_outputs = dict(self.carry.outputs)
        if done:
            stage_outputs[self.stage] = dict(outputs or {})
        return {
            "stage": self.stage,
            "epoch": epoch,
            "stage_done": done,
            "finished_stages": [*self.carry.finished, *([self.stage] if done else [])],
            "stage_outputs": stage_outputs,
            "model": self.raw_model.state_dict(),
            "model_spec": getattr(self.raw_model, "model_spec", None),
            "preprocessing": preprocessing.as_dict() if hasattr(preprocessing, "as_dict") else None,
            "loss": self.loss_fn.state_dict() if isinstance(self.loss_fn, nn.Module) else {},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng_states,
            "world_size": get_world_size(),
            "sampler": self._sampler_state(epoch),
            "history": self.history,
            "best": self.best,
            "meta": self.meta,
            "config": self.config,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint of this stage (model, loss, optimisers, schedules, sampler, RNG, history)."""
        if state.get("stage", "train") != self.stage:
            raise ValueError(f"checkpoint is of stage {state.get('stage')!r}, this trainer runs {self.stage!r}")
        missing = sorted(set(state["optimizers"]) ^ set(self.optimizers))
        if missing:
            raise ValueError(
                f"stage {self.stage!r}: the checkpoint's optimisers {sorted(state['optimizers'])} differ from this "
                f"run's {sorted(self.optimizers)}"
            )
        load_model_state(self.raw_model, state["model"], f"checkpoint of stage {self.stage!r}")
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.load_state_dict(state["loss"])
        for name, opt_state in state["optimizers"].items():
            self.optimizers[name].load_state_dict(opt_state)
        for name, sched_state in state["schedulers"].items():
            if name in self.schedulers:
                self.schedulers[name].load_state_dict(sched_state)
        self.scaler.load_state_dict(state["scaler"])
        sampler = state.get("sampler", {})
        if "state" in sampler:
            for obj in self._epoch_targets():
                if hasattr(obj, "load_state_dict"):
                    obj.load_state_dict(sampler["state"])
                    break
        self.history = list(state.get("history", []))
        self._global_step = int(sum(row.get("iterations", 0) for row in self.history))
        self.best = dict(state.get("best", {}))
        self.start_epoch = int(state["epoch"])
        rngs = state["rng"]
        if len(rngs) == get_world_size():
            restore_rng(rngs[get_rank()])
        elif is_main_process():
            print(f"resume: checkpoint from {len(rngs)} processes, now {get_world_size()}; RNG streams differ")

    def _save(self, epoch: int, *, done: bool = False, outputs: dict[str, Any] | None = None) -> None:
        state = self.state_dict(epoch, done=done, outputs=outputs)  # collective under DDP: every rank calls it
        if is_main_process() and self.run_dir is not None:
            save_rotating(self.run_dir, state)
        barrier()

    # --------------------------------------------------------------- logging
    def _log_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not is_main_process() or self.run_dir is None:
            return
        atomic_write_text(self.run_dir / "metrics.csv", pd.DataFrame(self.history).to_csv(index=False))
        if self._writer is not None:
            step = len(self.history)  # epochs of every stage so far: one axis for the whole run
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(f"epoch/{key}", value, step)
            self._writer.flush()

    def _open_writer(self) -> None:
        if not (self.tensorboard and self.run_dir is not None and is_main_process()):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the CSV still records everything
            return
        self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))

    def _progress_bar(self) -> tqdm:
        """One bar for the whole stage (epochs × iterations), so a notebook cell shows one live widget."""
        n = self._iterations()
        return tqdm(
            total=n * self.epochs if n else None,
            initial=n * self.start_epoch if n else 0,
            desc=self.stage,
            disable=not (self.progress and is_main_process()),
            unit="it",
            leave=True,
            dynamic_ncols=True,
        )

    # ------------------------------------------------------------------ loop
    def _prepare_model(self) -> nn.Module:
        return prepare_model(
            self.raw_model,
            self.device,
            channels_last=self.channels_last,
            compile=self.compile,
            find_unused_parameters=self.find_unused_parameters,
        )

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch_to_device(batch, self.device, channels_last=self.channels_last)

    def _iterations(self) -> int | None:
        try:
            n = len(self.train_loader)  # type: ignore[arg-type]
        except TypeError:
            n = None
        if self.max_iters_per_epoch is not None:
            n = self.max_iters_per_epoch if n is None else min(n, self.max_iters_per_epoch)
        return n

    def _lrs(self) -> dict[str, float]:
        return {f"lr/{name}": float(opt.param_groups[0]["lr"]) for name, opt in self.optimizers.items()}

    def _train_epoch(self, ctx: StepContext, epoch: int, bar: tqdm) -> dict[str, Any]:
        n_iters = self._iterations()
        main = is_main_process()
        self.raw_model.train()
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.train()
        sums: dict[str, torch.Tensor] = {}
        count = 0
        images = 0
        start = time.perf_counter()
        batches = itertools.islice(self.train_loader, n_iters) if n_iters is not None else self.train_loader
        for i, batch in enumerate(batches):
            batch = self._to_device(batch)
            parts = self.step_fn(ctx, batch) if self.step_fn is not None else ctx.default_step(batch)
            size = parts.pop("batch_size", None)
            images += (int(size) if size is not None else batch_size_of(batch)) * get_world_size()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + torch.as_tensor(value).detach().float()
            count += 1
            bar.update(1)
            self._global_step += 1
            if (i + 1) % self.log_every == 0:
                values = {k: float(v) for k, v in parts.items()}
                _check_finite(values, epoch + 1)
                if main:
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(epoch=f"{epoch + 1}/{self.epochs}", loss=f"{values.get('loss', float('nan')):.3f}",
                                    img_s=f"{images / elapsed:.0f}", refresh=False)  # fmt: skip
                    if self._writer is not None:
                        for key, value in {**values, **self._lrs()}.items():
                            self._writer.add_scalar(f"train/{key}", value, self._global_step)
        if count == 0:
            raise RuntimeError("the training loader produced no batch; is the dataset smaller than one P×K batch?")
        if is_distributed():  # epoch means over every rank's batches
            keys = sorted(sums)
            stacked = torch.stack([torch.as_tensor(sums[k], device=self.device) for k in keys])
            torch.distributed.all_reduce(stacked)
            sums = {k: v / get_world_size() for k, v in zip(keys, stacked, strict=True)}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        row: dict[str, Any] = {"stage": self.stage, "epoch": epoch + 1, **self._lrs()}
        row.update({k: float(v) / count for k, v in sums.items()})
        _check_finite(row, epoch + 1)
        row.update({"iterations": count, "images_per_s": images / seconds, "seconds": seconds})
        return row

    def _validate(self, epoch: int, row: dict[str, Any]) -> None:
        if self.validate is None or ((epoch + 1) % self.validate_every and epoch + 1 != self.epochs):
            return
        metrics = self.validate(self.raw_model)
        row.update({f"val_{k}": float(v) for k, v in metrics.items()})
        key = f"val_{self.select_metric}" if self.select_metric else None
        if key is None or key not in row:
            return
        if not self.best or row[key] > self.best["value"]:
            self.best = {"stage": self.stage, "epoch": epoch + 1, "metric": key, "value": row[key]}
            if is_main_process() and self.run_dir is not None:
                save_model(self.run_dir / "best_model.pt", self.raw_model, epoch=epoch + 1, **{key: row[key]})

    def fit(self) -> TrainResult:
        """Run (or continue) this stage; returns the trained model, the history and file locations."""
        if self.run_dir is not None and is_main_process():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        model = self._prepare_model()
        ctx = StepContext(
            model=model,
            loss_fn=self.loss_fn,
            optimizers=self.optimizers,
            scaler=self.scaler,
            device=self.device,
            amp=self.amp,
            grad_clip=self.grad_clip,
            forward_fn=self.forward_fn,
        )
        self._open_writer()
        bar = self._progress_bar()
        started = time.perf_counter()
        completed = self.start_epoch >= self.epochs
        try:
            for epoch in range(self.start_epoch, self.epochs):
                self._set_epoch(epoch)
                for scheduler in self.schedulers.values():
                    scheduler.step(epoch + 1)
                row = self._train_epoch(ctx, epoch, bar)
                broadcast_buffers(self.raw_model)  # identical BN statistics on every rank for eval and checkpoints
                self._validate(epoch, row)
                self._log_epoch(row)
                shown = {k: v for k, v in row.items() if k.startswith(("loss", "val_"))}
                bar.set_postfix(epoch=f"{epoch + 1}/{self.epochs}", **{k: f"{v:.4g}" for k, v in shown.items()})
                completed = epoch + 1 == self.epochs
                stop = self.stop_after_epoch is not None and epoch + 1 >= self.stop_after_epoch
                if not completed and (stop or (self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0)):
                    self._save(epoch + 1)
                if stop and not completed:
                    break
        finally:
            if completed:
                bar.total = bar.n  # epochs may differ by a batch; end the bar full
            bar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        outputs: dict[str, Any] = {}
        if completed:
            self._restore_best()
            outputs = self.finish(self.raw_model) if self.finish is not None else {}
            self._save(self.epochs, done=True, outputs=outputs)
        return self._result(time.perf_counter() - started, completed, outputs)

    def _restore_best(self) -> None:
        best_file = self.run_dir / "best_model.pt" if self.run_dir is not None else None
        if self.best and self.best.get("stage", self.stage) == self.stage and best_file and best_file.is_file():
            self.raw_model.load_state_dict(load_checkpoint(best_file)["model"])

    def _result(self, seconds: float, completed: bool, outputs: dict[str, Any]) -> TrainResult:
        mine = [row for row in self.history if row.get("stage", self.stage) == self.stage]
        stage_outputs = dict(self.carry.outputs)
        if completed:
            stage_outputs[self.stage] = outputs
        return TrainResult(
            model=self.raw_model,
            history=pd.DataFrame(self.history),
            run_dir=self.run_dir,
            checkpoint=self.checkpoint_path,
            epochs=int(mine[-1]["epoch"]) if mine else 0,
            seconds=seconds,
            best_epoch=self.best.get("epoch"),
            best_metric=self.best.get("value"),
            completed=completed,
            stage_outputs=stage_outputs,
        )
