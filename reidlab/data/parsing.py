"""Shared parsing helpers: locate a release folder, list images sorted, match names, relabel."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from reidlab.data.records import ReIDDataset, Sample
from reidlab.paths import data_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# Operating-system litter found in real releases; never reported.
IGNORED_NAMES = frozenset({"Thumbs.db", ".DS_Store", "desktop.ini"})


class SkippedFileWarning(UserWarning):
    """Files that did not follow a dataset's naming rule (listed in ``ReIDDataset.skipped``)."""


def default_root(root: str | Path | None) -> Path:
    """``root`` as a Path; ``None`` means the lab's data folder."""
    return Path(root).expanduser() if root is not None else data_dir()


def find_dataset_root(
    root: str | Path | None,
    dataset: str,
    candidates: Sequence[str],
    markers: Sequence[str],
    layout: str,
) -> Path:
    """Return the dataset folder: ``root`` itself or ``root/<candidate>[/<candidate>]``.

    A folder qualifies when it contains at least one of ``markers`` (relative paths or glob
    patterns). The error names the dataset, every folder looked at and the expected ``layout``;
    a ``root`` that is a file raises ``NotADirectoryError``.
    """
    base = default_root(root)
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"{dataset}: root {base} is a file, expected a folder. Expected layout:\n{layout}")
    if not base.is_dir():
        raise FileNotFoundError(f"{dataset}: root folder {base} does not exist. Expected layout:\n{layout}")
    looked = [base]
    for first in candidates:
        looked.append(base / first)
        looked.extend(base / first / second for second in candidates)
    for folder in looked:
        if folder.is_dir() and any(_has_marker(folder, marker) for marker in markers):
            return folder
    tried = "\n  ".join(str(p) for p in looked if p == base or p.parent == base)
    raise FileNotFoundError(
        f"{dataset}: no dataset found under {base} (none of {list(markers)} in:\n  {tried})\nExpected layout:\n{layout}"
    )


def _has_marker(folder: Path, marker: str) -> bool:
    """``marker`` is a relative path, or a glob pattern such as ``"*.jpg"``."""
    if "*" in marker:
        return next(iter(folder.glob(marker)), None) is not None
    return (folder / marker).exists()


def require_dir(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it is a folder, else an error naming the dataset, the folder and the layout."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{dataset}: {path} is a file, expected a folder. Expected layout:\n{layout}")
    if not path.is_dir():
        raise FileNotFoundError(f"{dataset}: expected folder {path} is missing. Expected layout:\n{layout}")
    return path


def require_file(path: Path, dataset: str, layout: str) -> Path:
    """``path`` if it is a file, else an error naming the dataset, the file and the layout."""
    if path.is_dir():
        raise IsADirectoryError(f"{dataset}: {path} is a folder, expected a file. Expected layout:\n{layout}")
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: expected file {path} is missing. Expected layout:\n{layout}")
    return path


def is_image(path: Path, extensions: Iterable[str] = IMAGE_EXTENSIONS) -> bool:
    return path.suffix.lower() in tuple(extensions)


def list_images(
    folder: Path,
    skipped: list[tuple[str, str]],
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    recursive: bool = False,
) -> list[Path]:
    """Image files in ``folder`` sorted by relative path; everything else is appended to ``skipped``.

    Reported there: other files, dangling symlinks and (unless ``recursive``) each sub-folder
    holding images, with the number of images it holds. Hidden entries and OS litter are ignored.
    """
    entries = sorted(folder.rglob("*") if recursive else folder.iterdir())
    images: list[Path] = []
    for path in entries:
        if path.name in IGNORED_NAMES or path.name.startswith("."):
            continue
        if path.is_dir():
            _report_sub_folder(path, folder, skipped, extensions, recursive)
        elif path.is_symlink() and not path.exists():
            skipped.append((str(path), f"dangling symlink (target {os.readlink(path)} does not exist)"))
        elif is_image(path, extensions):
            images.append(path)
        else:
            skipped.append((str(path), f"not an image (expected extension in {tuple(extensions)})"))
    return sorted(images, key=lambda p: p.relative_to(folder).as_posix())


def _report_sub_folder(
    path: Path, folder: Path, skipped: list[tuple[str, str]], extensions: Sequence[str], recursive: bool
) -> None:
    """Outside a recursive listing, a sub-folder holding images is reported with their count."""
    if recursive:
        return
    count = sum(1 for inner in path.rglob("*") if is_image(inner, extensions) and inner.is_file())
    if count:
        skipped.append((str(path), f"sub-folder with {count} images ignored (images must lie directly in {folder})"))


def match_names(
    paths: Iterable[Path], pattern: re.Pattern[str], skipped: list[tuple[str, str]]
) -> list[tuple[Path, re.Match[str]]]:
    """``(path, match)`` for file names matching ``pattern`` (from the start); others go to ``skipped``."""
    matched = []
    for path in paths:
        found = pattern.match(path.name)
        if found is None:
            skipped.append((str(path), f"name does not match {pattern.pattern!r}"))
        else:
            matched.append((path, found))
    return matched


def relabel(samples: Sequence[Sample]) -> list[Sample]:
    """Map pids to 0..N-1 in sorted order of the original pids; the original goes to ``raw_pid``."""
    originals = sorted({s.original_pid for s in samples})
    mapping = {pid: index for index, pid in enumerate(originals)}
    return [replace(s, pid=mapping[s.original_pid], raw_pid=s.original_pid) for s in samples]


def read_id_list(path: Path) -> list[int]:
    """Integers separated by commas and/or whitespace (SYSU ``exp/*_id.txt``)."""
    text = path.read_text(encoding="utf-8")
    tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    try:
        return [int(t) for t in tokens]
    except ValueError as error:
        raise ValueError(f"{path}: expected comma-separated integer ids ({error})") from None


def read_label_list(path: Path) -> list[tuple[str, int]]:
    """Lines ``<relative path> <label>`` (MSMT17 lists, RegDB idx files); blank lines ignored."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise ValueError(f"{path}:{number}: expected '<relative path> <label>', got {line!r}")
        try:
            entries.append((parts[0], int(parts[1])))
        except ValueError:
            raise ValueError(f"{path}:{number}: label {parts[1]!r} is not an integer") from None
    return entries


def finish(dataset: ReIDDataset) -> ReIDDataset:
    """Warn about skipped files (count and first paths) and check the splits."""
    if dataset.skipped:
        shown = "\n  ".join(f"{path} ({reason})" for path, reason in dataset.skipped[:10])
        more = f"\n  ... and {len(dataset.skipped) - 10} more" if len(dataset.skipped) > 10 else ""
        warnings.warn(
            f"{dataset.name}: skipped {len(dataset.skipped)} files under {dataset.root} "
            f"(see ReIDDataset.skipped):\n  {shown}{more}",
            SkippedFileWarning,
            stacklevel=3,
        )
    return dataset.check()
