"""Saving figures: a bare file name goes to ``figures/``, a path is used as given; writes are atomic."""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from reidlab.io import atomic_path
from reidlab.paths import figures_dir


def figure_path(save: str | os.PathLike) -> Path:
    """Resolve ``save``: ``"x.png"`` -> ``figures_dir()/x.png``; paths with a folder stay as given.

    A missing suffix becomes ``.png``.
    """
    path = Path(save).expanduser()
    if not path.suffix:
        path = path.with_suffix(".png")
    if not path.is_absolute() and len(path.parts) == 1:
        path = figures_dir() / path
    return path


def save_figure(fig: Figure, save: str | os.PathLike | None, dpi: int = 150) -> Path | None:
    """Write ``fig`` to ``figure_path(save)`` atomically; ``save=None`` writes nothing."""
    if save is None:
        return None
    path = figure_path(save)
    fmt = path.suffix.lstrip(".").lower()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path
