"""Run folders: one writer at a time, nothing overwritten by accident, and a ``run.json`` registry to find runs.

Every entry point writes a run to ``runs/<method>/<dataset>-<profile>[-<name>]`` (:func:`run_folder`). While a
run trains, its folder holds an advisory lock (``.lock``, released by the kernel when the process ends, so
a killed job never leaves a stale lock); a second process writing the same folder fails at once. A folder
that already holds a run is refused unless the caller resumes it, reuses it or asks to overwrite it.
``run.json`` is small and readable without torch: method, dataset, profile, preset, preprocessing, status,
final metrics (with protocol, AP flavour and TTA), git commit, wall time. :func:`find_runs` reads only these.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reidlab.io import atomic_write_text
from reidlab.paths import REPO_ROOT, runs_dir

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
_HELD: set[Path] = set()


class RunFolderError(RuntimeError):
    """A run folder that cannot be written as asked (in use, or holding another run)."""


def run_folder(
    method: str, dataset: str, profile: str, name: str | None = None, root: str | Path | None = None
) -> Path:
    """``<runs>/<method>/<dataset>-<profile>[-<name>]``: the one run-folder convention of every entry point."""
    for label, value in (("method", method), ("dataset", dataset), ("profile", profile), ("name", name)):
        if value is not None and (not value or "/" in value or value.startswith(".")):
            raise ValueError(f"run folder {label} must be a plain name without '/', got {value!r}")
    leaf = f"{dataset}-{profile}" + (f"-{name}" if name else "")
    return Path(root if root is not None else runs_dir()) / method / leaf


def folder_contents(path: Path) -> list[str]:
    """Names in a run folder that belong to a run (the lock file is not one)."""
    if not path.is_dir():
        return []
    return sorted(p.name for p in path.iterdir() if p.name != LOCK_FILE)


def clean_leftovers(path: Path) -> list[str]:
    """Remove the hidden temporary files of interrupted atomic writes (``.<name>.<random>.tmp``); returns their names.

    Called only while holding the folder's lock, so no live writer can own them.
    """
    removed = []
    for leftover in path.glob(".*.tmp") if path.is_dir() else []:
        if leftover.is_file():
            leftover.unlink()
            removed.append(leftover.name)
    return removed


def wipe(path: Path) -> None:
    """Delete everything of a run folder except its lock (``overwrite=True``)."""
    for child in path.iterdir() if path.is_dir() else []:
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


@contextmanager
def locked(path: str | Path, *, enabled: bool = True) -> Iterator[Path]:
    """Hold the run folder's lock for the ``with`` block (re-entrant within one process; a no-op if not enabled)."""
    path = Path(path).resolve()
    if not enabled or path in _HELD:  # not asked, or this process holds it already (the outer block releases it)
        yield path
        return
    path.mkdir(parents=True, exist_ok=True)
    handle = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held for the block
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise RunFolderError(
                f"run folder {path} is in use by {owner}; wait for it to finish or choose another run name"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        _HELD.add(path)
        try:
            yield path
        finally:
            _HELD.discard(path)
    finally:
        handle.close()


def write_run_record(path: str | Path, record: dict[str, Any]) -> Path:
    """Write ``run.json`` atomically."""
    return atomic_write_text(Path(path) / RUN_FILE, json.dumps(record, indent=2, default=str) + "\n")


def read_run_record(path: str | Path) -> dict[str, Any] | None:
    """The run's ``run.json`` as a dict (None when the folder has none); a broken file is an error naming it."""
    file = Path(path) / RUN_FILE
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON ({exc})") from None


@dataclass(frozen=True)
class RunInfo:
    """A run found by :func:`find_runs`: its folder and its ``run.json``."""

    path: Path
    record: dict[str, Any]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.record.get("metrics") or {}


def find_runs(
    method: str | None = None,
    dataset: str | None = None,
    profile: str | None = None,
    *,
    status: str | None = "finished",
    root: str | Path | None = None,
    **preset_fields: Any,
) -> list[RunInfo]:
    """Runs under ``root`` (default ``runs/``) whose ``run.json`` matches, newest first, reading only JSON.

    ``preset_fields`` filter on the recorded preset (e.g. ``synth_size="mini"``, ``image_size=[64, 32]``);
    ``status=None`` includes unfinished runs.
    """
    base = Path(root) if root is not None else runs_dir()
    found = []
    for file in base.glob(f"*/*/{RUN_FILE}"):
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # a run being written, or not ours
        preset = record.get("preset") or {}
        if method is not None and record.get("method") != method:
            continue
        if dataset is not None and record.get("dataset") != dataset:
            continue
        if profile is not None and record.get("profile") != profile:
            continue
        if status is not None and record.get("status") != status:
            continue
        if any(_plain(preset.get(k)) != _plain(v) for k, v in preset_fields.items()):
            continue
        found.append(RunInfo(file.parent, record))
    return sorted(found, key=lambda r: str(r.record.get("finished") or r.record.get("started") or ""), reverse=True)


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else value


def git_commit() -> str | None:
    """The lab's git commit (with ``-dirty`` when the tree has changes), or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=5)  # fmt: skip
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None
