"""The lab's training engine: one trainer for every method, feature extraction, checkpoints, evaluation helpers.

>>> from reidlab.engine import fit, evaluate_model, extract_features, Trainer, TrainConfig
"""

from reidlab.engine.checkpoint import load_checkpoint, load_trained_model, save_checkpoint, save_model
from reidlab.engine.config import TrainConfig
from reidlab.engine.evaluate import EvalSplit, evaluate_model, extract_split_features, protocol_for, split_validation
from reidlab.engine.features import extract_features
from reidlab.engine.fit import build_optimizers, build_schedulers, fit, seed_everything
from reidlab.engine.loaders import build_test_loader, build_train_loader
from reidlab.engine.methods import get_method, list_methods, load_preset_dataset, register_method
from reidlab.engine.optim import WarmupMultiStep, build_optimizer, build_scheduler, param_groups
from reidlab.engine.trainer import StepContext, Trainer, TrainResult

__all__ = [
    "EvalSplit",
    "StepContext",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "WarmupMultiStep",
    "build_optimizer",
    "build_optimizers",
    "build_scheduler",
    "build_schedulers",
    "build_test_loader",
    "build_train_loader",
    "evaluate_model",
    "extract_features",
    "extract_split_features",
    "fit",
    "get_method",
    "list_methods",
    "load_checkpoint",
    "load_preset_dataset",
    "load_trained_model",
    "param_groups",
    "protocol_for",
    "register_method",
    "save_checkpoint",
    "save_model",
    "seed_everything",
    "split_validation",
]
