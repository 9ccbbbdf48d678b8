"""MSMT17 (V1 ``train/``, ``test/``; V2 face-masked ``mask_train_v2/``, ``mask_test_v2/``) from its list files.

Each line of ``list_{train,val,query,gallery}.txt`` is ``<pid folder>/<file>.jpg <pid>``; train and val
paths are relative to the train folder, query and gallery paths to the test folder. The camera is
the third ``_`` field of the file name (``0000_000_01_0303morning_0015_0.jpg`` -> camera 1 -> camid 0).
``with_val=True`` (default, as CLIP-ReID and the TransReID repos) merges ``list_val`` into train.

``msmt17_all`` is every MSMT17 identity as a training source for domain generalisation
(QAConv / TransMatcher convention, 4,101 ids): train + val + query + gallery images; test pids
are offset by (largest train pid + 1) so they never collide with train pids. Its query and
gallery are empty by design (it is a training source only).
"""

from __future__ import annotations

from pathlib import Path

from reidlab.data.parsing import find_dataset_root, finish, read_label_list, relabel, require_dir, require_file
from reidlab.data.records import ReIDDataset, Sample, as_path_str
from reidlab.data.registry import register_dataset

CANDIDATES = ("MSMT17_V1", "MSMT17_V2", "MSMT17", "msmt17", "msmt17_v1", "msmt17_v2")
FOLDERS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
NUM_CAMS = 15
LAYOUT = (
    "  <root>/list_train.txt, list_val.txt, list_query.txt, list_gallery.txt\n"
    "         (lines '0000/0000_000_01_0303morning_0015_0.jpg 0')\n"
    "  <root>/train/<pid>/*.jpg and <root>/test/<pid>/*.jpg                    (V1)\n"
    "  <root>/mask_train_v2/<pid>/*.jpg and <root>/mask_test_v2/<pid>/*.jpg    (V2)"
)


def msmt_camera(path: str) -> int:
    """0-based camera from the third ``_`` field of the file name."""
    return int(Path(path).name.split("_")[2]) - 1


def read_msmt_list(
    list_file: Path, image_dir: Path, skipped: list[tuple[str, str]], dataset: str
) -> list[Sample]:
    samples = []
    for relative, pid in read_label_list(require_file(list_file, dataset, LAYOUT)):
        path = image_dir / relative
        try:
            camid = msmt_camera(relative)
        except (IndexError, ValueError):
            skipped.append((str(path), f"no camera in third '_' field of the name (listed in {list_file.name})"))
            continue
        if not 0 <= camid < NUM_CAMS:
            skipped.append((str(path), f"camera {camid + 1} outside 1..{NUM_CAMS}"))
            continue
        if not path.is_file():
            skipped.append((str(path), f"listed in {list_file.name} but missing"))
            continue
        samples.append(Sample(path=as_path_str(path), pid=pid, camid=camid))
    return samples


def locate_msmt17(root: str | Path | None, version: str, dataset: str) -> tuple[Path, str]:
    """Dataset folder and its version ("v1" or "v2")."""
    if version not in ("auto", "v1", "v2"):
        raise ValueError(f"{dataset}: version must be 'auto', 'v1' or 'v2', got {version!r}")
    versions = ("v1", "v2") if version == "auto" else (version,)
    markers = [FOLDERS[v][0] for v in versions]
    folder = find_dataset_root(root, dataset, CANDIDATES, markers, LAYOUT)
    found = next(v for v in versions if (folder / FOLDERS[v][0]).is_dir())
    return folder, found


def read_msmt17(root: str | Path | None, version: str, with_val: bool, dataset: str) -> ReIDDataset:
    """Parse the four lists into a dataset (train not yet relabelled)."""
    folder, found = locate_msmt17(root, version, dataset)
    train_dir, test_dir = (require_dir(folder / name, dataset, LAYOUT) for name in FOLDERS[found])
    result = ReIDDataset(name=dataset, root=str(folder), options={"version": found, "with_val": with_val})
    result.train = read_msmt_list(folder / "list_train.txt", train_dir, result.skipped, dataset)
    if with_val:
        result.train += read_msmt_list(folder / "list_val.txt", train_dir, result.skipped, dataset)
    result.query = read_msmt_list(folder / "list_query.txt", test_dir, result.skipped, dataset)
    result.gallery = read_msmt_list(folder / "list_gallery.txt", test_dir, result.skipped, dataset)
    for split in ("train", "query", "gallery"):
        setattr(result, split, sorted(result.split(split), key=lambda s: s.path))
    return result


@register_dataset("msmt17")
def load_msmt17(root: str | Path | None = None, version: str = "auto", with_val: bool = True) -> ReIDDataset:
    """MSMT17 with the standard split; ``version`` "auto" prefers V1 when both are present."""
    dataset = read_msmt17(root, version, with_val, "msmt17")
    dataset.train = relabel(dataset.train)
    dataset.notes["train"] = "list_train + list_val" if with_val else "list_train only (list_val excluded)"
    dataset.notes["query"] = f"MSMT17 {dataset.options['version'].upper()}"
    return finish(dataset)


@register_dataset("msmt17_all")
def load_msmt17_all(root: str | Path | None = None, version: str = "auto") -> ReIDDataset:
    """All 4,101 MSMT17 identities (train + val + query + gallery) as one training set."""
    source = read_msmt17(root, version, True, "msmt17_all")
    offset = max((s.pid for s in source.train), default=-1) + 1
    test = [Sample(s.path, s.pid + offset, s.camid) for s in source.query + source.gallery]
    dataset = ReIDDataset(
        name="msmt17_all",
        root=source.root,
        train=relabel(sorted(source.train + test, key=lambda s: s.path)),
        options=dict(source.options),
        empty_by_design=("query", "gallery"),
        skipped=source.skipped,
        notes={"train": f"all ids: train + val + query + gallery (test pids offset by {offset})",
               "query": "training source only"},
    )
    return finish(dataset)
