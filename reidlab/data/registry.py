"""One registry for every dataset, real or synthetic: ``@register_dataset`` / ``load_dataset``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from reidlab.data.records import ReIDDataset

Loader = Callable[..., ReIDDataset]
F = TypeVar("F", bound=Loader)

_DATASETS: dict[str, Loader] = {}


def register_dataset(name: str) -> Callable[[F], F]:
    """Register ``loader(root: str | Path | None, **options) -> ReIDDataset`` under ``name``.

    ``root=None`` means the lab's default location (real datasets: ``reidlab.paths.data_dir()``;
    synthetic worlds: generated on first use).
    """

    def decorator(loader: F) -> F:
        if name in _DATASETS and _DATASETS[name] is not loader:
            raise ValueError(f"dataset {name!r} is already registered (by {_DATASETS[name].__module__})")
        _DATASETS[name] = loader
        return loader

    return decorator


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`, sorted."""
    return sorted(_DATASETS)


def get_loader(name: str) -> Loader:
    try:
        return _DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(list_datasets())}") from None


def load_dataset(name: str, root: str | Path | None = None, **options: Any) -> ReIDDataset:
    """Parse dataset ``name`` found under ``root`` (a folder: the dataset itself or a parent of it).

    Raises ``KeyError`` for an unknown name, ``FileNotFoundError`` for a missing folder,
    ``NotADirectoryError`` for a file where a folder is expected (``root`` itself included) and
    ``ValueError`` for a split that is empty although it should not be.
    """
    dataset = get_loader(name)(root, **options)
    if not isinstance(dataset, ReIDDataset):
        raise TypeError(f"loader for {name!r} returned {type(dataset).__name__}, expected ReIDDataset")
    return dataset.check()


def load_available(
    names: list[str] | None = None, root: str | Path | None = None
) -> dict[str, ReIDDataset]:
    """Every dataset of ``names`` (default: all real, non-``synth_`` names) that is present under ``root``.

    A dataset whose folder is missing (``FileNotFoundError``) is left out; any other problem (a
    ``root`` that is a file, an empty split, a bad list file) raises.
    """
    names = [n for n in list_datasets() if not n.startswith("synth_")] if names is None else names
    found: dict[str, ReIDDataset] = {}
    for name in names:
        try:
            found[name] = load_dataset(name, root)
        except FileNotFoundError:
            continue
    return found
