"""ReID models behind one timm-style registry: ``create_model(name, **kwargs)``, ``list_models()``."""

from reidlab.models import bot, bot_recipe  # noqa: F401  (register the BoT models, presets and method)
from reidlab.models.backbones import resnet_backbone, set_last_stride_one
from reidlab.models.bot import BoT
from reidlab.models.bot_recipe import BoTPreset, build_bot
from reidlab.models.heads import BNNeck
from reidlab.models.registry import create_model, is_model, list_models, register_model

__all__ = [
    "BNNeck",
    "BoT",
    "BoTPreset",
    "build_bot",
    "create_model",
    "is_model",
    "list_models",
    "register_model",
    "resnet_backbone",
    "set_last_stride_one",
]
