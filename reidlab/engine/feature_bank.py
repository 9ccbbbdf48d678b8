"""One model's test outputs, extracted once per image and ranked under several distances and query / gallery sets.

Comparisons such as "DPM with and without its masked distance" or "occluded vs unoccluded queries on one gallery"
rank the same images many times; :class:`FeatureBank` extracts each image's eval outputs (embedding and extras such
as DPM's mask) the first time it is asked for, keyed by the image path, and evaluates any split from the cache with
exactly what :func:`~reidlab.engine.evaluate_model` would compute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn

from reidlab.data import Sample
from reidlab.engine.evaluate import TestDistance, extract_split_features, protocol_for


class FeatureBank:
    """``bank = FeatureBank(model, flip=False)``; ``bank.evaluate(dataset, distance)`` -> ``RankResult``."""

    def __init__(self, model: nn.Module, *, flip: bool = False, batch_size: int = 256, fast: bool = False,
                 device: torch.device | str | None = None) -> None:  # fmt: skip
        self.model = model
        self.options = dict(flip=flip, batch_size=batch_size, fast=fast, device=device)
        self._rows: dict[str, dict[str, torch.Tensor]] = {}

    def outputs(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """The model's eval outputs for ``samples`` (extracting only those not seen yet), with their pids / camids."""
        missing = list({s.path: s for s in samples if s.path not in self._rows}.values())
        if missing:
            found = extract_split_features(self.model, missing, **self.options)
            keys = [k for k, v in found.items() if k not in ("pids", "camids", "modalities", "indices")
                    and isinstance(v, torch.Tensor) and len(v) == len(missing)]  # fmt: skip
            for i, sample in enumerate(missing):
                self._rows[sample.path] = {k: found[k][i] for k in keys}
        rows = [self._rows[s.path] for s in samples]
        out = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        out["pids"] = torch.tensor([s.pid for s in samples], dtype=torch.long)
        out["camids"] = torch.tensor([s.camid for s in samples], dtype=torch.long)
        return out

    def evaluate(self, dataset: Any, distance: TestDistance | str = "cosine", **evaluate_kwargs: Any):
        """Rank ``dataset``'s query against its gallery (protocol from the dataset, as ``evaluate_model``)."""
        from reidlab.evaluation import evaluate

        if not dataset.query or not dataset.gallery:
            raise ValueError(f"{getattr(dataset, 'name', 'dataset')}: query and gallery must both be non-empty")
        distance = TestDistance(distance) if isinstance(distance, str) else distance
        q, g = self.outputs(dataset.query), self.outputs(dataset.gallery)
        kwargs: dict[str, Any] = dict(protocol=protocol_for(dataset), **distance.evaluate_kwargs(q))
        kwargs.update(evaluate_kwargs)
        return evaluate(q["features"], g["features"], q["pids"], g["pids"], q["camids"], g["camids"], **kwargs)
