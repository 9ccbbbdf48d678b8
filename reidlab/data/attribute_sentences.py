"""Attribute sentences for DMF's stage I: one short text per image, built from whatever a dataset annotates.

A sentence is a list of *phrases*, one per attribute group, in a fixed order, joined by commas after the opening
"a male pedestrian" — the phrase list of DMF's figure ("male, brown coat, gray trousers, brown shoes, ..., front
view"), written as the lab's own template (methods spec §1.2; the paper's exact template is not public). Dropping a
group removes its phrase, which is how the attribute-group ablation measures what each group contributes.

Sources (:func:`sentence_source`):

* **synthetic worlds** (``synth_*``): the identity's attribute record (``attributes.json``) gives gender, hair,
  upper garment, lower garment, shoes and accessories; the image's view angle (``manifest.csv``) gives the view
  (front / back / side). The worlds record no scene name per image, so there is no scene group.
* **Market-1501**: ``market_attribute.mat`` (:mod:`reidlab.data.market_attributes`) gives gender, age, hair, upper
  garment (colours, sleeve length), lower garment (colours, length, dress or pants) and carried items, per identity.
* **a JSON file** ``{raw pid: {group: phrase}}`` (or ``{raw pid: "sentence"}``, one group called ``text``), for any
  other dataset whose attributes someone has written out; keys may also be ``"<split>/<pid>"``.

Any other dataset has no sentences (``None``): DMF then runs its image-only stage alone and says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reidlab.data.records import ReIDDataset, Sample

#: Attribute groups in sentence order (a source uses the ones it annotates).
GROUPS = ("gender", "age", "hair", "upper", "lower", "shoes", "accessories", "view", "text")
_GENDER_WORDS = {"man": "male", "woman": "female", "male": "male", "female": "female"}
_PATTERN_WORDS = {"plain": "", "striped": "striped ", "checked": "checked ", "logo": ""}


def compose(phrases: Mapping[str, str], drop: Iterable[str] = ()) -> str:
    """The sentence of ``phrases`` (group -> phrase) without the groups in ``drop``.

    ``gender`` opens the sentence ("a female pedestrian", or "a pedestrian" without it); the other phrases follow in
    :data:`GROUPS` order, separated by commas.
    """
    dropped = set(drop)
    unknown = dropped - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown attribute group(s) {sorted(unknown)}; groups: {GROUPS}")
    kept = {g: p for g, p in phrases.items() if g not in dropped and p}
    opening = f"a {kept.pop('gender')} pedestrian" if "gender" in kept else "a pedestrian"
    rest = [kept[g] for g in GROUPS if g in kept]
    return ", ".join([opening, *rest])


def view_word(view_deg: float) -> str:
    """``front`` within 45° of facing the camera, ``back`` within 45° of facing away, else ``side``."""
    angle = abs(((float(view_deg) + 180.0) % 360.0) - 180.0)
    return "front" if angle <= 45.0 else ("back" if angle >= 135.0 else "side")


def synthetic_phrases(record: Mapping[str, Any], view_deg: float | None = None) -> dict[str, str]:
    """Phrases of a synthetic world's attribute record (and of the image's view angle, when known)."""
    hair = record["hair"]
    up = record["upper"]
    if up["pattern"] in ("striped", "checked"):
        upper = f"{up['colour']} and {up['pattern_colour']} {up['pattern']} {up['type']}"
    else:
        upper = f"{up['colour']} {_PATTERN_WORDS[up['pattern']]}{up['type']}"
        if up["pattern"] == "logo":
            upper += f" with a {up['pattern_colour']} logo"
        elif up["type"] == "jacket":
            upper += f" over a {up['pattern_colour']} top"
    items = [f"{record[k]['colour']} {k}" for k in ("hat", "backpack", "handbag") if record.get(k)]
    phrases = {
        "gender": _GENDER_WORDS[record["gender"]],
        "hair": f"{hair['length']} {hair['colour']} hair",
        "upper": upper,
        "lower": f"{record['lower']['colour']} {record['lower']['type']}",
        "shoes": f"{record['shoes']['colour']} shoes",
        "accessories": " and ".join(items),
    }
    if view_deg is not None:
        phrases["view"] = f"{view_word(view_deg)} view"
    return phrases


def _colours(names: Sequence[str]) -> str:
    words = ["grey" if n == "gray" else n for n in names]  # the lab's vocabulary spells it grey
    return " and ".join(words)


def market_phrases(decoded: Mapping[str, Any]) -> dict[str, str]:
    """Phrases of one identity's decoded Market-1501 attributes (:func:`~reidlab.data.market_attributes.
    decode_attributes`)."""
    phrases: dict[str, str] = {}
    if "gender" in decoded:
        phrases["gender"] = decoded["gender"]
    if "age" in decoded:
        phrases["age"] = decoded["age"]
    if "hair" in decoded:
        phrases["hair"] = decoded["hair"]
    upper = " ".join(p for p in (_colours(decoded.get("up_colors", [])), "top") if p)
    if "up" in decoded:
        upper += f" with {decoded['up']}"
    phrases["upper"] = upper
    length = {"long lower-body clothing": "long", "short lower-body clothing": "short"}.get(decoded.get("down", ""), "")
    kind = decoded.get("clothes", "clothing")
    phrases["lower"] = " ".join(p for p in (_colours(decoded.get("down_colors", [])), length, kind) if p)
    carried = list(decoded.get("carrying", []))
    if carried:
        phrases["accessories"] = " and ".join(carried)
    return phrases


@dataclass
class SentenceSource:
    """Per-image phrases of one dataset: ``phrases(sample, split)`` and ``sentence(sample, split, drop)``.

    ``by_identity`` maps an identity key (``"<pid>"`` or ``"<split>/<pid>"``, the raw pid) to its phrases;
    ``views`` maps an image path to its view angle (synthetic worlds), added as the ``view`` group.
    """

    name: str
    by_identity: dict[str, dict[str, str]]
    views: dict[str, float] = field(default_factory=dict)
    origin: str = ""

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups this source annotates, in sentence order."""
        present = {g for phrases in self.by_identity.values() for g, p in phrases.items() if p}
        if self.views:
            present.add("view")
        return tuple(g for g in GROUPS if g in present)

    def phrases(self, sample: Sample, split: str = "train") -> dict[str, str]:
        pid = sample.original_pid
        found = self.by_identity.get(f"{split}/{pid}", self.by_identity.get(str(pid)))
        if found is None:
            raise KeyError(f"{self.name}: no attributes for identity {pid} ({split} split; {self.origin})")
        out = dict(found)
        if sample.path in self.views:
            out["view"] = f"{view_word(self.views[sample.path])} view"
        return out

    def sentence(self, sample: Sample, split: str = "train", drop: Iterable[str] = ()) -> str:
        return compose(self.phrases(sample, split), drop)

    def covers(self, samples: Sequence[Sample], split: str = "train") -> bool:
        """Whether every sample's identity has attributes."""
        pids = {s.original_pid for s in samples}
        return all(f"{split}/{p}" in self.by_identity or str(p) in self.by_identity for p in pids)


def synthetic_source(dataset: ReIDDataset) -> SentenceSource:
    """Phrases of a generated synthetic world (identity records and per-image view angles)."""
    from reidlab.data.synthetic.showcase import identities, manifest

    table = manifest(dataset)
    views = dict(zip(table["path"], table["view_deg"].astype(float), strict=True))
    records = {key: synthetic_phrases(rec) for key, rec in identities(dataset).items()}
    return SentenceSource(dataset.name, records, views, origin="attributes.json + manifest.csv")


def market_source(dataset: ReIDDataset, attribute_root: str | Path | None = None) -> SentenceSource:
    """Phrases of Market-1501 identities from ``market_attribute.mat`` (searched under ``attribute_root``, the
    dataset's folder and its parent, then the lab's data folder)."""
    from reidlab.data.market_attributes import attribute_records, find_attribute_file

    roots = [attribute_root] if attribute_root is not None else [dataset.root, Path(dataset.root).parent, None]
    path = None
    for root in roots:
        try:
            path = find_attribute_file(root)
            break
        except FileNotFoundError:
            continue
    if path is None:
        path = find_attribute_file(roots[-1])  # raises, listing where it looked
    records = attribute_records(path)
    by_identity = {f"{split}/{pid}": market_phrases(decoded) for (split, pid), decoded in records.items()}
    return SentenceSource(dataset.name, by_identity, origin=str(path))


def file_source(dataset: ReIDDataset, path: str | Path) -> SentenceSource:
    """Phrases from a JSON file ``{pid: {group: phrase}}`` or ``{pid: "sentence"}``."""
    path = Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"text_file {path}: cannot be read as JSON ({error})") from None
    if not isinstance(content, dict) or not content:
        raise ValueError(f"text_file {path}: expected a non-empty object {{pid: {{group: phrase}} or sentence}}")
    by_identity = {}
    for key, value in content.items():
        phrases = {"text": value} if isinstance(value, str) else value
        if not isinstance(phrases, dict) or set(phrases) - set(GROUPS):
            raise ValueError(f"text_file {path}: identity {key!r} must map to a sentence or to phrases of the groups "
                             f"{GROUPS}, got {value!r}")  # fmt: skip
        by_identity[str(key)] = {g: str(p) for g, p in phrases.items()}
    return SentenceSource(dataset.name, by_identity, origin=str(path))


def sentence_source(dataset: ReIDDataset, text_file: str | Path | None = None) -> SentenceSource | None:
    """The sentences of ``dataset`` (see the module docstring), or None when it annotates no attributes."""
    if text_file is not None:
        return file_source(dataset, text_file)
    if dataset.name.startswith("synth_"):
        return synthetic_source(dataset)
    if dataset.name == "market1501":
        try:
            return market_source(dataset)
        except FileNotFoundError:
            return None
    return None
