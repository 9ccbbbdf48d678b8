"""Optimiser parameter groups and the per-epoch LR schedules the lab's methods use.

Schedules are stepped once at the start of every epoch with the 1-based epoch number ``e``
(``scheduler.step(e)``), the convention of the BoT / TransReID / CLIP-ReID code:

* ``"multistep"`` — linear warm-up + step decay (BoT, CLIP-ReID stage 2), per parameter group g:
  ``lr_g(e) = base_g · w(e) · γ^{#milestones ≤ e}``, ``w(e) = f + (1 − f)·e/W`` for ``e < W``, else 1.
  With BoT's ``f = 0.1``, ``W = 10`` the LR rises from 3.5e-5 (e = 0) to 3.5e-4 (e = 10).
* ``"cosine"`` — timm's ``CosineLRScheduler`` (no warm-up prefix), which is exactly spec §0.6:
  ``lr_g(e) = lr0 + e·(base_g − lr0)/W`` for ``e < W``, else ``lr_min + ½(base_g − lr_min)(1 + cos(πe/T))``,
  and ``lr_min`` at ``e = T``; ``lr0`` and ``lr_min`` are scalars shared by all groups.
* ``"constant"`` — the base LR throughout (e.g. DPM's mask optimiser as its code runs).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn as nn

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 1.0,
    weight_decay_bias: float | None = None,
    weight_decay_norm: float | None = None,
    no_decay: Sequence[str] = (),
    lr_factors: dict[str, float] | None = None,
    include: Iterable[tuple[str, nn.Parameter]] | None = None,
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups by (lr, weight decay); frozen ones are left out.

    * names containing ``"bias"`` get ``lr·bias_lr_factor`` and ``weight_decay_bias`` (default: ``weight_decay``);
    * weights of normalisation layers get ``weight_decay_norm`` (default: ``weight_decay``);
    * names containing any string of ``no_decay`` (e.g. ``"pos_embed"``, ``"cls_token"``) get no weight decay;
    * ``lr_factors`` maps a name prefix (e.g. ``"heads."``) to an LR multiplier (IV-ReID's 10× heads).

    ``include`` restricts the groups to those named parameters (a second optimiser's share).
    Each group keeps the parameter names under ``"names"``.
    """
    wd_bias = weight_decay if weight_decay_bias is None else weight_decay_bias
    wd_norm = weight_decay if weight_decay_norm is None else weight_decay_norm
    lr_factors = lr_factors or {}
    norm_params = {id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters(recurse=False)}
    named = list(include) if include is not None else list(model.named_parameters())
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in named:
        if not param.requires_grad:
            continue
        p_lr, p_wd = lr, weight_decay
        if "bias" in name:
            p_lr, p_wd = lr * bias_lr_factor, wd_bias
        elif id(param) in norm_params:
            p_wd = wd_norm
        if any(s in name for s in no_decay):
            p_wd = 0.0
        for prefix, factor in lr_factors.items():
            if name.startswith(prefix):
                p_lr *= factor
        group = groups.setdefault((p_lr, p_wd), {"params": [], "names": [], "lr": p_lr, "weight_decay": p_wd})
        group["params"].append(param)
        group["names"].append(name)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameter to optimise")
    return list(groups.values())


def build_optimizer(
    name: str,
    groups: list[dict[str, Any]] | Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """``"adam"`` (L2-coupled weight decay, as BoT), ``"adamw"`` or ``"sgd"`` over ``groups``."""
    groups = list(groups)
    if groups and isinstance(groups[0], dict):  # optimizers reject unknown keys such as "names"
        groups = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    key = name.lower()
    if key == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)
    if key == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)
    if key == "sgd":
        return torch.optim.SGD(groups, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov)
    raise ValueError(f"unknown optimizer {name!r}; expected 'adam', 'adamw' or 'sgd'")


class EpochScheduler:
    """Base of the lab's per-epoch schedules: ``step(epoch)`` sets every group's LR for that (1-based) epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def lr_factor(self, epoch: int) -> float:
        raise NotImplementedError

    def get_lrs(self, epoch: int) -> list[float]:
        return [base * self.lr_factor(epoch) for base in self.base_lrs]

    def step(self, epoch: int) -> None:
        self.last_epoch = epoch
        for group, lr in zip(self.optimizer.param_groups, self.get_lrs(epoch), strict=True):
            group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class WarmupMultiStep(EpochScheduler):
    """Linear warm-up from ``warmup_factor·base`` over ``warmup_epochs``, then ×``gamma`` at each milestone."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        milestones: Sequence[int],
        gamma: float = 0.1,
        warmup_epochs: int = 10,
        warmup_factor: float = 0.1,
    ) -> None:
        if list(milestones) != sorted(milestones):
            raise ValueError(f"milestones must be increasing, got {list(milestones)}")
        super().__init__(optimizer)
        self.milestones = [int(m) for m in milestones]
        self.gamma = gamma
        self.warmup_epochs = warmup_epochs
        self.warmup_factor = warmup_factor
        self.step(0)

    def lr_factor(self, epoch: int) -> float:
        warm = 1.0
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            warm = self.warmup_factor * (1 - alpha) + alpha
        return warm * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ConstantLR(EpochScheduler):
    """The base LR for every epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        super().__init__(optimizer)
        self.step(0)

    def lr_factor(self, epoch: int) -> float:
        return 1.0


def build_scheduler(
    kind: str,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.1,
    warmup_lr_init: float | None = None,
    milestones: Sequence[int] = (),
    gamma: float = 0.1,
    lr_min: float = 0.0,
) -> Any:
    """A per-epoch schedule: ``"multistep"`` (warm-up factor), ``"cosine"`` (timm; warm-up from the scalar
    ``warmup_lr_init``, default ``warmup_factor·`` the first group's LR) or ``"constant"``."""
    key = kind.lower()
    if key == "multistep":
        return WarmupMultiStep(
            optimizer, milestones=milestones, gamma=gamma, warmup_epochs=warmup_epochs, warmup_factor=warmup_factor
        )
    if key == "cosine":
        from timm.scheduler import CosineLRScheduler

        if warmup_lr_init is None:
            warmup_lr_init = warmup_factor * optimizer.param_groups[0]["lr"]
        return CosineLRScheduler(
            optimizer,
            t_initial=epochs,
            lr_min=lr_min,
            warmup_t=warmup_epochs,
            warmup_lr_init=warmup_lr_init,
            warmup_prefix=False,
            cycle_limit=1,
            t_in_epochs=True,
        )
    if key == "constant":
        return ConstantLR(optimizer)
    raise ValueError(f"unknown schedule {kind!r}; expected 'multistep', 'cosine' or 'constant'")
