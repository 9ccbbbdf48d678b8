"""The seeds' published tables (and BoT's Market / Duke rows) as reproduction plans.

Each :class:`Cell` is one number pair of a table: the lab method and preset overrides that stand for the row,
the source (training) and target (test) datasets, the protocol, AP flavour and TTA the published number used,
the release weight files the ``full`` preset starts from, how many models it needs (seeds / trials) and the
published R1 / mAP. A ``note`` says where a published number came from test-set model selection or another
non-standard choice (from the specs in the seeds' write-ups).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One published (R1, mAP) pair and the run that reproduces it."""

    row: str
    method: str
    source: str
    target: str
    paper: dict[str, float]
    overrides: dict[str, Any] = field(default_factory=dict)
    target_options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "market"
    ap: str = "standard"
    tta: bool = False
    models: int = 1  # independent models averaged (seeds or RegDB trials)
    weights: tuple[str, ...] = ()
    gpus: int = 1
    note: str = ""

    @property
    def key(self) -> str:
        """A file-safe name of the cell's run: ``<row>-<source>-<target>``."""
        text = f"{self.row}-{self.source}-to-{self.target}" + "".join(f"-{v}" for v in self.target_options.values())
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in text.lower())


@dataclass(frozen=True)
class Table:
    """A published table: where it comes from and its cells."""

    name: str
    title: str
    source: str
    cells: tuple[Cell, ...]
    note: str = ""


R50, VIT_B, CLIP_B = ("resnet50",), ("vit_base_patch16_224",), ("ViT-B-16",)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "bot", "BoT strong baseline (ResNet-50, no re-ranking)", "reid-strong-baseline README",
            (
                Cell("BoT R50", "bot", "market1501", "market1501", {"R1": 94.5, "mAP": 85.9}, weights=R50),
                Cell("BoT R50", "bot", "dukemtmc", "dukemtmc", {"R1": 86.4, "mAP": 76.4}, weights=R50),
            ),
        ),
        Table(
            "mudeep_v2", "MuDeep v2 (ResNet-50, 384×192)", "naiq/MuDeep_v2 README",
            (
                Cell("market_v1", "mudeep_v2", "market1501", "market1501", {"R1": 95.46, "mAP": 85.61},
                     ap="devkit", tta=True, weights=R50),
                Cell("market_v1 DG", "mudeep_v2", "market1501", "dukemtmc", {"R1": 46.68, "mAP": 27.33},
                     ap="devkit", tta=True, weights=R50),
                Cell("market_v1 DG", "mudeep_v2", "market1501", "cuhk03_np", {"R1": 10.64, "mAP": 8.36},
                     target_options={"subset": "detected"}, ap="devkit", tta=True, weights=R50),
                Cell("market_v1 DG", "mudeep_v2", "market1501", "cuhk03_np", {"R1": 11.79, "mAP": 9.34},
                     target_options={"subset": "labeled"}, ap="devkit", tta=True, weights=R50),
            ),
            note="Market devkit (trapezoid) AP, flip TTA, as the seed's test code.",
        ),
        Table(
            "dpm", "DPM (ViT-B/16, occluded ReID)", "stone96123/DPM README",
            (
                Cell("DPM", "dpm", "occluded_duke", "occluded_duke", {"R1": 71.4, "mAP": 61.8}, weights=VIT_B),
                Cell("DPM", "dpm", "market1501", "occluded_reid", {"R1": 85.5, "mAP": 79.7}, weights=VIT_B,
                     note="Occluded-REID is test-only: trained on Market-1501, the seed validates on Occluded-REID "
                          "(its test set) while training"),
            ),
        ),
        Table(
            "ivreid", "IV-ReID (ResNet-50, visible-infrared)", "linyq17/IV-REID README",
            (
                Cell("IV-ReID", "ivreid", "sysu_mm01", "sysu_mm01", {"R1": 46.3, "mAP": 44.2}, protocol="sysu",
                     models=1, weights=R50, target_options={"mode": "all", "shot": 1},
                     note="all-search single-shot, 10 galleries; the seed keeps the best test epoch"),
                Cell("IV-ReID", "ivreid", "regdb", "regdb", {"R1": 46.8, "mAP": 43.7}, protocol="regdb", models=10,
                     weights=R50, target_options={"direction": "thermal_to_visible"},
                     note="thermal to visible, one model per trial over 10 trials; the seed keeps the best test epoch"),
            ),
        ),
        Table(
            "multimodal_reid", "Multimodal-ReID (CLIP ViT-B/16 prompts, cross-domain)",
            "SuperbTUM/Multimodal-ReID README",
            (
                Cell("CoOp", "clip_prompts", "market1501", "dukemtmc", {"R1": 69.9, "mAP": 51.2},
                     overrides={"mode": "coop"}, weights=CLIP_B),
                Cell("IVLP, text unlocked", "clip_prompts", "market1501", "dukemtmc", {"R1": 70.2, "mAP": 52.0},
                     overrides={"mode": "ivlp", "text_stage2": "unlocked"}, weights=CLIP_B),
                Cell("CoOp", "clip_prompts", "dukemtmc", "market1501", {"R1": 71.4, "mAP": 44.6},
                     overrides={"mode": "coop"}, weights=CLIP_B),
                Cell("IVLP, text unlocked", "clip_prompts", "dukemtmc", "market1501", {"R1": 73.0, "mAP": 46.0},
                     overrides={"mode": "ivlp", "text_stage2": "unlocked"}, weights=CLIP_B),
                Cell("CoOp w/ tricks", "clip_prompts", "msmt17", "market1501", {"R1": 74.2, "mAP": 49.3},
                     overrides={"mode": "coop"}, weights=CLIP_B, note="'w/ tricks' is not defined by the seed"),
                Cell("IVLP, text unlocked", "clip_prompts", "msmt17", "market1501", {"R1": 74.2, "mAP": 49.9},
                     overrides={"mode": "ivlp", "text_stage2": "unlocked"}, weights=CLIP_B),
                Cell("PromptSRC", "clip_prompts", "msmt17", "market1501", {"R1": 80.4, "mAP": 57.3},
                     overrides={"mode": "promptsrc"}, weights=CLIP_B, note="a later README version"),
            ),
            note="No seeds, variance or logs were published; the numbers drifted across the seed's commits.",
        ),
        Table(
            "dmf", "DMF (single-source domain generalisation)", "JeremyXSC/DMF README",
            (
                Cell("Market-1501", "dmf", "market1501", "cuhk03_np", {"R1": 23.4, "mAP": 22.6}, weights=VIT_B),
                Cell("Market-1501", "dmf", "market1501", "msmt17", {"R1": 50.6, "mAP": 21.5}, weights=VIT_B),
                Cell("MSMT17", "dmf", "msmt17", "market1501", {"R1": 81.3, "mAP": 55.1}, weights=VIT_B),
                Cell("MSMT17", "dmf", "msmt17", "cuhk03_np", {"R1": 26.1, "mAP": 24.7}, weights=VIT_B),
                Cell("MSMT17_all", "dmf", "msmt17_all", "market1501", {"R1": 82.6, "mAP": 58.8}, weights=VIT_B),
                Cell("MSMT17_all", "dmf", "msmt17_all", "cuhk03_np", {"R1": 34.0, "mAP": 32.1}, weights=VIT_B),
                Cell("RandPerson", "dmf", "randperson", "market1501", {"R1": 78.7, "mAP": 52.0}, weights=VIT_B),
                Cell("RandPerson", "dmf", "randperson", "cuhk03_np", {"R1": 21.5, "mAP": 19.3}, weights=VIT_B),
                Cell("RandPerson", "dmf", "randperson", "msmt17", {"R1": 52.4, "mAP": 18.9}, weights=VIT_B),
            ),
            note="The public repository does not implement the paper's method (no text, no pretraining stage); the "
                 "lab's DMF is a reconstruction. Stage I needs an attribute-annotated synthetic source.",
        ),
    )
}


def get_table(name: str) -> Table:
    """The published table ``name``; an unknown name lists the known ones."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; tables: {sorted(TABLES)}")
    return TABLES[name]
