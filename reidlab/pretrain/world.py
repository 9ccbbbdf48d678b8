"""The pretraining world and what each of its images is labelled with: identity, attributes, caption.

``synth_pretrain`` (:mod:`reidlab.data.synthetic.catalog`) is a RandPerson-style world (random palettes, 11
scenes / 19 cameras, training split only) generated for pretraining alone: mini = 3,000 identities / 12,000
images, full = 8,000 / 160,000, world seed 0. The generator draws identities from a random stream keyed on
the world's own name, so no identity of it is an identity of an evaluation world (checked in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from reidlab.data import ReIDDataset, Sample, load_dataset
from reidlab.data.synthetic import attributes as names
from reidlab.data.synthetic.showcase import identities

PRETRAIN_WORLD = "synth_pretrain"
PRETRAIN_SEED = 0

#: Attribute heads of the supervised pretraining: name -> the values it tells apart.
ATTRIBUTE_HEADS: dict[str, tuple[str, ...]] = {
    "gender": names.GENDERS,
    "hair_length": names.HAIR_LENGTHS,
    "hair_colour": tuple(names.HAIR_COLOURS),
    "upper_type": names.UPPER_TYPES,
    "upper_colour": names.COLOUR_NAMES,
    "pattern": names.PATTERNS,
    "lower_type": names.LOWER_TYPES,
    "lower_colour": names.COLOUR_NAMES,
    "shoes_colour": names.COLOUR_NAMES,
    "backpack": ("no", "yes"),
    "handbag": ("no", "yes"),
    "hat": ("no", "yes"),
}


def load_pretrain_world(size: str = "mini") -> ReIDDataset:
    """The pretraining world (generated on first use)."""
    return load_dataset(PRETRAIN_WORLD, size=size, seed=PRETRAIN_SEED)


def attribute_vector(record: dict) -> list[int]:
    """The index of each :data:`ATTRIBUTE_HEADS` value in an ``attributes.json`` record."""
    values = {
        "gender": record["gender"],
        "hair_length": record["hair"]["length"],
        "hair_colour": record["hair"]["colour"],
        "upper_type": record["upper"]["type"],
        "upper_colour": record["upper"]["colour"],
        "pattern": record["upper"]["pattern"],
        "lower_type": record["lower"]["type"],
        "lower_colour": record["lower"]["colour"],
        "shoes_colour": record["shoes"]["colour"],
        "backpack": "yes" if record["backpack"] else "no",
        "handbag": "yes" if record["handbag"] else "no",
        "hat": "yes" if record["hat"] else "no",
    }
    return [ATTRIBUTE_HEADS[head].index(values[head]) for head in ATTRIBUTE_HEADS]


@dataclass(frozen=True)
class IdentityLabels:
    """Per-identity captions and attribute vectors of a synthetic world, looked up by a sample's raw pid."""

    captions: dict[int, str]
    attributes: dict[int, list[int]]

    def caption(self, sample: Sample) -> str:
        return self.captions[sample.original_pid]

    def attribute_tensor(self, sample: Sample) -> torch.Tensor:
        return torch.tensor(self.attributes[sample.original_pid], dtype=torch.long)


def identity_labels(dataset: ReIDDataset) -> IdentityLabels:
    """Captions and attributes of every identity of a generated world (keys: the pid written in file names).

    MSMT-layout worlds key identities per split (``train/<pid>``) and are not supported here.
    """
    records = identities(dataset)
    if any("/" in key for key in records):
        raise ValueError(f"{dataset.name}: identities keyed per split (MSMT layout); use another world")
    captions = {int(key): rec["description"] for key, rec in records.items()}
    attributes = {int(key): attribute_vector(rec) for key, rec in records.items()}
    return IdentityLabels(captions, attributes)
