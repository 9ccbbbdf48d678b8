"""The lab's one training loop: methods plug in a model, a loss (and optionally their own step).

Features: bf16 autocast on CUDA (fp32 on CPU), channels-last for CNNs, optional ``torch.compile``,
gradient clipping, DDP when ``torch.distributed`` is initialised, ``tqdm.auto`` progress with loss / LR /
images/s, TensorBoard events and a CSV per run, atomic checkpoints with every state needed to continue
exactly (``resume=True``), optional validation on held-out training identities.
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
    restore_rng,
    save_checkpoint,
    save_model,
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

StepFn = Callable[["StepContext", dict[str, Any]], dict[str, torch.Tensor]]
ValidateFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns. ``history`` has one row per epoch (the CSV's content)."""

    model: nn.Module
    history: pd.DataFrame
    run_dir: Path | None
    checkpoint: Path | None
    epochs: int
    seconds: float
    best_epoch: int | None = None
    best_metric: float | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _check_finite(values: dict[str, Any], epoch: int) -> None:
    bad = {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        raise FloatingPointError(f"epoch {epoch}: non-finite training values {bad}; lower the LR or check the data")


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


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
    :meth:`zero_grad` and :meth:`step` with optimiser names.
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
    ) -> None:
        self.model = model
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
            return self.model(batch["image"], camids=batch.get("camid"))

    def loss(self, outputs: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        result = self.loss_fn(outputs, batch)  # outside autocast: losses run in float32
        if isinstance(result, tuple):
            return result
        return result, {}

    def zero_grad(self, names: Iterable[str] | None = None) -> None:
        for name in names or self.optimizers:
            self.optimizers[name].zero_grad(set_to_none=True)

    def backward(self, total: torch.Tensor) -> None:
        self.scaler.scale(total).backward()  # finiteness is checked at log points (no per-step GPU sync)
        all_reduce_grads(self._loss_params)  # parameters outside DDP (e.g. centre-loss centres)

    def step(self, names: Iterable[str] | None = None) -> None:
        """Unscale, clip (``grad_clip``: max global norm over each optimiser's parameters), step, update."""
        names = list(names or self.optimizers)
        for name in names:
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


class Trainer:
    """Train ``model`` with ``loss_fn(outputs, batch) -> (total, parts)`` over ``train_loader`` for ``epochs``.

    ``train_loader`` yields dict batches (``image``, ``pid``, ``camid``, ``modality``, ``index``) and may have
    ``set_epoch`` (directly, or on its ``sampler`` / ``batch_sampler``). ``optimizers`` and ``schedulers`` are
    one object or dicts keyed by name; schedules are stepped per epoch with the 1-based epoch number.
    ``stop_after_epoch`` ends this call after that epoch (with a checkpoint) as if the job were killed;
    ``resume=True`` continues it. ``run_dir`` receives ``metrics.csv``, ``tb/`` (TensorBoard), ``last.pt``
    (every ``checkpoint_every`` epochs and at the end; 0 = at the end only) and ``model.pt`` (weights + spec).
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
        resume: bool | str | Path = False,
        step_fn: StepFn | None = None,
        validate: ValidateFn | None = None,
        validate_every: int = 1,
        select_metric: str | None = None,
        max_iters_per_epoch: int | None = None,
        stop_after_epoch: int | None = None,
        progress: bool = True,
        log_every: int = 10,
        tensorboard: bool = True,
        find_unused_parameters: bool = False,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        self.device = torch.device(device) if device is not None else pick_device()
        self.raw_model = unwrap_model(model).to(self.device)
        self.loss_fn = loss_fn.to(self.device) if isinstance(loss_fn, nn.Module) else loss_fn
        self.train_loader = train_loader
        self.optimizers = optimizers if isinstance(optimizers, dict) else {"model": optimizers}
        if schedulers is None:
            schedulers = {}
        self.schedulers = schedulers if isinstance(schedulers, dict) else {"model": schedulers}
        unknown = set(self.schedulers) - set(self.optimizers)
        if unknown:
            raise ValueError(
                f"schedulers {sorted(unknown)} have no optimiser of the same name ({sorted(self.optimizers)})"
            )
        self.epochs = epochs
        self.amp = amp
        if channels_last is None:
            channels_last = self.device.type == "cuda" and has_conv(self.raw_model)
        self.channels_last = channels_last
        self.compile = compile
        self.grad_clip = grad_clip
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.step_fn = step_fn
        self.validate = validate
        self.validate_every = max(1, validate_every)
        self.select_metric = select_metric
        self.max_iters_per_epoch = max_iters_per_epoch
        self.stop_after_epoch = stop_after_epoch
        self.progress = progress
        self.log_every = max(1, log_every)
        self.tensorboard = tensorboard
        self.find_unused_parameters = find_unused_parameters
        self.meta = dict(meta or {})
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=False)  # bf16 autocast needs no scaling
        self.history: list[dict[str, Any]] = []
        self._global_step = 0
        self.start_epoch = 0
        self.best: dict[str, Any] = {}
        self._writer = None

    # ------------------------------------------------------------------ state
    @property
    def checkpoint_path(self) -> Path | None:
        return self.run_dir / "last.pt" if self.run_dir is not None else None

    def _sampler_state(self, epoch: int) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": epoch}
        for obj in self._epoch_targets():
            if hasattr(obj, "state_dict"):
                state["state"] = obj.state_dict()
                break
        return state

    def _epoch_targets(self) -> list[Any]:
        loader = self.train_loader
        return [
            o
            for o in (loader, getattr(loader, "batch_sampler", None), getattr(loader, "sampler", None))
            if o is not None
        ]

    def _set_epoch(self, epoch: int) -> None:
        for obj in self._epoch_targets():
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)
                return

    def state_dict(self, epoch: int) -> dict[str, Any]:
        rng = capture_rng()
        if is_distributed():
            gathered: list[Any] = [None] * get_world_size()
            torch.distributed.all_gather_object(gathered, rng)
            rng_states = gathered
        else:
            rng_states = [rng]
        return {
            "epoch": epoch,
            "model": self.raw_model.state_dict(),
            "model_spec": getattr(self.raw_model, "model_spec", None),
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
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.raw_model.load_state_dict(state["model"])
        if isinstance(self.loss_fn, nn.Module):
            self.loss_fn.load_state_dict(state["loss"])
        for name, opt_state in state["optimizers"].items():
            self.optimizers[name].load_state_dict(opt_state)
        for name, sched_state in state["schedulers"].items():
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

    def _maybe_resume(self) -> None:
        if not self.resume:
            return
        path = Path(self.resume) if isinstance(self.resume, str | Path) else self.checkpoint_path
        if path is None:
            raise ValueError("resume=True needs run_dir (or pass the checkpoint path as resume=...)")
        if not path.is_file():
            if not isinstance(self.resume, bool):
                raise FileNotFoundError(f"resume checkpoint not found: {path}")
            return  # resume=True on a fresh run folder starts from scratch
        self.load_state_dict(load_checkpoint(path, map_location="cpu"))
        if is_main_process():
            print(f"resumed from {path} after epoch {self.start_epoch}/{self.epochs}")

    def _save(self, epoch: int) -> None:
        state = self.state_dict(epoch)  # collective under DDP: every rank calls it
        if is_main_process() and self.checkpoint_path is not None:
            save_checkpoint(self.checkpoint_path, state)
        barrier()

    # --------------------------------------------------------------- logging
    def _log_epoch(self, row: dict[str, Any]) -> None:
        self.history.append(row)
        if not is_main_process() or self.run_dir is None:
            return
        atomic_write_text(self.run_dir / "metrics.csv", pd.DataFrame(self.history).to_csv(index=False))
        if self._writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, int | float) and math.isfinite(value):
                    self._writer.add_scalar(f"epoch/{key}", value, row["epoch"])
            self._writer.flush()

    def _open_writer(self) -> None:
        if not (self.tensorboard and self.run_dir is not None and is_main_process()):
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: the CSV still records everything
            return
        self._writer = SummaryWriter(log_dir=str(self.run_dir / "tb"))

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

    def _current_lr(self) -> float:
        first = next(iter(self.optimizers.values()))
        return float(first.param_groups[0]["lr"])

    def _train_epoch(self, ctx: StepContext, epoch: int) -> dict[str, Any]:
        n_iters = self._iterations()
        main = is_main_process()
        bar = tqdm(
            total=n_iters,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            disable=not (self.progress and main),
            leave=False,
            unit="it",
        )
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
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float()
            count += 1
            images += int(batch["image"].shape[0]) * get_world_size()
            bar.update(1)
            self._global_step += 1
            if (i + 1) % self.log_every == 0:
                values = {k: float(v) for k, v in parts.items()}
                _check_finite(values, epoch + 1)
                if main:
                    elapsed = time.perf_counter() - start
                    shown = dict(lr=f"{self._current_lr():.2e}", img_s=f"{images / elapsed:.0f}")
                    bar.set_postfix(loss=f"{values.get('loss', float('nan')):.3f}", **shown)
                    if self._writer is not None:
                        for key, value in values.items():
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
        bar.close()
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": self._current_lr()}
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
            self.best = {"epoch": epoch + 1, "metric": key, "value": row[key]}
            if is_main_process() and self.run_dir is not None:
                save_model(self.run_dir / "best_model.pt", self.raw_model, epoch=epoch + 1, **{key: row[key]})

    def fit(self) -> TrainResult:
        """Run (or continue) training; returns the trained model, per-epoch history and file locations."""
        if self.run_dir is not None and is_main_process():
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._maybe_resume()
        model = self._prepare_model()
        ctx = StepContext(
            model=model,
            loss_fn=self.loss_fn,
            optimizers=self.optimizers,
            scaler=self.scaler,
            device=self.device,
            amp=self.amp,
            grad_clip=self.grad_clip,
        )
        self._open_writer()
        started = time.perf_counter()
        try:
            for epoch in range(self.start_epoch, self.epochs):
                self._set_epoch(epoch)
                for scheduler in self.schedulers.values():
                    scheduler.step(epoch + 1)
                row = self._train_epoch(ctx, epoch)
                broadcast_buffers(self.raw_model)  # identical BN statistics on every rank for eval and checkpoints
                self._validate(epoch, row)
                self._log_epoch(row)
                if is_main_process() and self.progress:
                    shown = {k: v for k, v in row.items() if k not in ("epoch", "iterations", "seconds")}
                    print(f"epoch {epoch + 1}/{self.epochs} " + " ".join(f"{k}={v:.4g}" for k, v in shown.items()))
                last = epoch + 1 == self.epochs
                stop = self.stop_after_epoch is not None and epoch + 1 >= self.stop_after_epoch
                if self.run_dir is not None and (
                    last or stop or (self.checkpoint_every and (epoch + 1) % self.checkpoint_every == 0)
                ):
                    self._save(epoch + 1)
                if stop:
                    break
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return self._finish(time.perf_counter() - started)

    def _finish(self, seconds: float) -> TrainResult:
        model = self.raw_model
        if self.best and self.run_dir is not None and (self.run_dir / "best_model.pt").is_file():
            model.load_state_dict(load_checkpoint(self.run_dir / "best_model.pt")["model"])
        model_file = None
        if self.run_dir is not None:
            model_file = self.run_dir / "model.pt"
            if is_main_process():
                chosen = f"best {self.best['metric']} (epoch {self.best['epoch']})" if self.best else "last epoch"
                done = int(self.history[-1]["epoch"]) if self.history else 0
                save_model(model_file, model, **{**self.meta, "epochs": done, "selected": chosen})
            barrier()
        model.eval()
        return TrainResult(
            model=model,
            history=pd.DataFrame(self.history),
            run_dir=self.run_dir,
            checkpoint=self.checkpoint_path,
            epochs=int(self.history[-1]["epoch"]) if self.history else 0,
            seconds=seconds,
            best_epoch=self.best.get("epoch"),
            best_metric=self.best.get("value"),
            extras={"model_file": model_file},
        )
