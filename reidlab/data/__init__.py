"""Datasets (real releases and the synthetic world), samplers and transforms.

Importing this package registers every dataset family; :func:`list_datasets` names them.
"""

from reidlab.data import market_style  # noqa: F401  (registers market1501, dukemtmc, cuhk03_np, occluded_duke)
from reidlab.data.image_dataset import ImageDataset
from reidlab.data.records import ReIDDataset, Sample
from reidlab.data.registry import list_datasets, load_dataset, register_dataset
from reidlab.data.transforms import build_test_transform, build_train_transform

# isort: split
from reidlab.data import synthetic  # noqa: F401  (registers synth_* presets; imported last)

__all__ = [
    "ImageDataset",
    "ReIDDataset",
    "Sample",
    "build_test_transform",
    "build_train_transform",
    "list_datasets",
    "load_dataset",
    "register_dataset",
]
