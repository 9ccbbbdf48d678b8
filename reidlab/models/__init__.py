"""ReID models: ``nn.Module``s behind one timm-style registry (``create_model(name, **kwargs)``, ``list_models()``),
and ``load_official_checkpoint`` for the checkpoints the methods' official repositories released.

This package imports no engine, method, data or profile code: only torch, timm and the lab's leaves.
"""

from reidlab.models import (  # noqa: F401  (register the models and the official loaders)
    bot,
    bot_official,
    clip_reid,
    clip_reid_official,
    dmf,
    dpm,
    dpm_official,
    ivreid,
    ivreid_official,
    mudeep_v2,
    mudeep_v2_official,
    transreid,
    transreid_official,
)
from reidlab.models.backbones import resnet_backbone, set_last_stride_one
from reidlab.models.bot import BoT
from reidlab.models.heads import BNNeck
from reidlab.models.official import load_official_checkpoint, official_methods, register_official
from reidlab.models.registry import create_model, is_model, list_models, register_model

__all__ = [
    "BNNeck",
    "BoT",
    "create_model",
    "is_model",
    "list_models",
    "load_official_checkpoint",
    "official_methods",
    "register_model",
    "register_official",
    "resnet_backbone",
    "set_last_stride_one",
]
