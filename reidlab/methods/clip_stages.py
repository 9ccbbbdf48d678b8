"""The two stages CLIP-ReID and its prompt-learning variants share (methods spec §2.4, §2.5, §3.3.3–3.3.4).

* :func:`prompt_stage` — stage 1: only the prompt parameters learn (the optimiser holds nothing else and every
  other parameter has ``requires_grad=False``), with the symmetric SupCon loss between image features and the
  text features of their identities. ``images="cached"`` (CLIP-ReID, CoOp): the frozen encoder's ``f_proj`` of
  every training image is computed once (test transform, no augmentation, no SIE) and saved in the run folder
  (``stage1_image_features.pt``, reused on resume); epochs iterate random permutations of it in batches of
  ``stage1_batch`` (``ceil(N / B)`` batches: the seed's ``⌊N/B⌋ + 1`` gives an empty last batch and a NaN when B
  divides N). ``images="live"`` (IVLP, PromptSRC): the visual prompts learn too, so the image features are
  recomputed every step, with gradient, from test-transformed images. Optional Gaussian prompt aggregation
  (PromptSRC's GPA) over the epochs. ``finish`` hands on every identity's text feature (``text_features``, the
  stage-2 classifier) and the i2t accuracy of that classifier on the stage's image features.
* :func:`reid_stage` — stage 2: the image encoder, BN-necks and classifiers learn on P×K batches with augmentation;
  prompts never (and the text tower only when ``text="unlocked"``, where ``T`` is recomputed every step with
  gradient); the loss gets ``i2t_logits = f_proj · Tᵀ``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from reidlab.engine import (
    Stage,
    StageInputs,
    StagePlan,
    build_optimizer,
    build_scheduler,
    extract_split_features,
    param_groups,
    seed_everything,
    standard_stage,
)
from reidlab.engine.distributed import get_rank, get_world_size
from reidlab.io import atomic_torch_save
from reidlab.losses.clip_reid import ClipReIDLoss, SymmetricSupConLoss, image_text_logits

FEATURE_FILE = "stage1_image_features.pt"


def set_trainable(model: nn.Module, *, prompts: bool, image: bool, text: bool = False) -> None:
    """``requires_grad`` by part: prompt parameters (names containing ``prompt``), the text tower, everything else
    (image encoder, BN-necks, classifiers). BN-neck biases, a self-consistency encoder and the word-embedding table
    (learned prompts replace the words; no gradient reaches it) always stay frozen."""
    for name, param in model.named_parameters():
        if "prompt" in name:
            param.requires_grad_(prompts)
        elif name.startswith(("self_consistency_encoder.", "text_encoder.token_embedding.")):
            param.requires_grad_(False)  # the frozen zero-shot copy; word embeddings prompts never use
        elif name.startswith("text_encoder."):
            param.requires_grad_(text)
        else:
            param.requires_grad_(image)
    for bn in (model.bottleneck, model.bottleneck_proj):
        bn.bias.requires_grad_(False)


class EpochPermutation:
    """A random order of ``n`` items per epoch (seeded by ``seed + epoch``); under DDP each rank takes its share."""

    def __init__(self, n: int, seed: int) -> None:
        if n < 1:
            raise ValueError("EpochPermutation needs at least one item")
        self.n, self.seed, self.epoch = int(n), int(seed), 0
        self.rank, self.world_size = get_rank(), get_world_size()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.n, generator=generator)[self.rank :: self.world_size].tolist())

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch = int(state["epoch"])


class FeatureBatches:
    """Batches ``{"image_feature", "pid", "index"}`` of cached features in ``order`` (``ceil(N / B)`` per epoch)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor, batch_size: int, order: EpochPermutation) -> None:
        self.features, self.labels, self.batch_size, self.sampler = features, labels, int(batch_size), order

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        index = torch.tensor(list(self.sampler), dtype=torch.long)
        for chunk in index.split(self.batch_size):
            yield {"image_feature": self.features[chunk], "pid": self.labels[chunk], "index": chunk}


class EpochHook:
    """``loader`` with ``on_epoch(epoch)`` called when the trainer starts each epoch (``set_epoch``), before the
    epoch's batches; ``len``, iteration and the sampler pass through."""

    def __init__(self, loader: Any, on_epoch: Callable[[int], None]) -> None:
        self.loader, self.on_epoch = loader, on_epoch
        self.sampler = getattr(loader, "sampler", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        return iter(self.loader)

    def set_epoch(self, epoch: int) -> None:
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        self.on_epoch(epoch)


def gaussian_epoch_weights(epochs: int, mean: float, std: float) -> torch.Tensor:
    """PromptSRC's Gaussian prompt-aggregation weights over epochs ``1..epochs``: ``N(e; mean, std)``, summing to 1."""
    if epochs < 1 or std <= 0:
        raise ValueError(f"epochs must be >= 1 and std > 0, got {epochs}, {std}")
    e = torch.arange(1, epochs + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * ((e - mean) / std) ** 2)
    return w / w.sum()


class PromptAggregation(nn.Module):
    """Gaussian prompt aggregation (PromptSRC's GPA), done as intended: a weighted sum over epochs of the **prompt
    parameters only**, with weights summing to 1, loaded into the prompts after the **last** epoch. The running
    sums are buffers, so they are checkpointed with the stage and a resumed stage continues them exactly."""

    def __init__(self, named_prompts: list[tuple[str, nn.Parameter]], weights: torch.Tensor) -> None:
        super().__init__()
        self.names = [name for name, _ in named_prompts]
        self.params = [param for _, param in named_prompts]
        self.register_buffer("weights", weights.float())
        for i, param in enumerate(self.params):
            self.register_buffer(f"sum_{i}", torch.zeros_like(param, dtype=torch.float32))
        self.register_buffer("added", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def add_epoch(self, epoch: int) -> None:
        """Add the prompts as they are after ``epoch`` (1-based) with that epoch's weight; each epoch counts once."""
        if epoch < 1 or epoch <= int(self.added):
            return
        for i, param in enumerate(self.params):
            getattr(self, f"sum_{i}").add_(self.weights[epoch - 1] * param.detach().float())
        self.added.fill_(epoch)

    @torch.no_grad()
    def apply(self) -> None:
        """Replace the prompt parameters by their aggregate."""
        for i, param in enumerate(self.params):
            param.copy_(getattr(self, f"sum_{i}").to(param.dtype))


class PromptObjective(nn.Module):
    """Stage 1's loss module: the SupCon pair, and the aggregation when there is one (saved with the stage)."""

    def __init__(self, supcon: SymmetricSupConLoss, aggregation: PromptAggregation | None = None) -> None:
        super().__init__()
        self.supcon = supcon
        self.aggregation = aggregation


class _ProjFeature(nn.Module):
    """The frozen encoder's ``f_proj`` (no SIE), for caching stage-1 image features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.preprocessing = model.preprocessing

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.image_encoder(images)["f_proj"]


def cached_image_features(model: nn.Module, samples: list, config: Any, device: torch.device,
                          run_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """``(f_proj, pid)`` of every training sample through the frozen encoder, computed once per run."""
    target = run_dir / FEATURE_FILE if run_dir is not None else None
    paths = [s.path for s in samples]
    if target is not None and target.is_file():
        stored = torch.load(target, map_location="cpu", weights_only=True)
        if stored.get("paths") == paths:
            return stored["features"], stored["pids"]
    found = extract_split_features(_ProjFeature(model), samples, batch_size=config.eval_batch_size, device=device,
                                   num_workers=config.num_workers, fast=config.fast_data)  # fmt: skip
    features, pids = found["features"].float(), found["pids"].long()
    if target is not None and get_rank() == 0:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save({"features": features, "pids": pids, "paths": paths}, target)
    return features, pids


def _image_batches(samples: list, model: nn.Module, config: Any, device: torch.device, order: EpochPermutation):
    """Test-transformed image batches in ``order`` (IVLP's stage 1: no augmentation), decoded once."""
    from reidlab.data.cache import TensorBatcher, decode_images
    from reidlab.data.gpu_augment import GPUNormalize
    from reidlab.engine.loaders import default_cache_dir, fits_on_device

    pre = model.preprocessing
    images = decode_images(samples, pre.image_size, interpolation=pre.interpolation, cache_dir=default_cache_dir(),
                           progress=config.progress)  # fmt: skip
    return TensorBatcher(images, samples, batch_size=config.stage1_batch, sampler=order, device=device,
                         transform=GPUNormalize(pre.normalization).to(device), drop_last=False,
                         images_on_device=fits_on_device(images, device))  # fmt: skip


def text_classifier_accuracy(features: torch.Tensor, pids: torch.Tensor, text: torch.Tensor, config: Any) -> float:
    """Share of images whose highest image-to-text logit is their own identity's text feature."""
    logits = image_text_logits(features.to(text.device), text, normalize=config.normalize_text,
                               logit_scale=config.text_logit_scale)  # fmt: skip
    return float((logits.argmax(1).cpu() == pids.cpu()).float().mean())


def prompt_stage(config: Any, dataset: Any, *, images: Literal["cached", "live"] = "cached",
                 aggregation: tuple[float, float] | None = None, name: str = "stage1") -> Stage:  # fmt: skip
    """Stage 1 (see the module docstring). ``aggregation=(mean, std)``, as fractions of the stage's epochs, turns on
    Gaussian prompt aggregation. Reads ``stage1_*``, ``normalize_text`` and ``text_logit_scale`` from ``config``."""
    samples = list(dataset.train)

    def build(inputs: StageInputs) -> StagePlan:
        model, device = inputs.model, inputs.device
        seed_everything(config.seed + get_rank())
        model.to(device)
        set_trainable(model, prompts=True, image=False)
        prompts = model.prompt_parameters()
        if not prompts:
            raise ValueError("stage 1 needs prompt parameters: build the model with text=True and num_classes > 0")
        order = EpochPermutation(len(samples), config.seed)
        if images == "cached":
            feats, pids = cached_image_features(model, samples, config, device, inputs.run_dir)
            loader: Any = FeatureBatches(feats.to(device), pids.to(device), config.stage1_batch, order)
        else:
            feats = pids = None
            loader = _image_batches(samples, model, config, device, order)
        gpa = None
        if aggregation is not None:
            weights = gaussian_epoch_weights(config.stage1_epochs, aggregation[0] * config.stage1_epochs,
                                             aggregation[1] * config.stage1_epochs)  # fmt: skip
            gpa = PromptAggregation(prompts, weights)
            loader = EpochHook(loader, gpa.add_epoch)  # set_epoch(e) before epoch e+1: adds epoch e
        objective = PromptObjective(SymmetricSupConLoss(normalize=config.normalize_text,
                                                        logit_scale=config.text_logit_scale), gpa)  # fmt: skip
        optimizer = build_optimizer("adam", [p for _, p in prompts], lr=config.stage1_lr,
                                    weight_decay=config.stage1_weight_decay)  # fmt: skip
        scheduler = build_scheduler("cosine", optimizer, epochs=config.stage1_epochs,
                                    warmup_epochs=config.stage1_warmup_epochs, warmup_lr_init=config.stage1_warmup_lr,
                                    lr_min=config.stage1_lr_min)  # fmt: skip

        def forward(m: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
            labels, inverse = batch["pid"].unique(return_inverse=True)  # one text pass per identity in the batch
            if "image_feature" in batch:
                return {"image": batch["image_feature"], "text": m(text_labels=labels)[inverse]}
            out = m(batch["image"], text_labels=labels, features_only=True)  # live, through the visual prompts
            return {"image": out["image_proj"], "text": out["text_features"][inverse]}

        def step(ctx, batch: dict[str, Any]) -> dict[str, Any]:
            ctx.zero_grad()
            out = ctx.forward(batch)
            total, parts = objective.supcon(out["image"], out["text"], batch["pid"])
            ctx.backward(total)
            ctx.step()
            return {"loss": total.detach(), **parts, "batch_size": int(batch["pid"].shape[0])}

        def finish(m: nn.Module) -> dict[str, Any]:
            if gpa is not None:
                gpa.add_epoch(config.stage1_epochs)
                gpa.apply()
            was_training = m.training
            m.eval()
            text = m.all_text_features()
            if feats is not None:
                accuracy = text_classifier_accuracy(feats, pids, text, config)
            else:
                live = cached_image_features(m, samples, config, device, None)
                accuracy = text_classifier_accuracy(*live, text, config)
            m.train(was_training)
            return {"text_features": text.cpu(), "i2t_accuracy": accuracy}

        return StagePlan(loader=loader, optimizers={"prompts": optimizer}, schedulers={"prompts": scheduler},
                         loss_fn=objective, step_fn=step, forward_fn=forward, finish=finish)  # fmt: skip

    return Stage(name, config.stage1_epochs, build)


def stage2_optimizers(model: nn.Module, config: Any) -> dict[str, torch.optim.Optimizer]:
    """Adam over the trainable parameters (bias LR × ``bias_lr_factor``, ``weight_decay_bias``)."""
    groups = param_groups(model, lr=config.lr, weight_decay=config.weight_decay, bias_lr_factor=config.bias_lr_factor,
                          weight_decay_bias=config.weight_decay_bias, weight_decay_norm=config.weight_decay_norm,
                          no_decay=tuple(config.no_decay), lr_factors=config.lr_factors)  # fmt: skip
    return {"model": build_optimizer(config.optimizer, groups, lr=config.lr, weight_decay=config.weight_decay)}


def reid_stage(config: Any, loss: ClipReIDLoss, dataset: Any, *, text: Literal["locked", "unlocked", "none"] = "locked",
               text_from: str = "stage1", name: str = "stage2") -> Stage:  # fmt: skip
    """Stage 2 (see the module docstring); ``text="none"`` is the CLIP-ReID baseline (ID + triplet only)."""
    state: dict[str, Any] = {}

    def forward(m: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        if text == "unlocked":
            labels = torch.arange(state["classes"], device=batch["image"].device)
            return m(batch["image"], batch.get("camid"), text_labels=labels)
        return m(batch["image"], batch.get("camid"))

    def step(ctx, batch: dict[str, Any]) -> dict[str, Any]:
        ctx.zero_grad()
        outputs = ctx.forward(batch)
        if text != "none":
            classifier = outputs["text_features"] if text == "unlocked" else state["text"]
            outputs["i2t_logits"] = image_text_logits(outputs["image_proj"], classifier,
                                                      normalize=config.normalize_text,
                                                      logit_scale=config.text_logit_scale)  # fmt: skip
        total, parts = ctx.loss(outputs, batch)
        ctx.backward(total)
        ctx.step()
        logged = {"loss": total.detach(), **parts}
        if "i2t_logits" in outputs:
            logged["i2t_acc"] = (outputs["i2t_logits"].argmax(1) == batch["pid"]).float().mean().detach()
        return logged

    inner = standard_stage(config, loss, dataset, name=name, step_fn=step, forward_fn=forward, keep_best=True)

    def build(inputs: StageInputs) -> StagePlan:
        model = inputs.model
        set_trainable(model, prompts=False, image=True, text=text == "unlocked")
        if text == "locked":
            if text_from not in inputs.outputs:
                raise ValueError(f"stage {name!r} needs the text features of stage {text_from!r}")
            state["text"] = inputs.outputs[text_from]["text_features"].to(inputs.device)
        if text == "unlocked":
            state["classes"] = model.prompt_learner.num_classes
        model.to(inputs.device)
        plan = inner.build(inputs)
        plan.optimizers = stage2_optimizers(model, config)
        plan.schedulers = {"model": build_scheduler(config.schedule, plan.optimizers["model"], epochs=config.epochs,
                                                    warmup_epochs=config.warmup_epochs,
                                                    warmup_factor=config.warmup_factor, milestones=config.milestones,
                                                    gamma=config.gamma, lr_min=config.lr_min,
                                                    warmup_lr_init=config.warmup_lr_init)}  # fmt: skip
        return plan

    return Stage(name, config.epochs, build)


def stage_outputs(result: Any) -> dict[str, dict[str, Any]]:
    """What each finished stage of a :class:`~reidlab.methods.run.MethodRun` handed on (stage 1: ``text_features``,
    ``i2t_accuracy``), also for a reused run (read from its last checkpoint)."""
    if result.train is not None:
        return dict(result.train.stage_outputs)
    from reidlab.engine.checkpoint import load_latest_checkpoint

    found = load_latest_checkpoint(result.run_dir)
    return dict(found[0].get("stage_outputs", {})) if found else {}
