"""The one entry point of notebooks and the CLI: train a method's stages in its run folder and evaluate it.

>>> from reidlab.methods import run
>>> result = run("bot", profile="smoke")           # runs/bot/synth_market-smoke, evaluated on the test split
>>> result = run("bot", profile="smoke", reuse=True)  # a finished run of the same preset is loaded, not retrained

A run folder (``runs/<method>/<dataset>-<profile>[-<name>]``) holds ``run.json``, ``last.pt`` /
``previous.pt``, ``model.pt``, ``metrics.csv`` and ``tb/``. The test split is evaluated once, after
training, with the method's own test distance; nothing selects on it.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from reidlab.data import load_dataset
from reidlab.device import pick_device
from reidlab.engine import (
    RunFolderError,
    TrainResult,
    evaluate_model,
    load_trained_model,
    read_run_record,
    run_folder,
    run_stages,
    seed_everything,
    standard_stage,
)
from reidlab.engine.checkpoint import load_latest_checkpoint
from reidlab.engine.config import changed_settings
from reidlab.engine.distributed import is_main_process
from reidlab.engine.runs import RunInfo, git_commit, locked, write_run_record
from reidlab.engine.stages import Resume, check_resumable, plain
from reidlab.evaluation import RankResult
from reidlab.methods.registry import Method, check_preset, get_method, get_preset
from reidlab.preprocessing import Preprocessing, attach_preprocessing
from reidlab.weights import changed_resolutions, recording_resolutions


@dataclass
class MethodRun:
    """A trained (or reused) run: the model in eval mode, its test metrics and where everything lives."""

    method: str
    preset: Any
    dataset: Any
    run_dir: Path
    model: nn.Module | None
    metrics: dict[str, Any] = field(default_factory=dict)
    rank: RankResult | None = None
    train: TrainResult | None = None
    reused: bool = False
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self):
        """Per-epoch training history (from ``metrics.csv``, also for a reused run)."""
        import pandas as pd

        if self.train is not None:
            return self.train.history
        csv = self.run_dir / "metrics.csv"
        return pd.read_csv(csv) if csv.is_file() else pd.DataFrame()


def load_method_dataset(preset: Any):
    """``load_dataset(preset.dataset, root=preset.data_root)``, with ``size=preset.synth_size`` for synthetic worlds."""
    options: dict[str, Any] = {}
    if preset.dataset.startswith("synth_"):
        options["size"] = getattr(preset, "synth_size", "mini")
    return load_dataset(preset.dataset, root=getattr(preset, "data_root", None), **options)


def build_model(method: str | Method, preset: Any, dataset: Any) -> tuple[nn.Module, Any]:
    """The method's (model, loss) for ``preset`` and ``dataset``, the model carrying its preprocessing."""
    m = get_method(method)
    check_preset(m, preset)
    model, loss = m.build(preset, dataset)
    if getattr(model, "preprocessing", None) is None:
        attach_preprocessing(model, Preprocessing.of(preset))
    return model, loss


def evaluate_method(
    method: str | Method,
    model: nn.Module,
    dataset: Any,
    preset: Any,
    *,
    flip: bool | None = None,
    device: torch.device | str | None = None,
    return_features: bool = False,
    **evaluate_kwargs: Any,
):
    """:func:`~reidlab.engine.evaluate_model` with the method's test distance and the preset's speed settings
    (batch size, workers, fast path); ``flip`` defaults to ``preset.flip_tta``."""
    m = get_method(method)
    return evaluate_model(
        model, dataset, flip=preset.flip_tta if flip is None else flip, distance=m.distance, device=device,
        batch_size=preset.eval_batch_size, num_workers=preset.num_workers, fast=preset.fast_data,
        return_features=return_features, **evaluate_kwargs,
    )  # fmt: skip


def metrics_record(rank: RankResult, *, flip: bool, distance: str) -> dict[str, Any]:
    """Test numbers with what produced them: protocol, AP flavour, TTA, distance, re-ranking."""
    return {"protocol": rank.protocol, "ap": rank.ap, "flip_tta": flip, "distance": distance, "rerank": False,
            "valid_queries": rank.num_valid_queries, "queries": rank.num_queries,
            **{k: round(v, 4) for k, v in rank.as_dict().items()}}  # fmt: skip


def pretrained_record(model: nn.Module) -> list[dict[str, Any]]:
    """Which weight files initialised the model (``pretrained_weights`` of its modules; empty: random init)."""
    found = []
    for name, module in model.named_modules():
        info = getattr(module, "pretrained_weights", None)
        if info:
            found.append({"module": name or "(model)", **dict(info)})
    return found


def recorded_preset(record: dict[str, Any]) -> Any:
    """The preset a run recorded in its ``run.json``, typed again (``get_preset`` under its method and profile)."""
    fields = {k: v for k, v in (record.get("preset") or {}).items() if k != "profile"}
    return get_preset(record["method"], record["profile"], **fields)


def load_run(info: Any, *, with_model: bool = True) -> MethodRun:
    """A finished run rebuilt from its folder (a ``RunInfo`` or a path): the recorded preset, typed again, and the
    trained model (``with_model=False``: ``model`` is None, for callers that may not need it)."""
    if isinstance(info, RunInfo):
        path, record = info.path, info.record
    else:
        path, record = Path(info), read_run_record(info)
        if record is None:
            raise FileNotFoundError(f"{path}: no run.json; expected a finished run folder")
    if record.get("status") != "finished" or not (path / "model.pt").is_file():
        raise ValueError(f"{path}: not a finished run (status {record.get('status')!r}, model.pt missing?)")
    model = load_trained_model(path / "model.pt") if with_model else None
    return MethodRun(record["method"], recorded_preset(record), None, path, model,
                     dict(record.get("metrics") or {}), reused=True, record=record)  # fmt: skip


def recorded_method(run_dir: Path) -> str | None:
    """The method a run folder belongs to (from ``run.json``, else its checkpoint), None for an empty folder."""
    record = read_run_record(run_dir)
    if record is not None:
        return record.get("method")
    found = load_latest_checkpoint(run_dir) if run_dir.is_dir() else None
    return (found[0].get("meta") or {}).get("method") if found else None


def _reuse(m: Method, preset: Any, dataset: Any, run_dir: Path, record: dict[str, Any]) -> MethodRun:
    changed = changed_settings(record.get("preset") or {}, plain(preset.as_dict()))
    if changed:
        listing = "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise RunFolderError(
            f"run folder {run_dir} holds a finished {m.name} run with other settings ({listing}); pass "
            "overwrite=True to replace it or name=... for a new run"
        )
    moved = changed_resolutions(record.get("initialisation") or {})
    if moved:
        listing = "; ".join(f"{k}: trained from {a}, now {b}" for k, (a, b) in moved.items())
        raise RunFolderError(
            f"run folder {run_dir} holds a finished {m.name} run whose pretrained weights would now resolve to "
            f"other files ({listing}); pass overwrite=True to retrain from them or name=... for a new run"
        )
    model = load_trained_model(run_dir / "model.pt")
    rank = None
    if is_main_process():
        print(f"reusing the finished run in {run_dir} (test {record.get('metrics', {})})")
        then, now = record.get("git_commit"), git_commit()
        if then and now and then.removesuffix("-dirty") != now.removesuffix("-dirty"):
            print(f"note: that run was trained at commit {then[:12]}, the lab is now at {now[:12]}")
    return MethodRun(m.name, preset, dataset, run_dir, model, dict(record.get("metrics") or {}), rank, None, True,
                     record)  # fmt: skip


def run(
    method: str | Method,
    preset: Any = None,
    data: Any = None,
    *,
    profile: str = "smoke",
    name: str | None = None,
    run_dir: str | Path | None = None,
    resume: Resume = False,
    overwrite: bool = False,
    reuse: bool = False,
    device: torch.device | str | None = None,
    evaluate: bool = True,
    stop_after: tuple[str, int] | None = None,
    **overrides: Any,
) -> MethodRun:
    """Train ``method`` (all its stages) and evaluate it on the test split with its own test distance.

    ``preset`` defaults to ``get_preset(method, profile, **overrides)`` (``run("bot", dataset="synth_duke")``);
    ``data`` (a loaded ``ReIDDataset``) to the preset's dataset. The run
    folder defaults to ``runs/<method>/<dataset>-<profile>[-<name>]``. A folder holding a run is refused unless
    ``resume`` (continue it: ``True``, or ``"auto"`` if there is one), ``reuse`` (a finished run with the same
    training settings is loaded instead of retrained; other settings are an error listing them) or
    ``overwrite``. Writes ``run.json`` (method, dataset, profile, preset, preprocessing, test metrics with
    protocol / AP flavour / TTA, weights used, git commit, wall time).
    """
    m = get_method(method)
    if preset is None:
        preset = get_preset(m, profile, **overrides)
    else:
        check_preset(m, preset)
        preset = preset.replace(**overrides) if overrides else preset
    run_dir = Path(run_dir) if run_dir is not None else run_folder(m.name, preset.dataset, preset.profile, name)
    device = torch.device(device) if device is not None else pick_device()
    started = time.time()
    check_resumable(run_dir, resume)
    with locked(run_dir, enabled=is_main_process()):
        owner = recorded_method(run_dir)
        if owner is not None and owner != m.name and not overwrite:
            raise RunFolderError(f"run folder {run_dir} holds a run of method {owner!r}, not {m.name!r}; "
                                 "choose another folder or pass overwrite=True")  # fmt: skip
        record = read_run_record(run_dir)
        dataset = data if data is not None else load_method_dataset(preset)
        if reuse and not overwrite and record is not None and record.get("status") == "finished":
            return _reuse(m, preset, dataset, run_dir, record)
        seed_everything(preset.seed)
        with recording_resolutions() as initialisation:
            model, loss = build_model(m, preset, dataset)
        stages = m.stages(preset, dataset, model, loss) if m.stages is not None else [
            standard_stage(preset, loss, dataset, forward_fn=m.forward, batch_fields=m.batch_fields)
        ]  # fmt: skip
        meta = {"method": m.name, "dataset": preset.dataset, "profile": preset.profile}
        trained = run_stages(model, stages, config=preset, run_dir=run_dir, device=device, resume=resume,
                             overwrite=overwrite, stop_after=stop_after, meta=meta)  # fmt: skip
        record = {
            **meta, "name": name, "status": "finished" if trained.completed else "stopped",
            "stages": [s.name for s in stages], "preset": plain(preset.as_dict()),
            "preprocessing": model.preprocessing.as_dict(), "distance": m.distance.metric,
            "pretrained": pretrained_record(model), "initialisation": initialisation,
            "epochs": len(trained.history),
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "train_seconds": round(sum(trained.history.get("seconds", [])), 1) if len(trained.history) else 0.0,
            "git_commit": git_commit(), "torch": torch.__version__, "device": str(device),
            "host": platform.node(),
        }  # fmt: skip
        result = MethodRun(m.name, preset, dataset, run_dir, trained.model, train=trained, record=record)
        if evaluate and trained.completed and not (dataset.query and dataset.gallery):
            if is_main_process():  # a training-only source (RandPerson): domain generalisation tests elsewhere
                print(f"{preset.dataset} has no query / gallery (training only): not evaluated here")
        elif evaluate and trained.completed:
            result.rank = evaluate_method(m, trained.model, dataset, preset, device=device)
            result.metrics = metrics_record(result.rank, flip=preset.flip_tta, distance=m.distance.metric)
            if is_main_process():
                print(f"{preset.dataset} test: {result.rank} (flip TTA {'on' if preset.flip_tta else 'off'})")
        record.update(metrics=result.metrics, finished=time.strftime("%Y-%m-%d %H:%M:%S"),
                      wall_seconds=round(time.time() - started, 1))  # fmt: skip
        if is_main_process():
            write_run_record(run_dir, record)
        return result
