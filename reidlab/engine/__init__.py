"""The lab's training engine: one trainer for every method (stages, optimisers, checkpoints, run folders),
feature extraction and evaluation of a model. It knows no method by name.

>>> from reidlab.engine import fit, run_stages, evaluate_model, extract_features, Trainer, TrainConfig
"""

from reidlab.engine.checkpoint import load_checkpoint, load_trained_model, save_checkpoint, save_model
from reidlab.engine.config import RUNTIME_FIELDS, TrainConfig
from reidlab.engine.evaluate import (
    EvalSplit,
    TestDistance,
    evaluate_model,
    extract_split_features,
    protocol_for,
    split_validation,
)
from reidlab.engine.features import extract_features
from reidlab.engine.fit import build_optimizers, build_schedulers, fit, seed_everything, standard_stage
from reidlab.engine.loaders import build_test_loader, build_train_loader, with_sample_fields
from reidlab.engine.optim import WarmupMultiStep, build_optimizer, build_scheduler, param_groups
from reidlab.engine.runs import RunFolderError, RunInfo, find_runs, read_run_record, run_folder
from reidlab.engine.stages import Stage, StageInputs, StagePlan, run_stages
from reidlab.engine.trainer import StepContext, Trainer, TrainResult

__all__ = [
    "RUNTIME_FIELDS",
    "EvalSplit",
    "RunFolderError",
    "RunInfo",
    "Stage",
    "StageInputs",
    "StagePlan",
    "StepContext",
    "TestDistance",
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
    "find_runs",
    "fit",
    "load_checkpoint",
    "load_trained_model",
    "param_groups",
    "protocol_for",
    "read_run_record",
    "run_folder",
    "run_stages",
    "save_checkpoint",
    "save_model",
    "seed_everything",
    "split_validation",
    "standard_stage",
    "with_sample_fields",
]
