"""Where the lab keeps data, weights, figures and runs (environment variables override)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _dir(env: str, default: Path) -> Path:
    value = os.environ.get(env)
    return Path(value).expanduser() if value else default


def data_dir() -> Path:
    """Root of real and synthetic datasets (``REIDLAB_DATA``, default ``<repo>/data``)."""
    return _dir("REIDLAB_DATA", REPO_ROOT / "data")


def synthetic_dir() -> Path:
    """Where generated synthetic worlds live (``<data_dir>/synthetic``)."""
    return data_dir() / "synthetic"


def weights_dir() -> Path:
    """Local pretrained weights (``REIDLAB_WEIGHTS``, default ``<repo>/data/weights``)."""
    return _dir("REIDLAB_WEIGHTS", data_dir() / "weights")


def figures_dir() -> Path:
    """Figures and result tables written by notebooks (``REIDLAB_FIGURES``, default ``<repo>/figures``)."""
    path = _dir("REIDLAB_FIGURES", REPO_ROOT / "figures")
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Checkpoints, logs and executed notebooks (``REIDLAB_RUNS``, default ``<repo>/runs``, git-ignored)."""
    return _dir("REIDLAB_RUNS", REPO_ROOT / "runs")
