"""Small on-disk fake ReID datasets for the training-engine tests (identity = two clothing colours)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from reidlab.data import ReIDDataset, Sample


def write_identity_images(
    root: Path, num_ids: int = 8, per_id: int = 4, size: tuple[int, int] = (32, 16), num_cams: int = 2, seed: int = 0
) -> list[Sample]:
    """``per_id`` noisy PNGs per identity (upper / lower body colours fixed per identity), cameras alternating."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    samples = []
    for pid in range(num_ids):
        upper, lower = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        for j in range(per_id):
            camid = j % num_cams
            image = np.empty((h, w, 3), dtype=np.float64)
            image[: h // 2] = upper
            image[h // 2 :] = lower
            image = image * (0.8 + 0.2 * camid) + rng.normal(0, 12, image.shape)
            path = root / f"{pid:04d}_c{camid + 1}_{j:03d}.png"
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
            samples.append(Sample(str(path), pid, camid))
    return samples


def fake_dataset(root: Path, num_ids: int = 8, per_id: int = 4, size: tuple[int, int] = (32, 16)) -> ReIDDataset:
    """Train on identities 0..num_ids-1; query/gallery on ``num_ids`` other identities."""
    train = write_identity_images(root / "train", num_ids, per_id, size, seed=0)
    test = write_identity_images(root / "test", num_ids, per_id, size, seed=1)
    query = [s for s in test if s.path.endswith("_000.png")]
    gallery = [s for s in test if not s.path.endswith("_000.png")]
    return ReIDDataset(name="fake", root=str(root), train=train, query=query, gallery=gallery)


def samples_from_folder(folder: Path) -> list[Sample]:
    """Re-read the samples written by :func:`write_identity_images` (sorted paths)."""
    out = []
    for path in sorted(folder.glob("*.png")):
        pid, cam, _ = path.stem.split("_")
        out.append(Sample(str(path), int(pid), int(cam[1:]) - 1))
    return out


def write_market_layout(root: Path, num_ids: int = 8, per_id: int = 4, size: tuple[int, int] = (32, 16)) -> Path:
    """A miniature Market-1501 folder (``bounding_box_train``, ``query``, ``bounding_box_test``) for the real parser."""
    market = root / "market1501"
    for split, first_pid, seed in (("bounding_box_train", 1, 0), ("bounding_box_test", 101, 1)):
        tmp = root / f"_{split}"
        for s in write_identity_images(tmp, num_ids, per_id, size, seed=seed):
            pid, cam, j = Path(s.path).stem.split("_")
            name = f"{int(pid) + first_pid:04d}_{cam}s1_{int(j):06d}_00.jpg"
            target_split = "query" if split == "bounding_box_test" and j == "000" else split
            (market / target_split).mkdir(parents=True, exist_ok=True)
            Image.open(s.path).convert("RGB").save(market / target_split / name, quality=95)
    return market
