"""Register every synthetic world as a dataset name parsed by the real parser it stands for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reidlab.data.records import ReIDDataset
from reidlab.data.registry import list_datasets, load_dataset, register_dataset

from .catalog import WORLDS, get_world
from .generator import GENERATOR_VERSION, MARKER, ensure


def _read_world_folder(name: str, folder: Path) -> dict:
    """The marker of a world folder passed as ``root``: it must hold world ``name`` from this generator version."""
    info = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    version = info.get("version")
    if version != GENERATOR_VERSION:
        raise ValueError(
            f"{name}: {folder} was written by synthetic generator version {version!r}, this one is "
            f"{GENERATOR_VERSION!r}; regenerate it (python -m reidlab.data.synthetic --world {info.get('world', name)} "
            f"--size {info.get('size', 'mini')} --out {folder.parent} --force) or pass its parent folder as root "
            f"(stale worlds there are regenerated)"
        )
    found = info.get("world")
    if found != name:
        raise ValueError(f"{name}: {folder} holds the synthetic world {found!r}, not {name!r}")
    return info


def load_synthetic(
    name: str, root: str | Path | None = None, size: str = "mini", seed: int = 0, **options: Any
) -> ReIDDataset:
    """Generate world ``name`` if needed and parse it with the real dataset's parser.

    ``root``: ``None`` (the lab's ``synthetic_dir()``), a folder holding generated worlds, or a
    world folder itself (used as is: it must hold world ``name`` from this generator version; its
    size and seed are then the folder's).
    Other ``options`` go to the real parser (e.g. SYSU ``mode``/``trial``, RegDB
    ``trial``/``direction``, CUHK03-NP ``subset``).
    """
    spec = get_world(name)
    if root is not None and (Path(root) / MARKER).is_file():
        folder = Path(root)
        info = _read_world_folder(name, folder)
        size, seed = info["size"], info["seed"]
    else:
        folder = ensure(name, size, out=root, seed=seed)
    dataset = load_dataset(spec.stands_for, root=folder, **options)
    dataset.name = name
    dataset.options = {**dataset.options, "size": size, "seed": seed, "stands_for": spec.stands_for}
    return dataset


def _loader(name: str):
    def load(root: str | Path | None = None, size: str = "mini", seed: int = 0, **options: Any) -> ReIDDataset:
        return load_synthetic(name, root, size=size, seed=seed, **options)

    load.__name__ = f"load_{name}"
    load.__doc__ = f"Synthetic {WORLDS[name].description} (``size`` mini | full, ``seed``)."
    return load


def register_worlds() -> None:
    """Register ``synth_*`` names (idempotent)."""
    known = set(list_datasets())
    for name in WORLDS:
        if name not in known:
            register_dataset(name)(_loader(name))
