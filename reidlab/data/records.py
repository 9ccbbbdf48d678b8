"""Dataset records: one :class:`Sample` per image and a :class:`ReIDDataset` holding the three splits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reidlab.data.image_io import read_image

SPLITS = ("train", "query", "gallery")
MODALITIES = ("rgb", "ir")


@dataclass(frozen=True, slots=True)
class Sample:
    """One image. ``pid`` is relabelled 0..N-1 in ``train`` and original in query/gallery."""

    path: str  # absolute path of the image file
    pid: int
    camid: int  # 0-based camera index
    modality: str = "rgb"  # "rgb" or "ir"
    raw_pid: int | None = None  # original identity label as found on disk (None: same as pid)

    @property
    def original_pid(self) -> int:
        return self.pid if self.raw_pid is None else self.raw_pid


@dataclass
class ReIDDataset:
    """A parsed dataset: ``train``, ``query`` and ``gallery`` lists of :class:`Sample`.

    ``empty_by_design`` names the splits that are intentionally empty (training-only sources
    such as RandPerson have no query/gallery; Occluded-REID is test-only); any other empty
    split is an error (see :meth:`check`). ``skipped`` lists ``(path, reason)`` for files that
    did not follow the naming rule; ``dropped`` counts images removed by a protocol rule
    (e.g. Market junk pid -1) per split; ``notes`` are protocol choices shown by :meth:`summary`.
    """

    name: str
    root: str
    train: list[Sample] = field(default_factory=list)
    query: list[Sample] = field(default_factory=list)
    gallery: list[Sample] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    empty_by_design: tuple[str, ...] = ()
    skipped: list[tuple[str, str]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    # ----------------------------------------------------------------- counts
    def split(self, name: str) -> list[Sample]:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return getattr(self, name)

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def num_train_cams(self) -> int:
        """Number of camera slots a camera embedding needs (max train camid + 1)."""
        return max((s.camid for s in self.train), default=-1) + 1

    @property
    def num_train_imgs(self) -> int:
        return len(self.train)

    @property
    def is_cross_modality(self) -> bool:
        return any(s.modality != "rgb" for split in SPLITS for s in self.split(split))

    # ----------------------------------------------------------------- checks
    def check(self) -> ReIDDataset:
        """Raise if a split is empty that should not be; return ``self``."""
        for split in SPLITS:
            if not self.split(split) and split not in self.empty_by_design:
                hint = f"; {len(self.skipped)} files were skipped (see .skipped)" if self.skipped else ""
                raise ValueError(f"{self.name}: split {split!r} is empty after parsing {self.root}{hint}")
        for split in SPLITS:
            for s in self.split(split):
                if s.modality not in MODALITIES:
                    raise ValueError(f"{self.name}: sample {s.path} has modality {s.modality!r}; expected {MODALITIES}")
        return self

    def summary(self) -> pd.DataFrame:
        """One row per split: identities, images, cameras, images per modality, protocol notes."""
        rows = []
        for split in SPLITS:
            samples = self.split(split)
            rows.append(
                {
                    "split": split,
                    "ids": len({s.pid for s in samples}),
                    "images": len(samples),
                    "cameras": len({s.camid for s in samples}),
                    "rgb": sum(s.modality == "rgb" for s in samples),
                    "ir": sum(s.modality == "ir" for s in samples),
                    "dropped": self.dropped.get(split, 0),
                    "notes": self.notes.get(split, ""),
                }
            )
        frame = pd.DataFrame(rows).set_index("split")
        if not self.is_cross_modality:
            frame = frame.drop(columns=["rgb", "ir"])
        frame.attrs["dataset"] = self.name
        frame.attrs["root"] = self.root
        frame.attrs["options"] = dict(self.options)
        frame.attrs["notes"] = dict(self.notes)
        return frame

    def verify(self, splits: Sequence[str] = SPLITS, progress: bool = True) -> list[str]:
        """Decode every image (with a progress bar); return ``"path: error"`` for each unreadable file."""
        from tqdm.auto import tqdm

        paths = sorted({s.path for split in splits for s in self.split(split)})
        problems: list[str] = []
        for path in tqdm(paths, desc=f"verify {self.name}", disable=not progress, unit="img"):
            try:
                read_image(path)
            except OSError as error:  # read_image wraps every decoding failure
                cause = error.__cause__ or error
                problems.append(f"{path}: {type(cause).__name__}: {cause}")
        return problems

    def __repr__(self) -> str:
        return (
            f"ReIDDataset({self.name!r}, root={self.root!r}, train={len(self.train)}, "
            f"query={len(self.query)}, gallery={len(self.gallery)}, options={self.options})"
        )


def as_path_str(path: str | Path) -> str:
    """Absolute path string (no symlink resolution, so paths stay as the user laid them out)."""
    return str(Path(path).absolute())
