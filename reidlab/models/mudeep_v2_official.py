"""naiq/MuDeep_v2 checkpoints (``network.py``'s ``MuDeep_v2``) -> the lab's :class:`~reidlab.models.mudeep_v2.MuDeepV2`.

The official trainer saves ``{"epoch", "state_dict", "optimizer"}`` (``market_160.pkl``) from an ``nn.DataParallel``
model, so keys carry ``module.``; :func:`~reidlab.models.official.read_official_state_dict` unwraps both. Its
modules and the lab's:

* ``conv.conv`` / ``conv.bn`` (torchvision's ResNet-50 stem) -> ``trunk.conv1`` / ``trunk.bn1``;
* ``layer1`` - ``layer3`` -> ``trunk.layer1`` - ``trunk.layer3``;
* ``layer4_1`` (one block), ``layer4_2.{0,1}``, ``layer4_3.{0,1,2}`` -> ``streams.0.0``, ``streams.1.{0,1}``,
  ``streams.2.{0,1,2}``;
* ``conv_all.conv1`` / ``conv_all.bn1`` (the leader) -> ``leader.0`` / ``leader.1``;
* ``atten{i}.feature1.conv1`` / ``atten{i}.feature2.conv1`` -> ``attention.{i-1}.query`` / ``.key``;
* ``scale{i}`` (global) and ``scale{i}_{j}`` (stripe j-1), each ``feature.conv1``, ``feature.bn``,
  ``classifier.fc`` -> ``heads.{4(i-1)+j}`` (j = 0 for the global head): ``embed.0``, ``embed.1``, ``classifier.1``;
* ``gamma1`` - ``gamma3`` (shape (1,) each) -> ``gamma`` (shape (3,)).

The class count and the widths come from the tensors. What they do not tell: the input size (``image_size``,
default 384×192 of the released ``market_v1``; ``market_v2`` used 384×128), and that the attention is the channel
affinity without scaling (the only form the code has). The official test descriptor, the 12 head outputs of one pass
concatenated (6144-d), is the lab model's eval output; flip averaging and L2 normalisation are the lab's flip TTA
and cosine distance, as in the official test code.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from reidlab.models.official import load_mapped, register_official
from reidlab.models.registry import create_model
from reidlab.preprocessing import Preprocessing, attach_preprocessing

_STREAMS = {"layer4_1": (0, False), "layer4_2": (1, True), "layer4_3": (2, True)}  # name -> (stream, sequential)
_HEAD = {"feature.conv1.": "embed.0.", "feature.bn.": "embed.1.", "classifier.fc.": "classifier.1."}


def _block_counts(state: dict[str, torch.Tensor]) -> tuple[int, ...]:
    counts = []
    for stage in (1, 2, 3):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        counts.append(max(found) + 1 if found else 0)
    return tuple(counts)


def _official_key(key: str) -> str | None:
    """The lab's key for an official key, or None when it has no place in the lab's model."""
    if key.startswith("conv.conv."):
        return "trunk.conv1." + key.removeprefix("conv.conv.")
    if key.startswith("conv.bn."):
        return "trunk.bn1." + key.removeprefix("conv.bn.")
    if re.match(r"layer[123]\.", key):
        return "trunk." + key
    if m := re.match(r"(layer4_[123])\.(.+)$", key):
        stream, sequential = _STREAMS[m.group(1)]
        rest = m.group(2) if sequential else "0." + m.group(2)
        return f"streams.{stream}.{rest}"
    if key.startswith("conv_all.conv1."):
        return "leader.0." + key.removeprefix("conv_all.conv1.")
    if key.startswith("conv_all.bn1."):
        return "leader.1." + key.removeprefix("conv_all.bn1.")
    if m := re.match(r"atten([123])\.feature([12])\.conv1\.weight$", key):
        return f"attention.{int(m.group(1)) - 1}.{'query' if m.group(2) == '1' else 'key'}.weight"
    if m := re.match(r"scale([123])(?:_([123]))?\.(.+)$", key):
        head = 4 * (int(m.group(1)) - 1) + (int(m.group(2)) if m.group(2) else 0)
        for official, lab in _HEAD.items():
            if m.group(3).startswith(official):
                return f"heads.{head}.{lab}{m.group(3).removeprefix(official)}"
    return None


@register_official("mudeep_v2")
def mudeep_v2_from_official(
    state: dict[str, torch.Tensor], *, path: Path, image_size: tuple[int, int] = (384, 192)
) -> nn.Module:
    """The lab's MuDeep v2 holding a naiq/MuDeep_v2 checkpoint; ``image_size`` is the official test resize
    (bicubic, ImageNet normalisation)."""
    required = ("conv_all.conv1.weight", "scale1.feature.conv1.weight", "scale1.classifier.fc.weight", "gamma1")
    absent = [k for k in required if k not in state]
    if absent:
        raise ValueError(f"{path}: not a naiq/MuDeep_v2 checkpoint (no {', '.join(absent)})")
    blocks = _block_counts(state)
    if "layer1.0.conv3.weight" not in state or blocks != (3, 4, 6):
        raise ValueError(f"{path}: the official MuDeep v2 is built on torchvision's ResNet-50 (bottleneck blocks "
                         f"3, 4, 6 in layer1-3); this file has {blocks}")  # fmt: skip
    guidance, embed = int(state["conv_all.conv1.weight"].shape[0]), int(state["scale1.feature.conv1.weight"].shape[0])
    num_classes = int(state["scale1.classifier.fc.weight"].shape[0])
    model = create_model("mudeep_v2_resnet50", num_classes=num_classes, pretrained=False, attention="channel",
                         scaled_attention=False, guidance_channels=guidance, embed_dim=embed)  # fmt: skip
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    gates = {}
    for key, value in state.items():
        if m := re.fullmatch(r"gamma([123])", key):
            gates[int(m.group(1))] = value.reshape(-1)
            continue
        lab = _official_key(key)
        if lab is None:
            unmapped.append(key)
        else:
            mapped[lab] = value
    if sorted(gates) == [1, 2, 3]:
        mapped["gamma"] = torch.cat([gates[i] for i in (1, 2, 3)])
    own = model.state_dict()
    for key in own:  # files from torch < 0.4.1 have no BN step counters; they do not affect the output
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = own[key]
    load_mapped(model, mapped, path=path, unmapped=unmapped)
    return attach_preprocessing(model, Preprocessing(tuple(image_size), "imagenet", "bicubic"))
