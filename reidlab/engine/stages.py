"""Staged training: a run is a list of stages, each with its own epochs, loader, optimisers, schedules and step.

Examples the design serves: CLIP-ReID (stage 1 learns text tokens on cached image features with the encoders
frozen; stage 2 fine-tunes the image encoder against the text features stage 1 produced), DPM (one stage
whose step alternates two optimisers), DMF (image + text in stage I, image only in stage II).

A :class:`Stage` names itself, its epochs and a ``build(inputs) -> StagePlan`` that runs when the stage
starts, after the earlier stages finished, so it can use their outputs (``inputs.outputs[name]``) and
build its loader only when needed. :func:`run_stages` runs them under one run folder and one ``last.pt``:
each stage checkpoints atomically with all state; ``resume`` continues inside a stage and skips finished
ones; what a stage's ``finish(model)`` returns is handed to the next stage and saved with the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from reidlab.device import pick_device
from reidlab.engine.checkpoint import load_latest_checkpoint, load_model_state, restore_rng, save_model, unwrap_model
from reidlab.engine.config import TrainConfig, changed_settings
from reidlab.engine.distributed import barrier, get_rank, is_main_process
from reidlab.engine.runs import RunFolderError, clean_leftovers, folder_contents, locked, wipe
from reidlab.engine.trainer import FinishFn, ForwardFn, StageCarry, StepFn, Trainer, TrainResult, ValidateFn

Resume = bool | Literal["auto"]


@dataclass
class StageInputs:
    """What a stage's ``build`` receives: the model, the device, the run folder and the earlier stages' outputs."""

    model: nn.Module
    device: torch.device
    run_dir: Path | None
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class StagePlan:
    """How one stage trains. ``schedulers`` names a subset of ``optimizers`` (an optimiser without one keeps its
    LR, deliberately); ``step_fn`` replaces the default update, ``forward_fn`` only how the model is called."""

    loader: Iterable[dict[str, Any]]
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any] = field(default_factory=dict)
    loss_fn: Callable | None = None
    step_fn: StepFn | None = None
    forward_fn: ForwardFn | None = None
    validate: ValidateFn | None = None
    select_metric: str | None = None
    finish: FinishFn | None = None
    find_unused_parameters: bool = False


@dataclass(frozen=True)
class Stage:
    """A named stage of ``epochs`` epochs whose plan is built when it starts."""

    name: str
    epochs: int
    build: Callable[[StageInputs], StagePlan]


def check_stages(stages: Sequence[Stage]) -> None:
    names = [s.name for s in stages]
    if not stages:
        raise ValueError("a run needs at least one stage")
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    for stage in stages:
        if stage.epochs < 1:
            raise ValueError(f"stage {stage.name!r}: epochs must be >= 1, got {stage.epochs}")


def check_resumable(run_dir: Path | None, resume: Resume) -> None:
    """``resume=True`` on a folder that does not exist is an error (a misspelt name must not start a new run)."""
    if resume is True and (run_dir is None or not run_dir.is_dir()):
        raise FileNotFoundError(f"nothing to resume: run folder {run_dir} does not exist")


def prepare_run_folder(run_dir: Path, *, resume: Resume, overwrite: bool) -> tuple[dict[str, Any], Path] | None:
    """Apply the run-folder rules (see :func:`run_stages`); returns the checkpoint to continue from, if any."""
    if overwrite and resume is True:
        raise ValueError("resume=True and overwrite=True exclude each other: continue the run or replace it")
    if is_main_process():
        clean_leftovers(run_dir)
    contents = folder_contents(run_dir)
    if overwrite:
        if is_main_process():
            wipe(run_dir)
        barrier()
        return None
    found = load_latest_checkpoint(run_dir) if contents else None
    if resume is True and found is None:
        where = "does not exist" if not run_dir.exists() else "has no last.pt or previous.pt"
        raise FileNotFoundError(f"nothing to resume: run folder {run_dir} {where}")
    if found is None and contents:
        raise RunFolderError(
            f"run folder {run_dir} already holds files ({', '.join(contents[:6])}) but no checkpoint to resume; "
            "pass overwrite=True to replace them or choose another folder"
        )
    if resume is False and found is not None:
        raise RunFolderError(
            f"run folder {run_dir} already holds a run ({', '.join(contents[:6])}); pass resume=True to continue "
            "it, overwrite=True to replace it, or choose another folder / run name"
        )
    return found


def _check_compatible(state: dict[str, Any], path: Path, stages: Sequence[Stage], config: dict[str, Any]) -> None:
    names = [s.name for s in stages]
    recorded = [*state.get("finished_stages", []), state.get("stage", "train")]
    foreign = [n for n in recorded if n not in names]
    if foreign:
        raise ValueError(f"{path}: a checkpoint of stage(s) {foreign}; this run declares stages {names}")
    changed = changed_settings(state.get("config") or {}, config)
    if changed and state.get("config"):
        listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changed.items()))
        raise ValueError(
            f"{path}: resuming with changed settings would train differently from what the run records "
            f"({listing}); resume with the recorded settings, or start a new run (overwrite=True or another name)"
        )


def run_stages(
    model: nn.Module,
    stages: Sequence[Stage],
    *,
    config: TrainConfig,
    run_dir: str | Path | None,
    device: torch.device | str | None = None,
    resume: Resume = False,
    overwrite: bool = False,
    stop_after: tuple[str, int] | None = None,
    meta: dict[str, Any] | None = None,
) -> TrainResult:
    """Train ``model`` through ``stages`` in ``run_dir``; the trainer's knobs (AMP, compile, checkpointing,
    logging, iteration cap) come from ``config``.

    Run-folder rules: a folder that already holds a run is refused unless ``resume`` (``True``: continue it,
    an error if there is nothing to continue; ``"auto"``: continue if there is a checkpoint, else start) or
    ``overwrite=True`` (delete it first). Resuming with settings that change training (anything but
    :data:`~reidlab.engine.config.RUNTIME_FIELDS`) is refused, listing them. A lock keeps a second process out.
    ``stop_after=(stage, epoch)`` stops there with a checkpoint, as if the job were killed. At the end the
    final weights go to ``model.pt`` (with the registry spec, preprocessing and ``meta``).
    """
    check_stages(stages)
    device = torch.device(device) if device is not None else pick_device()
    run_dir = Path(run_dir) if run_dir is not None else None
    config_dict = plain(config.as_dict())
    meta = dict(meta or {})
    check_resumable(run_dir, resume)
    with locked(run_dir, enabled=is_main_process()) if run_dir is not None else contextlib.nullcontext():
        found = prepare_run_folder(run_dir, resume=resume, overwrite=overwrite) if run_dir is not None else None
        carry = StageCarry()
        state = None
        if found is not None:
            state, path = found
            _check_compatible(state, path, stages, config_dict)
            carry = StageCarry(
                finished=list(state.get("finished_stages", [])),
                outputs=dict(state.get("stage_outputs", {})),
                history=list(state.get("history", [])) if state.get("stage_done") else [],
            )
            if state.get("stage_done"):  # between stages: the weights and RNG of the finished stage
                load_model_state(unwrap_model(model), state["model"], path)
                rngs = state["rng"]
                if len(rngs) > get_rank():
                    restore_rng(rngs[get_rank()])
                state = None
            if is_main_process():
                where = f"stage {found[0].get('stage')!r}, epoch {found[0].get('epoch')}"
                print(f"resuming {run_dir} from {path.name} ({where}; finished: {carry.finished or 'none'})")
        result: TrainResult | None = None
        for stage in stages:
            if stage.name in carry.finished:
                continue
            plan = stage.build(StageInputs(model=model, device=device, run_dir=run_dir, outputs=dict(carry.outputs)))
            trainer = Trainer(
                model, plan.loss_fn or _no_loss, plan.loader, optimizers=plan.optimizers, schedulers=plan.schedulers,
                epochs=stage.epochs, device=device, amp=config.amp, channels_last=config.channels_last,
                compile=config.compile, grad_clip=config.grad_clip, run_dir=run_dir,
                checkpoint_every=config.checkpoint_every, step_fn=plan.step_fn, forward_fn=plan.forward_fn,
                validate=plan.validate, validate_every=config.validate_every, select_metric=plan.select_metric,
                max_iters_per_epoch=config.max_iters_per_epoch,
                stop_after_epoch=stop_after[1] if stop_after and stop_after[0] == stage.name else None,
                progress=config.progress, log_every=config.log_every,
                find_unused_parameters=plan.find_unused_parameters, stage=stage.name, carry=carry,
                resume_state=state if state is not None and state.get("stage") == stage.name else None,
                finish=plan.finish, meta=meta, config=config_dict,
            )  # fmt: skip
            state = None
            result = trainer.fit()
            if not result.completed:
                return result
            carry = StageCarry(finished=[*carry.finished, stage.name], outputs=result.stage_outputs,
                               history=list(trainer.history))  # fmt: skip
            if stop_after is not None and stop_after[0] == stage.name and stage is not stages[-1]:
                result.completed = False  # stopped at the end of a stage, before the next one
                return result
        if result is None:  # every stage had finished before: the run is complete
            result = _completed_result(model, carry, run_dir)
        if run_dir is not None and is_main_process():
            save_model(run_dir / "model.pt", model, **meta, stages=carry.finished, epochs=len(carry.history))
        barrier()
        result.model.eval()
        return result


def _completed_result(model: nn.Module, carry: StageCarry, run_dir: Path | None) -> TrainResult:
    import pandas as pd

    return TrainResult(
        model=unwrap_model(model), history=pd.DataFrame(carry.history), run_dir=run_dir,
        checkpoint=run_dir / "last.pt" if run_dir is not None else None, epochs=len(carry.history), seconds=0.0,
        completed=True, stage_outputs=carry.outputs,
    )  # fmt: skip


def _no_loss(outputs: Any, batch: dict[str, Any]) -> torch.Tensor:
    raise RuntimeError("this stage has no loss_fn; its step_fn must compute the loss itself")


def plain(value: Any) -> Any:
    """Settings as weights_only-loadable containers (tuples become lists)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value
