"""Every method in one set of pictures: the main run of each method loaded with a test split to show it on, a
Grad-CAM pair per run (a query and its true match from another camera), and which runs are ReID ViTs (attention
rollout) or DPM (masks). Nothing is ranked or trained here, so it stays cheap with many runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reidlab.data import ReIDDataset, Sample
from reidlab.engine import load_trained_model
from reidlab.engine.runs import RunInfo
from reidlab.methods import recorded_preset
from reidlab.models.vit import ReIDViT
from reidlab.preprocessing import get_preprocessing
from reidlab.viz.gradcam import EmbeddingCAM
from reidlab.viz.gradcam_plots import CamPair
from reidlab.viz.reid_vit import model_inputs
from reidlab.viz.run_views import evaluation_split, run_label


@dataclass
class LoadedRun:
    """A finished run's trained model (eval mode), its preset and the test split it is shown on."""

    info: RunInfo
    preset: Any
    model: nn.Module
    dataset: ReIDDataset
    note: str = ""

    @property
    def method(self) -> str:
        return str(self.info.record.get("method"))

    @property
    def label(self) -> str:
        return run_label(self.info)

    def inputs(self, count: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """The first ``count`` queries as model inputs: ``(images, camids, titles)``."""
        samples = self.dataset.query[:count]
        images, camids = model_inputs(self.model, samples)
        return images, camids, [f"ID {s.pid} · cam {s.camid}" for s in samples]


def main_runs(runs: Mapping[str, Sequence[RunInfo]]) -> list[RunInfo]:
    """The first run of every method that has one (:func:`~reidlab.viz.run_views.runs_by_method` lists its newest
    unnamed run first)."""
    return [infos[0] for infos in runs.values() if infos]


def load_runs(infos: Sequence[RunInfo], *, device: torch.device | str | None = None) -> list[LoadedRun]:
    """Each run's model and test split (each dataset is loaded once)."""
    splits: dict[tuple[Any, ...], tuple[ReIDDataset, str]] = {}
    loaded = []
    for info in infos:
        preset = recorded_preset(info.record)
        key = (preset.dataset, getattr(preset, "synth_size", None), getattr(preset, "data_root", None))
        if key not in splits:
            splits[key] = evaluation_split(preset)
        dataset, note = splits[key]
        model = load_trained_model(info.path)
        loaded.append(LoadedRun(info, preset, model.to(device) if device is not None else model, dataset, note))
    return loaded


def matching_pair(dataset: ReIDDataset) -> tuple[Sample, Sample]:
    """The first query with a gallery image of its identity from another camera (a valid match), and that image."""
    by_pid: dict[int, list[Sample]] = {}
    for sample in dataset.gallery:
        by_pid.setdefault(sample.pid, []).append(sample)
    for query in dataset.query:
        match = next((g for g in by_pid.get(query.pid, []) if g.camid != query.camid), None)
        if match is not None:
            return query, match
    raise ValueError(f"{dataset.name}: no query has a gallery image of its identity from another camera")


def run_pair(run: LoadedRun, *, cam_method: str = "gradcam", target_layer: Any = None) -> CamPair:
    """A Grad-CAM row for ``run``: a query and its true match, each explained against the other's embedding."""
    query, match = matching_pair(run.dataset)
    images, camids = model_inputs(run.model, [query, match])
    pre = get_preprocessing(run.model)
    cam = EmbeddingCAM(run.model, method=cam_method, target_layer=target_layer)
    return CamPair(cam, images[0], images[1], camids=(int(camids[0]), int(camids[1])),
                   titles=(f"query ID {query.pid} · cam {query.camid}", f"match ID {match.pid} · cam {match.camid}"),
                   label=f"{run.method}\n{cam.family.family}", mean=pre.mean, std=pre.std)  # fmt: skip


def is_reid_vit(model: nn.Module) -> bool:
    """Whether ``model`` runs the lab's ReID ViT (TransReID, DPM, DMF): its attention can be recorded and rolled out."""
    return isinstance(getattr(model, "vit", None), ReIDViT)


def attention_groups(runs: Sequence[LoadedRun]) -> list[list[LoadedRun]]:
    """The ReID-ViT runs grouped by test split and input recipe: one attention figure per group, on the same
    images (TransReID and DPM of one world side by side)."""
    groups: dict[tuple[Any, ...], list[LoadedRun]] = {}
    for run in runs:
        if is_reid_vit(run.model):
            groups.setdefault((run.dataset.name, get_preprocessing(run.model)), []).append(run)
    return list(groups.values())

