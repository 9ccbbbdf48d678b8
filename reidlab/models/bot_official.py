"""reid-strong-baseline checkpoints (michuanhaohao/reid-strong-baseline, ``modeling/baseline.py``) -> the lab's BoT.

The official ``Baseline`` holds ``base.*`` (a torchvision-layout ResNet without ``fc``), ``bottleneck.*``
(the BNNeck's BatchNorm1d, bias frozen at 0) and ``classifier.weight`` (no bias). Its ResNet has **no
ReLU after the stem BN**, so the lab's BoT is built with ``stem_relu=False``. The depth (18/34/50/101/152)
and the class count come from the tensors; the last stride, the test feature and the input size do not
and are options with the released configuration's values.

Its trainer pickles the whole model object (an ignite checkpoint handler), which the lab never
unpickles. Turn such a file into a state dict once, in a trusted environment where the official code
imports: ``torch.save(torch.load("resnet50_model_120.pth", weights_only=False).state_dict(), "bot.pth")``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from reidlab.models.official import load_mapped, register_official
from reidlab.models.registry import create_model, is_model
from reidlab.preprocessing import Preprocessing, attach_preprocessing

_DEPTHS = {  # (block type, blocks per stage) -> depth
    ("basic", (2, 2, 2, 2)): 18,
    ("basic", (3, 4, 6, 3)): 34,
    ("bottleneck", (3, 4, 6, 3)): 50,
    ("bottleneck", (3, 4, 23, 3)): 101,
    ("bottleneck", (3, 8, 36, 3)): 152,
}


def infer_resnet_depth(state: dict[str, torch.Tensor], prefix: str = "base.") -> int:
    """ResNet depth from the block counts and block type found under ``prefix``."""
    blocks = []
    for stage in range(1, 5):
        found = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}layer{stage}\.(\d+)\.", k))}
        blocks.append(max(found) + 1 if found else 0)
    kind = "bottleneck" if f"{prefix}layer1.0.conv3.weight" in state else "basic"
    depth = _DEPTHS.get((kind, tuple(blocks)))
    if depth is None:
        raise ValueError(f"not a standard ResNet under {prefix!r}: {kind} blocks {blocks}")
    return depth


@register_official("bot")
def bot_from_official(
    state: dict[str, torch.Tensor],
    *,
    path: Path,
    last_stride: int = 1,
    neck_feat: str = "after",
    image_size: tuple[int, int] = (256, 128),
) -> nn.Module:
    """The lab's BoT holding a reid-strong-baseline ``Baseline`` checkpoint.

    Options (defaults: the released Market / Duke configs): ``last_stride`` (``MODEL.LAST_STRIDE`` 1),
    ``neck_feat`` (``TEST.NECK_FEAT`` 'after': the feature after the BNNeck's BN), ``image_size``
    (``INPUT.SIZE_TEST`` 256×128; the test transform is a bilinear resize and ImageNet normalisation).
    """
    if "classifier.bias" in state and "bottleneck.weight" not in state:
        raise ValueError(
            f"{path}: a Baseline trained with MODEL.NECK 'no' (classifier with bias, no BNNeck); "
            "the lab's BoT always has the BNNeck, so this checkpoint cannot be reproduced"
        )
    if "classifier.weight" not in state or not any(k.startswith("base.") for k in state):
        raise ValueError(f"{path}: not a reid-strong-baseline Baseline checkpoint (no 'base.*' / 'classifier.weight')")
    depth = infer_resnet_depth(state)
    name = f"bot_resnet{depth}"
    if not is_model(name):
        raise ValueError(f"{path}: a ResNet-{depth} Baseline; the lab registers no {name!r}")
    num_classes = int(state["classifier.weight"].shape[0])
    model = create_model(
        name, num_classes=num_classes, pretrained=False, last_stride=last_stride, neck_feat=neck_feat, stem_relu=False
    )
    mapped: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for key, value in state.items():
        if key.startswith("base."):
            mapped["backbone." + key.removeprefix("base.")] = value
        elif key.startswith("bottleneck."):
            mapped["neck.bn." + key.removeprefix("bottleneck.")] = value
        elif key == "classifier.weight":
            mapped["neck.classifier.weight"] = value
        else:
            unmapped.append(key)
    own = model.state_dict()
    for key in own:  # checkpoints from torch < 0.4.1 have no BN step counters; they do not affect the output
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = own[key]
    load_mapped(model, mapped, path=path, unmapped=unmapped)
    return attach_preprocessing(model, Preprocessing(tuple(image_size), "imagenet", "bilinear"))
