"""CLIP "zero-shot" ReID, each mode named as what it is (methods spec §3.2, §6.3).

* **True zero-shot** (:func:`zero_shot_model`): CLIP's own image embedding (``f_proj``, L2-normalised, cosine) from
  the pretrained tower, at the ReID input size (position embedding resized, patch stride = patch size), image to
  image, with no ReID training at all.
* **Attribute-text oracle** (:class:`AttributeTextOracle`): the seed's ``--mm`` descriptor,
  ``concat(f, softmax(n(f_proj)·Wᵀ / τ))`` with ``W`` the L2-normalised CLIP text embeddings of sentences written
  from the ground-truth attributes of the **test identities** (τ = 0.07). It uses test-identity annotations:
  privileged information, never zero-shot. The seed builds ``W`` from Market's test identities whatever dataset it
  tests and puts the identity's row number in each sentence ("person no.{k}"); here ``W`` comes from the tested
  dataset's own test identities and the sentences carry attributes only.
* The seed's default "zero-shot" — a CLIP-ReID encoder fine-tuned on Market and evaluated elsewhere — is a
  cross-domain transfer: evaluate a trained ``clip_reid`` run on the target dataset (notebook 06 reports it so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from reidlab.models import create_model
from reidlab.models.lab_clip import LAB_CLIP_NAME

ZERO_SHOT_MODELS = {"ViT-B-16": "clip_reid_vit_b16", "RN50": "clip_reid_rn50", LAB_CLIP_NAME: "clip_reid_tiny"}
ORACLE_NOTE = "uses ground-truth attributes of the test identities (oracle, not zero-shot)"


def zero_shot_model(backbone: str = LAB_CLIP_NAME, *, pretrained: Any = "auto", **kwargs: Any) -> nn.Module:
    """A pretrained CLIP image tower as a ReID model whose eval output is CLIP's image embedding ``f_proj``
    (plus the text tower, for text queries and the oracle). ``kwargs``: ``image_size``, ``normalization``, ... of
    :func:`~reidlab.models.clip_reid.build_clip_reid`."""
    if backbone not in ZERO_SHOT_MODELS:
        raise ValueError(f"unknown CLIP backbone {backbone!r}; expected one of {sorted(ZERO_SHOT_MODELS)}")
    return create_model(ZERO_SHOT_MODELS[backbone], num_classes=0, pretrained=pretrained, neck_feat="proj",
                        text=True, **kwargs).eval()  # fmt: skip


def zero_shot_for(preset: Any) -> nn.Module:
    """:func:`zero_shot_model` on the CLIP, input size, normalisation and weights of a CLIP method's ``preset``."""
    backbone = {model: name for name, model in ZERO_SHOT_MODELS.items()}.get(preset.model)
    if backbone is None:
        known = sorted(ZERO_SHOT_MODELS.values())
        raise ValueError(f"preset model {preset.model!r} is not a CLIP ReID model ({known})")
    return zero_shot_model(backbone, pretrained=preset.pretrained, image_size=tuple(preset.image_size),
                           normalization=preset.normalization, interpolation=preset.interpolation,
                           pos_interpolation=preset.pos_interpolation)  # fmt: skip


def market_attribute_sentence(attributes: Mapping[str, Any]) -> str:
    """One sentence from Market-1501's decoded attributes (:func:`reidlab.data.market_attributes.decode_attributes`),
    the seed's plain template without its identity number."""
    upper = " and ".join(attributes.get("up_colors") or ["unknown-colour"])
    lower = " and ".join(attributes.get("down_colors") or ["unknown-colour"])
    words = [f"a {attributes.get('age', 'adult')} {attributes.get('gender', 'person')} person with "
             f"{attributes.get('hair', 'hair')}, {upper} {attributes.get('up', 'upper-body clothing')}, {lower} "
             f"{attributes.get('down', 'lower-body clothing')} {attributes.get('clothes', '')}".rstrip()]  # fmt: skip
    carried = attributes.get("carrying") or []
    if "hat" in carried:
        words.append("wearing a hat")
    items = [c for c in carried if c != "hat"]
    if items:
        words.append("carrying a " + ", a ".join(items))
    return ", ".join(words) + "."


def test_identity_sentences(dataset: Any, attribute_root: str | None = None) -> dict[int, list[str]]:
    """``{test pid: [sentence]}`` from ground-truth annotations of the dataset's **test** identities: a synthetic
    world's descriptions, or Market-1501's attribute file (test split)."""
    pids = sorted({s.pid for split in (dataset.query, dataset.gallery) for s in split if s.pid > 0})
    if dataset.name.startswith("synth_"):
        from reidlab.pretrain.world import identity_labels

        labels = identity_labels(dataset)
        samples = {s.pid: s for split in (dataset.query, dataset.gallery) for s in split}
        return {p: [labels.caption(samples[p])] for p in pids if samples[p].original_pid in labels.captions}
    if dataset.name.startswith("market"):
        from reidlab.data.market_attributes import attribute_records

        records = attribute_records(attribute_root or dataset.root)
        samples = {s.pid: s for split in (dataset.query, dataset.gallery) for s in split}
        return {p: [market_attribute_sentence(records[("test", samples[p].original_pid)])] for p in pids
                if ("test", samples[p].original_pid) in records}  # fmt: skip
    raise ValueError(f"{dataset.name}: no attribute annotations the lab can turn into sentences "
                     "(synthetic worlds and Market-1501 have them)")  # fmt: skip


class AttributeTextOracle(nn.Module):
    """The seed's ``--mm`` test descriptor over a CLIP model (see the module docstring).

    ``mode="joint"``: ``concat(f, softmax(n(f_proj)·Wᵀ/τ))`` as the seed (``f`` is large next to a probability
    vector, so the text part weighs little after the joint L2 normalisation); ``mode="text"``: the soft assignment
    alone (the seed's first version).
    """

    def __init__(self, model: nn.Module, sentences: Mapping[int, Sequence[str]], *,
                 mode: Literal["joint", "text"] = "joint", temperature: float = 0.07) -> None:  # fmt: skip
        super().__init__()
        if not sentences:
            raise ValueError("AttributeTextOracle needs at least one identity's sentences")
        if mode not in ("joint", "text"):
            raise ValueError(f"mode must be 'joint' or 'text', got {mode!r}")
        self.model = model
        self.mode, self.temperature = mode, float(temperature)
        self.preprocessing = model.preprocessing
        rows = []
        for texts in sentences.values():
            embedded = model.encode_texts(list(texts))  # L2-normalised per sentence
            rows.append(F.normalize(embedded.mean(0), dim=0))
        self.register_buffer("identity_text", torch.stack(rows))
        self.note = ORACLE_NOTE

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        enc = self.model.image_encoder(images)
        logits = F.normalize(enc["f_proj"].float(), dim=-1) @ self.identity_text.T / self.temperature
        soft = logits.softmax(dim=-1)
        return soft if self.mode == "text" else torch.cat([enc["f"].float(), soft], dim=1)
