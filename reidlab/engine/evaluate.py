"""Evaluate a model on a dataset's query/gallery (or a validation split carved from training identities)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from reidlab.data import Sample
from reidlab.device import pick_device
from reidlab.engine.features import extract_features
from reidlab.engine.loaders import build_test_loader
from reidlab.preprocessing import Preprocessing, get_preprocessing


@dataclass(frozen=True)
class TestDistance:
    """How a method ranks its test embeddings: an evaluator ``metric`` and extra evaluator inputs taken from the
    extracted query features (DPM: ``TestDistance("masked_cosine", {"q_masks": "mask"})``)."""

    __test__ = False  # not a pytest class

    metric: str = "cosine"
    query_inputs: dict[str, str] = field(default_factory=dict)

    def evaluate_kwargs(self, query: dict[str, Any]) -> dict[str, Any]:
        missing = [key for key in self.query_inputs.values() if key not in query]
        if missing:
            raise ValueError(f"the {self.metric} distance needs the model's eval output(s) {missing}; it gave "
                             f"{sorted(query)}")  # fmt: skip
        return {"metric": self.metric, **{arg: query[key] for arg, key in self.query_inputs.items()}}


@dataclass
class EvalSplit:
    """A query / gallery pair to evaluate on (a dataset's test split or a validation split)."""

    name: str
    query: list[Sample]
    gallery: list[Sample]
    options: dict[str, Any] = field(default_factory=dict)


def protocol_for(dataset: Any) -> str:
    """The evaluation protocol a dataset asks for: its ``options["protocol"]``, else by name
    (SYSU-MM01 -> ``"sysu"``, RegDB -> ``"regdb"``, everything else -> ``"market"``)."""
    options = getattr(dataset, "options", {}) or {}
    if options.get("protocol"):
        return str(options["protocol"])
    name = str(getattr(dataset, "name", "")).lower()
    if "sysu" in name:
        return "sysu"
    if "regdb" in name:
        return "regdb"
    return "market"


def split_validation(samples: Sequence[Sample], num_ids: int, seed: int = 0) -> tuple[list[Sample], EvalSplit]:
    """Hold ``num_ids`` training identities out: one random query image each, the rest as gallery.

    Identities seen by two or more cameras are preferred (their queries have a cross-camera match).
    Labels are left as they are (the classifier simply never sees the held-out classes). Returns
    ``(remaining training samples, EvalSplit)``.
    """
    by_pid: dict[int, list[int]] = {}
    for i, s in enumerate(samples):
        by_pid.setdefault(s.pid, []).append(i)
    if not 0 < num_ids < len(by_pid):
        raise ValueError(
            f"val_ids must be in [1, {len(by_pid) - 1}] for {len(by_pid)} training identities, got {num_ids}"
        )
    rng = np.random.default_rng(seed)
    pids = np.array(sorted(by_pid))
    multi_cam = np.array([len({samples[i].camid for i in by_pid[p]}) > 1 for p in pids])
    order = np.concatenate([rng.permutation(pids[multi_cam]), rng.permutation(pids[~multi_cam])])
    held = {int(p) for p in order[:num_ids]}
    query, gallery = [], []
    for pid in sorted(held):
        members = [samples[i] for i in by_pid[pid]]
        q = int(rng.integers(len(members)))
        query.append(members[q])
        gallery.extend(m for j, m in enumerate(members) if j != q)
    train = [s for s in samples if s.pid not in held]
    return train, EvalSplit("validation", query, gallery, {"held_out_pids": sorted(held), "protocol": "market"})


def extract_split_features(
    model: nn.Module,
    samples: Sequence[Sample],
    *,
    flip: bool = False,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    fast: bool = False,
    amp: bool = True,
    preprocessing: Preprocessing | None = None,
) -> dict[str, torch.Tensor]:
    """:func:`extract_features` over ``samples`` with the model's test transform (``model.preprocessing``)."""
    device = torch.device(device) if device is not None else pick_device()
    pre = preprocessing if preprocessing is not None else get_preprocessing(model)
    loader = build_test_loader(
        samples,
        image_size=pre.image_size,
        batch_size=batch_size,
        num_workers=num_workers,
        interpolation=pre.interpolation,
        normalization=pre.normalization,
        fast=fast,
        device=device,
    )
    model.to(device)
    return extract_features(model, loader, device, flip=flip, amp=amp)


def evaluate_model(
    model: nn.Module,
    dataset: Any,
    *,
    flip: bool = False,
    distance: TestDistance | str = "cosine",
    protocol: str | None = None,
    batch_size: int = 256,
    num_workers: int = 0,
    device: torch.device | str | None = None,
    fast: bool = False,
    preprocessing: Preprocessing | None = None,
    return_features: bool = False,
    **evaluate_kwargs: Any,
):
    """Extract query and gallery features and rank them with ``reidlab.evaluation.evaluate``.

    The input transform is the model's own (``model.preprocessing``; ``preprocessing`` overrides it);
    ``distance`` is a metric name or a method's :class:`TestDistance`. ``dataset`` is a ``ReIDDataset`` or an
    :class:`EvalSplit`. The protocol defaults to the dataset's (:func:`protocol_for`: Market rule unless
    SYSU-MM01 / RegDB). ``batch_size``, ``num_workers`` and ``fast`` (the decode-once path) change speed,
    never results. Returns the ``RankResult``, or ``(RankResult, {"query": feats, "gallery": feats})`` with
    ``return_features``.
    """
    from reidlab.evaluation import evaluate

    if not dataset.query or not dataset.gallery:
        raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: query and gallery must both be non-empty to evaluate")
    distance = TestDistance(distance) if isinstance(distance, str) else distance
    common = dict(flip=flip, batch_size=batch_size, num_workers=num_workers, device=device, fast=fast,
                  preprocessing=preprocessing)  # fmt: skip
    q = extract_split_features(model, dataset.query, **common)
    g = extract_split_features(model, dataset.gallery, **common)
    kwargs: dict[str, Any] = dict(protocol=protocol or protocol_for(dataset), **distance.evaluate_kwargs(q))
    kwargs.update(evaluate_kwargs)
    result = evaluate(q["features"], g["features"], q["pids"], g["pids"], q["camids"], g["camids"], **kwargs)
    return (result, {"query": q, "gallery": g}) if return_features else result
