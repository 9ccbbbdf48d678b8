"""Register every synthetic preset as a dataset name parsed by the real parser it stands for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reidlab.data.records import ReIDDataset
from reidlab.data.registry import list_datasets, load_dataset, register_dataset

from .generator import MARKER, ensure
from .presets import PRESETS, get_preset


def load_synthetic(
    name: str, root: str | Path | None = None, size: str = "mini", seed: int = 0, **options: Any
) -> ReIDDataset:
    """Generate preset ``name`` if needed and parse it with the real dataset's parser.

    ``root``: ``None`` (the lab's ``synthetic_dir()``), a folder holding generated worlds, or a
    world folder itself. Other ``options`` go to the real parser (e.g. SYSU ``mode``/``trial``,
    RegDB ``trial``/``direction``, CUHK03-NP ``subset``).
    """
    preset = get_preset(name)
    marker = Path(root) / MARKER if root is not None else None
    if marker is not None and marker.is_file():
        found = json.loads(marker.read_text(encoding="utf-8")).get("preset")
        if found != name:
            raise ValueError(f"{name}: {root} holds the synthetic world of preset {found!r}, not {name!r}")
        folder = Path(root)
    else:
        folder = ensure(name, size, out=root, seed=seed)
    dataset = load_dataset(preset.stands_for, root=folder, **options)
    dataset.name = name
    dataset.options = {**dataset.options, "size": size, "seed": seed, "stands_for": preset.stands_for}
    return dataset


def _loader(name: str):
    def load(root: str | Path | None = None, size: str = "mini", seed: int = 0, **options: Any) -> ReIDDataset:
        return load_synthetic(name, root, size=size, seed=seed, **options)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"Synthetic {PRESETS[name].description} (``size`` mini | full, ``seed``)."
    return load


def register_presets() -> None:
    """Register ``synth_*`` names (idempotent)."""
    known = set(list_datasets())
    for name in PRESETS:
        if name not in known:
            register_dataset(name)(_loader(name))
