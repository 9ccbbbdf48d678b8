"""SYSU-MM01 galleries of the standard protocol: all / indoor search × single / multi-shot × 10 trials.

Two sources, chosen by :func:`sysu_galleries` (``source="auto"``):

* ``"official"`` — the release's ``exp/rand_perm_cam.mat`` (the MATLAB evaluation's galleries). Its variable
  ``rand_perm_cam`` holds one entry per camera (1..6); camera ``c``'s entry holds one array per identity
  (index ``pid - 1``) of shape (trials, images): per trial a permutation of the 1-based image numbers of
  that identity in that camera (file ``cam{c}/{pid:04d}/{number:04d}.jpg``). A gallery takes, for every
  gallery camera and test identity, the first ``shot`` numbers of the trial's row.
* ``"seeded"`` — the lab's loader (:func:`reidlab.data.sysu_mm01.load_sysu_mm01`): sorted file lists drawn
  by ``random.Random(2019 + 33 * trial)``, the same on every machine (IV-ReID's seeds, without its
  machine-dependent file order).

The query is the same in every case: every IR image (cameras 3 and 6) of the test identities.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import load_dataset
from reidlab.data.sysu_mm01 import GALLERY_CAMERAS

RAND_PERM_FILE = "exp/rand_perm_cam.mat"
MODES = ("all", "indoor")
SHOTS = (1, 10)


@dataclass
class SysuGallery:
    """One gallery of the protocol: its samples and where they came from."""

    mode: str
    shot: int
    trial: int
    samples: list[Sample]
    source: str  # "official" (rand_perm_cam.mat) | "seeded"


def read_rand_perm_cam(path: str | Path) -> dict[int, list[np.ndarray]]:
    """``{camera (1..6): [per-identity (trials, images) int arrays, index pid - 1]}`` from ``rand_perm_cam.mat``."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        table = loadmat(path)["rand_perm_cam"]
    except KeyError:
        raise ValueError(f"{path}: holds no variable 'rand_perm_cam'") from None
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"{path}: cannot be read as a MATLAB file ({type(exc).__name__}: {exc})") from None
    cells = np.asarray(table, dtype=object).reshape(-1)
    if len(cells) != 6:
        raise ValueError(f"{path}: 'rand_perm_cam' should hold 6 cameras, found {len(cells)}")
    cameras = {}
    for index, cell in enumerate(cells, start=1):
        per_id = np.asarray(cell, dtype=object).reshape(-1)
        cameras[index] = [np.atleast_2d(np.asarray(entry, dtype=np.int64)) for entry in per_id]
    return cameras


def official_gallery(
    root: str | Path, perm: dict[int, list[np.ndarray]], test_pids: list[int], mode: str, shot: int, trial: int
) -> list[Sample]:
    """The gallery ``rand_perm_cam`` defines for (mode, shot, trial); a listed file that is missing is an error."""
    root = Path(root)
    samples = []
    for camera in GALLERY_CAMERAS[mode]:
        for pid in test_pids:
            table = perm[camera][pid - 1] if pid - 1 < len(perm[camera]) else np.zeros((0, 0), np.int64)
            if table.size == 0:
                continue
            if trial >= table.shape[0]:
                raise ValueError(f"{RAND_PERM_FILE}: camera {camera}, id {pid} has {table.shape[0]} trials, not "
                                 f"{trial + 1}")  # fmt: skip
            for number in table[trial][:shot].tolist():
                path = root / f"cam{camera}" / f"{pid:04d}" / f"{number:04d}.jpg"
                if not path.is_file():
                    raise FileNotFoundError(f"{RAND_PERM_FILE} lists {path}, which does not exist")
                samples.append(Sample(as_path_str(path), pid, camera - 1, "rgb"))
    return samples


def sysu_galleries(
    dataset: ReIDDataset,
    *,
    modes: tuple[str, ...] = MODES,
    shots: tuple[int, ...] = SHOTS,
    trials: int = 10,
    source: str = "auto",
) -> list[SysuGallery]:
    """Every (mode, shot, trial) gallery of a loaded SYSU-MM01 (or ``synth_sysu``) dataset.

    ``source``: ``"auto"`` (the official ``exp/rand_perm_cam.mat`` when the dataset folder has it, else
    seeded), ``"official"`` (required; a missing file is an error) or ``"seeded"``.
    """
    if source not in ("auto", "official", "seeded"):
        raise ValueError(f"source must be 'auto', 'official' or 'seeded', got {source!r}")
    bad = [m for m in modes if m not in MODES] + [s for s in shots if s not in SHOTS]
    if bad:
        raise ValueError(f"modes must be among {MODES} and shots among {SHOTS}; got {bad}")
    if not 1 <= trials <= 10:
        raise ValueError(f"trials must be in 1..10, got {trials}")
    perm_file = Path(dataset.root) / RAND_PERM_FILE
    if source == "official" and not perm_file.is_file():
        raise FileNotFoundError(f"source='official' needs {perm_file} (the SYSU-MM01 release's evaluation file)")
    use_official = source == "official" or (source == "auto" and perm_file.is_file())
    out = []
    if use_official:
        perm = read_rand_perm_cam(perm_file)
        test_pids = sorted({s.pid for s in dataset.query})
        for mode in modes:
            for shot in shots:
                for trial in range(trials):
                    samples = official_gallery(dataset.root, perm, test_pids, mode, shot, trial)
                    out.append(SysuGallery(mode, shot, trial, samples, "official"))
        return out
    for mode in modes:
        for shot in shots:
            for trial in range(trials):
                loaded = load_dataset(dataset.name, root=dataset.root, mode=mode, shot=shot, trial=trial)
                out.append(SysuGallery(mode, shot, trial, loaded.gallery, "seeded"))
    return out
