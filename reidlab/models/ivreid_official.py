"""IV-ReID checkpoints (linyq17/IV-REID, ``model/baseline.py``) -> the lab's :class:`~reidlab.models.ivreid.IVReID`.

The seed's ``Baseline`` holds ``base.*`` (a torchvision-layout ResNet without ``fc`` whose convolutions all carry
a ``bias``), ``bottleneck.*`` (BatchNorm1d with a learnable bias) and ``share_classifier.weight`` / ``.bias``
(``FC_BIAS = yes`` in both released configs). Its ResNet has no ReLU after the stem BN. The modality heads
(``IDENet``: ``rgb_bn``, ``rgb_fc1``, ``rgb_fc2``, ``ir_*``) live in a separate module the trainer never saves,
so a released file holds the test path only and the lab's model is built without heads; a file that also
holds them (raw ``rgb_*`` / ``ir_*`` names, or under ``ide_net.``) gets them.

Its trainer pickles the whole model object (``torch.save(model)``), which the lab never unpickles. Turn such
a file into a state dict once, in a trusted environment where the official code imports:
``torch.save(torch.load("res50_sysumm_all_best.pth", weights_only=False).state_dict(), "ivreid.pth")``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn

from reidlab.models.bot_official import infer_resnet_depth
from reidlab.models.official import load_mapped, register_official
from reidlab.models.registry import create_model, is_model
from reidlab.preprocessing import Preprocessing, attach_preprocessing

_HEAD_KEY = re.compile(r"^(?:ide_net\.)?(rgb|ir)_(bn|fc1|fc2)\.(.+)$")


def following_bn(conv_key: str) -> str:
    """The BatchNorm that follows a ResNet convolution (``layer1.0.conv2.bias`` -> ``layer1.0.bn2``)."""
    module = conv_key.rsplit(".", 1)[0]
    if module.endswith("downsample.0"):
        return module[: -len("0")] + "1"
    head, _, last = module.rpartition(".")
    if not last.startswith("conv"):
        raise ValueError(f"{conv_key}: not a ResNet convolution bias")
    return f"{head}.bn{last[len('conv'):]}" if head else f"bn{last[len('conv'):]}"


def fold_conv_biases(backbone: dict[str, torch.Tensor], conv_keys: list[str]) -> dict[str, torch.Tensor]:
    """Fold each convolution bias into the following BN's running mean: ``BN(conv(x) + b)`` with running mean
    ``mu`` equals ``BN(conv(x))`` with running mean ``mu - b`` (and training-mode BN removes ``b`` anyway)."""
    out = {k: v for k, v in backbone.items() if k not in conv_keys}
    for key in conv_keys:
        mean_key = f"{following_bn(key)}.running_mean"
        if mean_key not in out:
            raise ValueError(f"conv bias {key} has no following BatchNorm ({mean_key} is missing)")
        out[mean_key] = out[mean_key] - backbone[key].to(out[mean_key].dtype)
    return out


@register_official("ivreid")
def ivreid_from_official(
    state: dict[str, torch.Tensor],
    *,
    path: Path,
    last_stride: int = 1,
    fold_conv_bias: bool = True,
    image_size: tuple[int, int] = (384, 128),
) -> nn.Module:
    """The lab's IV-ReID holding an IV-REID ``Baseline`` checkpoint (and its ``IDENet`` heads when the file has them).

    Options (defaults: the released SYSU-MM01 / RegDB configs): ``last_stride`` (``LAST_STRIDE`` 1),
    ``fold_conv_bias`` (True: a standard ResNet with the conv biases folded into the BN running means; False:
    a ResNet built with ``conv_bias=True`` holding them as they are — the same features), ``image_size``
    (``SIZE_TEST`` 384×128; the test transform is a bilinear resize and ImageNet normalisation).
    """
    if "share_classifier.weight" not in state or not any(k.startswith("base.") for k in state):
        raise ValueError(f"{path}: not an IV-REID Baseline checkpoint (no 'base.*' / 'share_classifier.weight')")
    if "bottleneck.weight" not in state:
        raise ValueError(f"{path}: a Baseline trained with USING_NORM 'no' (no bottleneck BN); the lab's IV-ReID "
                         "always has it, so this checkpoint cannot be reproduced")  # fmt: skip
    depth = infer_resnet_depth(state)
    name = f"ivreid_resnet{depth}"
    if not is_model(name):
        raise ValueError(f"{path}: a ResNet-{depth} Baseline; the lab registers no {name!r}")
    num_classes = int(state["share_classifier.weight"].shape[0])
    backbone = {k.removeprefix("base."): v for k, v in state.items() if k.startswith("base.")}
    conv_biases = [k for k in backbone if k.endswith(".bias") and k.rsplit(".", 1)[0] + ".weight" in backbone
                   and backbone[k.rsplit(".", 1)[0] + ".weight"].ndim == 4]  # fmt: skip
    has_heads = any(_HEAD_KEY.match(k) for k in state)
    model = create_model(
        name, num_classes=num_classes, pretrained=False, last_stride=last_stride, heads=has_heads, stem_relu=False,
        conv_bias=bool(conv_biases) and not fold_conv_bias,
    )  # fmt: skip
    if fold_conv_bias:
        backbone = fold_conv_biases(backbone, conv_biases)
    mapped = {f"backbone.{k}": v for k, v in backbone.items()}
    unmapped: list[str] = []
    for key, value in state.items():
        head = _HEAD_KEY.match(key)
        if key.startswith("base."):
            continue
        if key.startswith("bottleneck."):
            mapped["bn." + key.removeprefix("bottleneck.")] = value
        elif key in ("share_classifier.weight", "share_classifier.bias"):
            mapped["classifier." + key.rsplit(".", 1)[1]] = value
        elif head:
            modality, layer, rest = head.groups()
            mapped[f"heads.{modality}.{layer}.{rest}"] = value
        else:
            unmapped.append(key)
    if "share_classifier.bias" not in state:  # FC_BIAS = no: a bias-free classifier is a zero bias
        mapped["classifier.bias"] = torch.zeros(num_classes)
    own = model.state_dict()
    for key in own:  # checkpoints from torch < 0.4.1 have no BN step counters; they do not affect the output
        if key.endswith("num_batches_tracked") and key not in mapped:
            mapped[key] = own[key]
    load_mapped(model, mapped, path=path, unmapped=unmapped)
    return attach_preprocessing(model, Preprocessing(tuple(image_size), "imagenet", "bilinear"))
