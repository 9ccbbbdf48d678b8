"""Datasets (real releases and the synthetic world), samplers and transforms.

Importing this package registers every dataset family; :func:`list_datasets` names them.
"""

# Importing a family module registers its datasets.
from reidlab.data import (  # noqa: F401
    market_style,
    msmt17,
    occluded_reid,
    randperson,
    regdb,
    sysu_mm01,
)
from reidlab.data.image_dataset import ImageDataset
from reidlab.data.records import ReIDDataset, Sample
from reidlab.data.registry import list_datasets, load_available, load_dataset, register_dataset
from reidlab.data.samplers import CrossModalitySampler, PKSampler
from reidlab.data.transforms import build_test_transform, build_train_transform

# isort: split
from reidlab.data import synthetic  # noqa: F401  (registers the synth_* worlds; imported last)

__all__ = [
    "CrossModalitySampler",
    "PKSampler",
    "ImageDataset",
    "ReIDDataset",
    "Sample",
    "build_test_transform",
    "build_train_transform",
    "list_datasets",
    "load_available",
    "load_dataset",
    "register_dataset",
]
