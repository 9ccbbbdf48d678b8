"""Market-1501 attribute annotations (Lin et al., ``market_attribute.mat``) as per-identity records.

The MATLAB file holds a struct ``market_attribute`` with ``train`` (751 ids) and ``test`` (750 ids)
structs; each field is one attribute coded per identity, ``image_index`` holds the pid strings.
Codes: binary attributes 1 = no, 2 = yes; ``gender`` 1 male / 2 female; ``hair`` 1 short / 2 long;
``up`` (sleeve) 1 long / 2 short; ``down`` (lower-body length) 1 long / 2 short; ``clothes``
(lower-body type) 1 dress / 2 pants; ``age`` 1 young / 2 teenager / 3 adult / 4 old. Colour
fields ``up<colour>`` / ``down<colour>`` are binary.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reidlab.data.parsing import default_root

FILE_NAME = "market_attribute.mat"
FOLDERS = ("Market-1501_Attribute", "market_attribute", "Market-1501-v15.09.15", "Market-1501", "market1501",
           "Market1501", "attributes")
VALUE_NAMES: dict[str, dict[int, str]] = {
    "age": {1: "young", 2: "teenager", 3: "adult", 4: "old"},
    "gender": {1: "male", 2: "female"},
    "hair": {1: "short hair", 2: "long hair"},
    "up": {1: "long sleeves", 2: "short sleeves"},
    "down": {1: "long lower-body clothing", 2: "short lower-body clothing"},
    "clothes": {1: "dress", 2: "pants"},
}
BINARY = {"hat": "hat", "backpack": "backpack", "bag": "bag", "handbag": "handbag"}


def find_attribute_file(root: str | Path | None = None) -> Path:
    """``root`` if it is the ``.mat`` file, else ``market_attribute.mat`` in ``root`` or a known sub-folder."""
    base = default_root(root)
    if base.is_file():
        return base
    looked = [base / FILE_NAME] + [base / folder / FILE_NAME for folder in FOLDERS]
    for path in looked:
        if path.is_file():
            return path
    listed = "\n  ".join(str(p) for p in looked)
    raise FileNotFoundError(f"market_attributes: {FILE_NAME} not found; looked at:\n  {listed}")


def _fields(struct: Any) -> dict[str, Any]:
    if isinstance(struct, np.ndarray) and struct.dtype.names:  # struct_as_record arrays
        return {name: struct[name].squeeze() for name in struct.dtype.names}
    return {name: getattr(struct, name) for name in struct._fieldnames}


def load_market_attributes(root: str | Path | None = None) -> pd.DataFrame:
    """One row per identity: ``split`` ("train" | "test"), ``pid`` (original Market pid) and the raw codes."""
    from scipy.io import loadmat

    path = find_attribute_file(root)
    try:
        content = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise ValueError(f"market_attributes: cannot read {path}: {error}") from error
    key = next((k for k in content if k.endswith("_attribute")), None)
    if key is None:
        raise ValueError(f"market_attributes: {path} has no '*_attribute' struct (keys: {sorted(content)})")
    frames = []
    for split, struct in _fields(content[key]).items():
        fields = _fields(struct)
        if "image_index" not in fields:
            raise ValueError(f"market_attributes: {path}: split {split!r} lacks 'image_index'")
        pids = [int(str(p)) for p in np.atleast_1d(fields.pop("image_index"))]
        table = {"split": split, "pid": pids}
        for name, values in sorted(fields.items()):
            values = np.atleast_1d(values).astype(int)
            if len(values) != len(pids):
                raise ValueError(f"market_attributes: {path}: {split}.{name} has {len(values)} values, "
                                 f"expected {len(pids)}")
            table[name] = values
        frames.append(pd.DataFrame(table))
    return pd.concat(frames, ignore_index=True).sort_values(["split", "pid"], ignore_index=True)


def decode_attributes(codes: Mapping[str, Any]) -> dict[str, Any]:
    """Readable values of one identity's codes: named categories, carried items, upper / lower colours."""
    out: dict[str, Any] = {}
    for name, names in VALUE_NAMES.items():
        if name in codes:
            out[name] = names.get(int(codes[name]), f"unknown code {codes[name]}")
    out["carrying"] = [label for name, label in BINARY.items() if int(codes.get(name, 1)) == 2]
    for part in ("up", "down"):
        out[f"{part}_colors"] = sorted(
            name[len(part):] for name, value in codes.items()
            if name.startswith(part) and name not in VALUE_NAMES and name != part and int(value) == 2
        )
    return out


def attribute_records(root: str | Path | None = None) -> dict[tuple[str, int], dict[str, Any]]:
    """``{(split, pid): decoded attributes}`` for every annotated identity."""
    table = load_market_attributes(root)
    records = {}
    for row in table.to_dict("records"):
        key = (row.pop("split"), int(row.pop("pid")))
        records[key] = decode_attributes(row)
    return records
