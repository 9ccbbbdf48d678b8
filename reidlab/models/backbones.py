"""CNN backbones from timm returning feature maps, with the ReID "last stride 1" change."""

from __future__ import annotations

import torch.nn as nn

from reidlab.weights import Pretrained, load_timm_backbone


def set_last_stride_one(model: nn.Module, stage: str = "layer4") -> nn.Module:
    """Make the first block of ``stage`` stride 1 (doubles the final map's height and width).

    Handles plain and ``avg_down`` ResNet variants: stride-2 convolutions become stride 1 and
    stride-2 average pools in the shortcut become identities.
    """
    block = getattr(model, stage, None)
    if block is None or not isinstance(block, nn.Sequential) or len(block) == 0:
        raise ValueError(f"{type(model).__name__} has no residual stage {stage!r}; cannot set the last stride")
    first = block[0]
    changed = 0
    for name, module in list(first.named_modules()):
        if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
            module.stride = (1, 1)
            changed += 1
        elif isinstance(module, nn.AvgPool2d) and module.stride in (2, (2, 2)):
            parent = first.get_submodule(name.rpartition(".")[0]) if "." in name else first
            setattr(parent, name.rpartition(".")[2], nn.Identity())
            changed += 1
    if changed == 0:
        raise ValueError(f"no stride-2 layer found in {stage}[0] of {type(model).__name__}")
    if hasattr(first, "stride"):
        first.stride = 1
    return model


def resnet_backbone(name: str = "resnet50", *, pretrained: Pretrained = "auto", last_stride: int = 1) -> nn.Module:
    """A timm ResNet without pooling or classifier: ``forward(x) -> (B, C, h, w)``; ``.num_features`` = C.

    Weights come from the lab's weight folder (``pretrained="auto"``: local file or random init with a
    warning); nothing is downloaded.
    """
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    model = load_timm_backbone(name, pretrained=pretrained, num_classes=0, global_pool="")
    if last_stride == 1:
        set_last_stride_one(model)
    return model
