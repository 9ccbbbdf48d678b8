"""The lab's own pretrained weights, made on the synthetic world (``python -m reidlab.pretrain --model NAME``).

No seed method's pretrained weights (ImageNet ResNet / ViT, OpenAI CLIP) can be downloaded on a fresh machine
or in CI, and a smoke run of a ViT or CLIP method from random weights shows little. So the lab pretrains small
backbones itself, reproducibly, on a dedicated world (``synth_pretrain``, :mod:`reidlab.pretrain.world`):
supervised identity + attribute learning for the CNN and the tiny ViT, CLIP's contrastive image-caption
learning for a small open_clip model (:mod:`reidlab.pretrain.specs`). The weights and their model cards go to
``data/weights/lab/``; ``pretrained="auto"`` takes them when no release file is present (:mod:`reidlab.weights`).
The checks (:mod:`reidlab.pretrain.checks`) run on a held-out world of another domain.
"""

from reidlab.pretrain.cards import read_card
from reidlab.pretrain.checks import run_checks
from reidlab.pretrain.run import PretrainResult, pretrain
from reidlab.pretrain.specs import SPECS, PretrainPreset, get_pretrain_preset, get_spec
from reidlab.pretrain.world import PRETRAIN_WORLD, identity_labels, load_pretrain_world

__all__ = [
    "PRETRAIN_WORLD",
    "SPECS",
    "PretrainPreset",
    "PretrainResult",
    "get_pretrain_preset",
    "get_spec",
    "identity_labels",
    "load_pretrain_world",
    "pretrain",
    "read_card",
    "run_checks",
]
