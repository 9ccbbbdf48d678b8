"""CLIP prompt learning for ReID (Multimodal-ReID, SuperbTUM): CoOp, IVLP and PromptSRC in CLIP-ReID's two stages.

Methods spec §3.3. Every mode learns per-identity text tokens in stage 1 and fine-tunes the image encoder against
the resulting text classifier in stage 2, exactly as CLIP-ReID (:mod:`reidlab.methods.clip_reid`); the modes differ
in what the prompts are:

* ``coop``: 5 tokens per identity in "A photo of X X X X X person.", image features cached once (the seed's CoOp;
  at stride 12 its "CoOp Enhanced");
* ``ivlp``: 4 tokens per identity in "A photo of a X X X X person." plus ``prompt_tokens`` (the seed's
  ``--vpt_ctx``, 2) deep prompts on both towers (§3.3.2): visual prompts appended after the position embedding and
  replaced at the input of blocks 1..depth−1, text prompts overwriting positions 1..n at the input of blocks
  1..depth−1; all learned in stage 1 with the image features recomputed every step (they depend on the visual
  prompts), frozen in stage 2;
* ``promptsrc``: IVLP plus PromptSRC's regularisers — Gaussian prompt aggregation over stage-1 epochs (mean and
  std as fractions of the epochs: the seed's μ = 60, σ = 45 of 120) and, in stage 2, ``SmoothL1(f, f_zero_shot)``
  against a frozen copy of the starting image encoder.

The seed's faults, fixed (§3.7): IVLP's template keeps no literal "x" word (its first "X" stayed a word); grids are
``(H − P)//S + 1`` and position embeddings resize from any grid, square or not; GPA averages the prompt
parameters only (the seed multiplied every tensor of the model, frozen weights and integer buffers included, by
partial weight sums) and is applied after the last epoch (the seed loaded it at epoch E−1 and trained one more);
training runs in fp32 weights with bf16 autocast on CUDA (the seed trained pure fp16 weights with Adam without
``--amp``); the crash paths (``model_adaptor`` without ``stride_size``, the RN branch, PromptSRC's build) do not
exist here. ``text_stage2="unlocked"`` really trains the text tower in stage 2, recomputing the text classifier
every step: in the seed the "unlocked" text encoder got no gradient because its classifier was a constant, so its
"IVLP w/ text encoder unlocked" rows equal locked runs up to noise. The seed's zero-shot files are
:mod:`reidlab.methods.clip_zero_shot`. Multi-GPU runs go through the lab's DDP path (``torchrun``); the seed used
DeepSpeed for the same purpose. PromptSRC's zero-shot encoder is the starting CLIP (the seed loads a MetaCLIP
ViT-B/16 file it does not ship).

Presets: ``full`` is the README's IVLP recipe (ViT-B/16 at 256×128, stride 12, position embedding resized bicubic,
``prompt_tokens`` 2, stage 1: 120
epochs, batch 64, Adam 3.5e-4 with CLIP-ReID's cosine; stage 2: 60 epochs of P16×K4, Adam 5e-6, bias 1e-5,
weight decay 1e-4, warm-up 10 epochs from 0.1, ×0.1 at 30 and 50; loss weights 0.25 / 1 / 1). Other modes:
``run("clip_prompts", profile="full", mode="promptsrc")``. ``smoke`` is CLIP-ReID's smoke recipe with the same
changes (:func:`clip_prompts_smoke`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch.nn as nn

from reidlab.engine import Stage
from reidlab.losses.clip_reid import ClipReIDLoss
from reidlab.methods.clip_reid import ClipReIDPreset, smoke_recipe, stage2_loss, vit_recipe
from reidlab.methods.clip_stages import prompt_stage, reid_stage
from reidlab.methods.registry import Method, register_method
from reidlab.models import create_model
from reidlab.models.clip_text import CLIP_REID_TEMPLATE, COOP_TEMPLATE
from reidlab.profiles import Profile

MODES = ("coop", "ivlp", "promptsrc")


@dataclass
class ClipPromptsPreset(ClipReIDPreset):
    """A :class:`~reidlab.methods.clip_reid.ClipReIDPreset` with the prompt mode and its settings.

    ``template`` empty: the mode's (CoOp: "A photo of X X X X X person."; IVLP / PromptSRC: CLIP-ReID's).
    ``prompt_depth`` None: deep prompts in every block.
    """

    mode: Literal["coop", "ivlp", "promptsrc"] = "ivlp"
    template: str = ""
    prompt_tokens: int = 2
    prompt_depth: int | None = None
    text_stage2: Literal["locked", "unlocked"] = "locked"
    self_consistency_weight: float = 1.0  # PromptSRC only
    gpa_mean: float = 0.5  # PromptSRC only: Gaussian aggregation mean, as a fraction of stage-1 epochs
    gpa_std: float = 0.375  # ... and its standard deviation

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt_tokens < 1 and self.mode != "coop":
            raise ValueError(f"prompt_tokens must be >= 1 for mode {self.mode!r}, got {self.prompt_tokens}")
        if self.gpa_std <= 0:
            raise ValueError(f"gpa_std must be > 0, got {self.gpa_std}")

    @property
    def deep_prompts(self) -> int:
        return 0 if self.mode == "coop" else self.prompt_tokens

    @property
    def prompt_template(self) -> str:
        return self.template or (COOP_TEMPLATE if self.mode == "coop" else CLIP_REID_TEMPLATE)


def clip_prompts_full(profile: Profile) -> ClipPromptsPreset:
    """The seed README's IVLP recipe (module docstring)."""
    return ClipPromptsPreset(**vit_recipe(profile), stride=12, mode="ivlp", pos_interpolation="bicubic")


def clip_prompts_smoke(profile: Profile) -> ClipPromptsPreset:
    """CLIP-ReID's smoke recipe (:func:`~reidlab.methods.clip_reid.clip_reid_smoke`) with IVLP's 2 deep prompts in
    all 4 blocks of the lab's small CLIP. IVLP / PromptSRC recompute the image features with gradient in every
    stage-1 step (16× the cost of a cached step on this model), so stage 1 runs 6 epochs at LR 3e-3."""
    return ClipPromptsPreset(**{**vit_recipe(profile), **smoke_recipe(profile), "mode": "ivlp", "stage1_epochs": 4,
                                "stage1_warmup_epochs": 1})  # fmt: skip


def build_clip_prompts(preset: ClipPromptsPreset, dataset: Any) -> tuple[nn.Module, ClipReIDLoss]:
    """The prompted CLIP-ReID model and the stage-2 loss (+ PromptSRC's self-consistency term)."""
    promptsrc = preset.mode == "promptsrc"
    model = create_model(
        preset.model, num_classes=dataset.num_train_pids, pretrained=preset.pretrained,
        image_size=tuple(preset.image_size), stride=preset.stride, neck_feat=preset.neck_feat, text=True,
        template=preset.prompt_template, visual_prompts=preset.deep_prompts, text_prompts=preset.deep_prompts,
        prompt_depth=preset.prompt_depth, self_consistency=promptsrc, normalization=preset.normalization,
        interpolation=preset.interpolation, pos_interpolation=preset.pos_interpolation,
    )  # fmt: skip
    return model, stage2_loss(preset, preset.self_consistency_weight if promptsrc else 0.0)


def clip_prompts_stages(preset: ClipPromptsPreset, dataset: Any, model: nn.Module, loss: ClipReIDLoss) -> list[Stage]:
    """Stage 1 (cached features for CoOp, live for IVLP / PromptSRC, GPA for PromptSRC), then stage 2."""
    aggregation = (preset.gpa_mean, preset.gpa_std) if preset.mode == "promptsrc" else None
    images = "cached" if preset.mode == "coop" else "live"
    return [prompt_stage(preset, dataset, images=images, aggregation=aggregation),
            reid_stage(preset, loss, dataset, text=preset.text_stage2)]  # fmt: skip


CLIP_PROMPTS = register_method(
    Method(
        name="clip_prompts",
        description="CLIP prompt learning for ReID (Multimodal-ReID): CoOp, IVLP, PromptSRC in CLIP-ReID's two stages",
        preset_type=ClipPromptsPreset,
        presets={"smoke": clip_prompts_smoke, "full": clip_prompts_full},
        build=build_clip_prompts,
        stages=clip_prompts_stages,
    )
)
