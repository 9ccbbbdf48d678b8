"""Every trained run of every method, ready for the pictures (notebook 09).

:func:`runs_by_method` lists a profile's finished runs per registered method from their ``run.json`` alone;
:func:`load_run_view` loads one run's model, ranks a test split with the method's own test distance (DPM: the
query-mask-weighted cosine) and keeps what the figures need (:class:`RunView`: samples, distance matrix, per-query
numbers, the model's input transform). A run whose source is a training-only world (DMF on the RandPerson-like
world) is ranked on its profile's default test world instead, and the view says so. Nothing here trains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from reidlab.data import ReIDDataset, build_test_transform
from reidlab.engine import seed_everything
from reidlab.engine.runs import RunInfo, find_runs, read_run_record
from reidlab.evaluation import RankResult, compute_distance
from reidlab.methods import (
    build_model,
    evaluate_method,
    get_method,
    list_methods,
    load_method_dataset,
    load_run,
)
from reidlab.preprocessing import Preprocessing, get_preprocessing
from reidlab.profiles import get_profile
from reidlab.viz.browser import RetrievalView
from reidlab.viz.per_query import PerQueryResult, per_query_metrics, top_k

#: The order methods are offered in (registered methods not listed here follow, sorted).
METHOD_ORDER = ("bot", "mudeep_v2", "ivreid", "transreid", "dpm", "dmf", "clip_reid", "clip_reid_baseline",
                "clip_prompts")  # fmt: skip
#: The notebook that trains each method's runs.
TRAINED_BY = {"bot": "02_baseline_bot", "mudeep_v2": "03_mudeep_v2", "ivreid": "05_cross_modality_ivreid",
              "transreid": "04_transreid_dpm", "dpm": "04_transreid_dpm", "dmf": "07_dmf_generalization",
              "clip_reid": "06_clip_reid", "clip_reid_baseline": "06_clip_reid",
              "clip_prompts": "06_clip_reid"}  # fmt: skip


def methods_in_order() -> list[str]:
    """Every registered method, :data:`METHOD_ORDER` first."""
    registered = list_methods()
    return [m for m in METHOD_ORDER if m in registered] + sorted(set(registered) - set(METHOD_ORDER))


def runs_by_method(profile: str, *, root: str | Path | None = None, **preset_fields: Any) -> dict[str, list[RunInfo]]:
    """Every registered method -> its finished runs of ``profile`` that hold a ``model.pt`` (an empty list when it has
    none): the method's own runs (no run name) first, then named variants (ablations, baselines trained for another
    notebook), each newest first; ``preset_fields`` keep the runs whose recorded preset has these values."""
    found: dict[str, list[RunInfo]] = {m: [] for m in methods_in_order()}
    for info in find_runs(profile=profile, root=root, **preset_fields):  # newest first
        method = info.record.get("method")
        if method in found and (info.path / "model.pt").is_file():
            found[method].append(info)
    return {m: sorted(infos, key=lambda i: bool(i.record.get("name"))) for m, infos in found.items()}


def run_label(info: RunInfo) -> str:
    """``"<method> · <run folder>"``, the name a run goes by in tables and dropdowns."""
    return f"{info.record.get('method')} · {info.path.name}"


def missing_run_note(method: str, profile: str) -> str:
    """What to do when ``method`` has no finished run under ``profile``."""
    notebook = TRAINED_BY.get(method)
    where = f"notebooks/{notebook}.ipynb" if notebook else f"python -m reidlab.train --method {method}"
    return f"no finished {method} run for profile {profile!r}: {where} trains one"


def runs_table(runs: Mapping[str, list[RunInfo]], profile: str) -> pd.DataFrame:
    """One row per run (and one per method without any): method, run folder, dataset, model, test R1 / mAP."""
    rows = []
    for method, infos in runs.items():
        if not infos:
            rows.append({"method": method, "run": "—", "dataset": "", "model": "", "R1": None, "mAP": None,
                         "note": missing_run_note(method, profile)})  # fmt: skip
        for info in infos:
            preset, metrics = info.record.get("preset") or {}, info.metrics
            rows.append({"method": method, "run": info.path.name, "dataset": info.record.get("dataset"),
                         "model": preset.get("model"), "R1": metrics.get("R1"), "mAP": metrics.get("mAP"),
                         "note": ""})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "run", "dataset", "model", "R1", "mAP", "note"])


def choose_run(
    runs: Mapping[str, list[RunInfo]], method: str = "auto", run: str | Path | None = None
) -> RunInfo | None:
    """The run to show: the folder ``run`` if given, else the first run of ``method`` in ``runs`` (its newest unnamed
    run; ``"auto"``: of the first method, in :data:`METHOD_ORDER`, that has one); None when there is none."""
    if run is not None:
        record = read_run_record(run)
        if record is None:
            raise FileNotFoundError(f"run: {run} holds no run.json; expected a run folder under runs/")
        return RunInfo(Path(run), record)
    if method == "auto":
        return next((infos[0] for infos in runs.values() if infos), None)
    if method not in runs:
        raise ValueError(f"method: expected 'auto' or one of {list(runs)}, got {method!r}")
    return runs[method][0] if runs[method] else None


def evaluation_split(preset: Any) -> tuple[ReIDDataset, str]:
    """``(dataset with query / gallery, note)``: the preset's dataset, or for a training-only source the profile's
    default world of the same size (the note says which)."""
    dataset = load_method_dataset(preset)
    if dataset.query and dataset.gallery:
        return dataset, ""
    fallback = get_profile(preset.profile).dataset
    note = f"{dataset.name} is training-only: ranked on {fallback}, a world it never saw"
    return load_method_dataset(preset.replace(dataset=fallback)), note


@dataclass
class RunView:
    """One model's ranking of a test split, with everything the figures need."""

    label: str
    method: str
    preset: Any
    model: nn.Module
    dataset: ReIDDataset
    result: RankResult
    features: dict[str, dict[str, torch.Tensor]]
    distmat: np.ndarray
    note: str = ""
    info: RunInfo | None = None
    metrics: PerQueryResult = field(init=False, repr=False)

    def __post_init__(self) -> None:
        q, g = self.dataset.query, self.dataset.gallery
        self.metrics = per_query_metrics(self.distmat, [s.pid for s in q], [s.pid for s in g], [s.camid for s in q],
                                         [s.camid for s in g])  # fmt: skip

    @property
    def preprocessing(self) -> Preprocessing:
        return get_preprocessing(self.model)

    @property
    def transform(self) -> Callable:
        """PIL image -> the model's normalised input (its own test transform)."""
        pre = self.preprocessing
        return build_test_transform(pre.image_size, interpolation=pre.interpolation, normalization=pre.normalization)

    def top1(self, query_index: int) -> tuple[int, bool]:
        """The query's rank-1 gallery index (junk skipped, as in the protocol) and whether it is a true match."""
        q, g = self.dataset.query, self.dataset.gallery
        order, _, matches = top_k(self.distmat, [s.pid for s in q], [s.pid for s in g], [s.camid for s in q],
                                  [s.camid for s in g], int(query_index), 1)  # fmt: skip
        return int(order[0]), bool(matches[0])

    def success_and_failure(self) -> list[tuple[str, int, int, bool]]:
        """``(label, query, rank-1 gallery, correct)`` for the best query whose rank-1 result is right and the worst
        whose rank-1 result is wrong (by AP), each when there is one."""
        m = self.metrics
        ap = np.where(m.valid, m.ap, np.nan)
        rows = []
        for label, keep in (("success", m.valid & m.rank1), ("failure", m.valid & ~m.rank1)):
            if keep.any():
                scores = np.where(keep, ap, np.nan)
                qi = int(np.nanargmax(scores) if label == "success" else np.nanargmin(scores))
                rows.append((label, qi, *self.top1(qi)))
        return rows

    def retrieval_view(self, target_layer: Any = None) -> RetrievalView:
        """The browser's view of this ranking (Grad-CAM through the model's own transform)."""
        pre = self.preprocessing
        return RetrievalView(distmat=self.distmat, query=self.dataset.query, gallery=self.dataset.gallery,
                             model=self.model, transform=self.transform, mean=pre.mean, std=pre.std,
                             target_layer=target_layer, metrics=self.metrics)  # fmt: skip


def rank_view(
    label: str, method: str, preset: Any, model: nn.Module, dataset: ReIDDataset, *,
    device: torch.device | str | None = None, note: str = "", info: RunInfo | None = None,
) -> RunView:  # fmt: skip
    """``model`` ranks ``dataset``'s test split with ``method``'s test distance (no flip TTA)."""
    model = model.to(device).eval() if device is not None else model.eval()
    result, feats = evaluate_method(method, model, dataset, preset, flip=False, device=device, return_features=True)
    kwargs = get_method(method).distance.evaluate_kwargs(feats["query"])
    distmat = compute_distance(feats["query"]["features"], feats["gallery"]["features"], **kwargs)
    return RunView(label, method, preset, model, dataset, result, feats, distmat.cpu().numpy(), note, info)


def load_run_view(info: RunInfo, *, device: torch.device | str | None = None) -> RunView:
    """A finished run's trained model ranking its test split (see the module docstring)."""
    trained = load_run(info)
    dataset, note = evaluation_split(trained.preset)
    return rank_view(run_label(info), trained.method, trained.preset, trained.model, dataset, device=device,
                     note=note, info=info)  # fmt: skip


def initial_view(view: RunView, *, device: torch.device | str | None = None) -> RunView:
    """The same method and preset with the weights it starts from (its seed; pretrained files where it uses them)."""
    seed_everything(view.preset.seed)
    model, _ = build_model(view.method, view.preset, load_method_dataset(view.preset))
    return rank_view(f"{view.label} (initial weights)", view.method, view.preset, model, view.dataset, device=device,
                     note=view.note)  # fmt: skip


def browser_views(runs: Mapping[str, list[RunInfo]], loaded: Mapping[str, RunView], *,
                  device: torch.device | str | None = None, target_layer: Any = None) -> dict[str, Any]:  # fmt: skip
    """The browser's model list: the ``loaded`` views first (Grad-CAM at ``target_layer``, None: the family's), then
    every other run, loaded when first picked (at its family's layer: a layer name fits one architecture)."""
    views: dict[str, Any] = {label: view.retrieval_view(target_layer) for label, view in loaded.items()}
    for infos in runs.values():
        for info in infos:
            label = run_label(info)
            if label not in views:
                views[label] = lambda info=info: load_run_view(info, device=device).retrieval_view()
    return views
