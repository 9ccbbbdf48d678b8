"""Every trained run on every target domain: the lab's cross-domain matrix (notebook 08).

A run found in the registry (:func:`~reidlab.engine.runs.find_runs`) is rebuilt from its folder
(:func:`~reidlab.methods.run.load_run`; the model only when a cell is not cached) and ranks each target's test
split with its method's test distance, under one evaluation setting for the whole matrix (protocol, AP flavour and
flip TTA stated in every row). Each (run, target, setting) result is cached in the run folder
(``transfer/<target>-<size>-<flip>.json``, keyed on the model file's size and time), so a second pass costs
nothing and a retrained run is evaluated afresh. Cross-modality runs (IV-ReID, and BoT at its budget) are scored on
their own modality pair (:func:`cross_modality_rows`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn

from reidlab.engine.checkpoint import load_trained_model
from reidlab.engine.runs import RunInfo, find_runs
from reidlab.io import atomic_write_text
from reidlab.methods.registry import get_method, get_preset, list_methods
from reidlab.methods.run import MethodRun, evaluate_method, load_method_dataset, load_run

#: The smoke profile's domains: the Market-, Duke-, CUHK03- and MSMT-like worlds (RandPerson-like: source only).
SMOKE_TARGETS = ("synth_market", "synth_duke", "synth_cuhk03_np", "synth_msmt")
#: The full profile's targets, where present under ``data/``.
FULL_TARGETS = ("market1501", "dukemtmc", "cuhk03_np", "msmt17")
#: The methods of the single-modality matrix, in the order the notebook shows them.
MATRIX_METHODS = ("bot", "mudeep_v2", "transreid", "dpm", "clip_reid", "clip_reid_baseline", "clip_prompts", "dmf")
#: Run-name patterns of ablations and budget studies, left out of the matrix unless asked for.
ABLATION_NAMES = (r"^drop_", r"^epochs\d+", r"trial\d+$")
#: Methods and worlds whose runs are cross-modality (their own protocol, not the single-modality matrix).
CROSS_MODALITY = ("ivreid",)
SYSU_WORLDS = ("synth_sysu", "sysu_mm01")
CROSS_MODALITY_WORLDS = (*SYSU_WORLDS, "synth_regdb", "regdb")
COLUMNS = ("method", "variant", "source", "target", "setting", "protocol", "ap", "flip_tta", "R1", "mAP", "mINP",
           "note", "run")  # fmt: skip


class NoTestSplit(ValueError):
    """A target without query / gallery images (a training-only world such as the RandPerson-like one)."""


def matrix_targets(profile: str) -> list[str]:
    """The target domains of ``profile``: the synthetic worlds under ``smoke``; under ``full`` the real test sets
    that are present (each missing one is named with where it goes)."""
    if profile == "smoke":
        return list(SMOKE_TARGETS)
    from reidlab.data import load_dataset

    present = []
    for name in FULL_TARGETS:
        try:
            load_dataset(name)
            present.append(name)
        except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
            print(f"target {name} left out: {str(exc).splitlines()[0]}")
    return present


def run_name(info: RunInfo) -> str:
    """The ``name`` part of a run folder ``<dataset>-<profile>[-<name>]`` ('' for the default run)."""
    prefix = f"{info.record.get('dataset')}-{info.record.get('profile')}"
    return info.path.name[len(prefix) + 1:] if info.path.name.startswith(prefix + "-") else ""


def variant_label(info: RunInfo) -> str:
    """What distinguishes a run of its method: a prompt mode, or the run's name."""
    preset = info.record.get("preset") or {}
    parts = [str(preset["mode"])] if info.record.get("method") == "clip_prompts" and preset.get("mode") else []
    name = run_name(info)
    if name and name not in parts:
        parts.append(name)
    return " ".join(parts)


def matrix_runs(profile: str, *, methods: Iterable[str] | None = None, include_ablations: bool = False,
                root: str | Path | None = None) -> list[RunInfo]:  # fmt: skip
    """The newest finished run per (method, source, variant) of ``profile``, single-modality methods only."""
    wanted = set(methods) if methods is not None else None
    unknown = sorted(wanted - set(list_methods())) if wanted is not None else []
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; registered methods are {list_methods()}")
    newest: dict[tuple[str, str, str], RunInfo] = {}
    for info in find_runs(profile=profile, root=root):  # newest first
        method = info.record.get("method", "")
        if method in CROSS_MODALITY or info.record.get("dataset") in CROSS_MODALITY_WORLDS:
            continue
        if wanted is not None and method not in wanted:
            continue
        if not include_ablations and any(re.search(p, run_name(info)) for p in ABLATION_NAMES):
            continue
        if not (info.path / "model.pt").is_file():
            continue
        newest.setdefault((method, info.record.get("dataset", ""), variant_label(info)), info)
    return sorted(newest.values(), key=lambda i: (i.record["method"], i.record.get("dataset", ""), variant_label(i)))


def _model_stamp(run_dir: Path) -> list[float]:
    stat = (run_dir / "model.pt").stat()
    return [stat.st_size, stat.st_mtime]


def cached_numbers(run_dir: Path, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()``'s numbers for ``key``, saved as ``run_dir/transfer/<key>.json`` and reused while the run's
    model file is the same (a retrained run, or a damaged file, is computed afresh)."""
    cache = run_dir / "transfer" / f"{key}.json"
    stamp = _model_stamp(run_dir)
    if cache.is_file():
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if saved.get("model") == stamp:
                return saved["numbers"]
        except (json.JSONDecodeError, KeyError):
            pass
    numbers = compute()
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, json.dumps({"model": stamp, "numbers": numbers}, indent=1) + "\n")
    return numbers


@contextmanager
def sie_for_target(model: nn.Module, num_cameras: int) -> Iterator[str]:
    """Camera embeddings (SIE) for a target whose cameras the model's table does not have: each SIE table smaller
    than ``num_cameras`` is switched off while the block runs (the model ranks camera-agnostically), and the
    yielded note says so ('' when nothing changed). A camera id of another domain means nothing to the table."""
    small = [(m, m.sie_embed) for m in model.modules()
             if isinstance(getattr(m, "sie_embed", None), nn.Parameter)
             and int(getattr(m, "sie_cameras", 0) or m.sie_embed.shape[0]) < num_cameras]  # fmt: skip
    for module, _ in small:
        module.sie_embed = None
    try:
        yield (f"SIE off: the target has {num_cameras} cameras, the model's table "
               f"{int(getattr(small[0][0], 'sie_cameras', 0) or small[0][1].shape[0])}") if small else ""
    finally:
        for module, table in small:
            module.sie_embed = table


def _rounded(rank: Any) -> dict[str, Any]:
    return {"protocol": rank.protocol, "ap": rank.ap, **{k: round(v, 2) for k, v in rank.as_dict().items()}}


def transfer_row(trained: MethodRun, target: str, *, flip: bool = False, device: torch.device | str | None = None,
                 variant: str = "") -> dict[str, Any]:  # fmt: skip
    """One cell: ``trained`` ranks ``target``'s test split (cached in the run folder)."""
    size = getattr(trained.preset, "synth_size", "mini") if target.startswith("synth_") else "release"

    def compute() -> dict[str, Any]:
        data = load_method_dataset(trained.preset.replace(dataset=target))
        if not (data.query and data.gallery):
            raise NoTestSplit(f"target {target!r} has no query / gallery split (a training-only world)")
        if trained.model is None:  # loaded only when a cell is not cached
            trained.model = load_trained_model(trained.run_dir / "model.pt")
        cameras = 1 + max(s.camid for s in [*data.query, *data.gallery])
        with sie_for_target(trained.model, cameras) as note:
            rank = evaluate_method(trained.method, trained.model, data, trained.preset, flip=flip, device=device)
        return {**_rounded(rank), "note": note}

    numbers = cached_numbers(trained.run_dir, f"{target}-{size}-{'flip' if flip else 'noflip'}", compute)
    source = trained.preset.dataset
    return {"method": trained.method, "variant": variant, "source": source, "target": target,
            "setting": "in-domain" if source == target else "cross-domain", "protocol": numbers["protocol"],
            "ap": numbers["ap"], "flip_tta": flip, "R1": numbers["R1"], "mAP": numbers["mAP"],
            "mINP": numbers.get("mINP"), "note": numbers.get("note", ""), "run": str(trained.run_dir)}  # fmt: skip


def cross_modality_rows(profile: str, *, flip: bool = False, device: torch.device | str | None = None,
                        root: str | Path | None = None) -> pd.DataFrame:  # fmt: skip
    """Every finished run on the SYSU-MM01-like pair (IV-ReID and its same-budget BoT baseline) under the
    SYSU protocol, all-search single-shot, mean over its 10 random galleries (cached like the matrix)."""
    from reidlab.methods.cross_modality import evaluate_sysu

    rows = []
    for info in find_runs(profile=profile, root=root):
        dataset = info.record.get("dataset", "")
        if dataset not in SYSU_WORLDS or not (info.path / "model.pt").is_file():
            continue
        if any(r["method"] == info.record["method"] and r["variant"] == variant_label(info) for r in rows):
            continue  # newest only

        def compute(info: RunInfo = info) -> dict[str, Any]:
            trained = load_run(info)
            frame = evaluate_sysu(trained.method, trained.model, load_method_dataset(trained.preset),
                                  trained.preset, modes=("all",), shots=(1,), flip=flip, device=device)  # fmt: skip
            return {"protocol": "sysu", "ap": str(frame["ap"].iloc[0]), "galleries": len(frame),
                    **{k: round(float(frame[k].mean()), 2) for k in ("R1", "mAP", "mINP")}}  # fmt: skip

        numbers = cached_numbers(info.path, f"sysu-all-single-{'flip' if flip else 'noflip'}", compute)
        rows.append({"method": info.record["method"], "variant": variant_label(info), "source": dataset,
                     "target": f"{dataset} (IR → RGB, all-search, single-shot, {numbers['galleries']} galleries)",
                     "setting": "cross-modality", "protocol": numbers["protocol"], "ap": numbers["ap"],
                     "flip_tta": flip, "R1": numbers["R1"], "mAP": numbers["mAP"], "mINP": numbers["mINP"],
                     "note": "", "run": str(info.path)})  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def transfer_matrix(
    runs: Sequence[RunInfo],
    targets: Sequence[str],
    *,
    flip: bool = False,
    in_domain: bool = True,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """One row per (run, target): every run on every target (and, with ``in_domain``, on its own source when that
    has a test split). Columns :data:`COLUMNS`."""
    from tqdm.auto import tqdm

    rows, training_only = [], set()
    for info in tqdm(runs, desc="runs", unit="run", disable=not progress):
        trained = load_run(info, with_model=False)
        own = [trained.preset.dataset] if in_domain and trained.preset.dataset not in targets else []
        for target in [*own, *targets]:
            if target in training_only:
                continue
            try:
                rows.append(transfer_row(trained, target, flip=flip, device=device, variant=variant_label(info)))
            except NoTestSplit:
                if target not in own:
                    raise
                training_only.add(target)
    if training_only:
        print(f"sources without a test split (training only), scored on the targets alone: {sorted(training_only)}")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def zero_shot_rows(targets: Sequence[str], *, backbone: str | None = None, flip: bool = False,
                   device: torch.device | str | None = None, profile: str = "smoke") -> pd.DataFrame:  # fmt: skip
    """True zero-shot CLIP (no ReID training) on each target: CLIP's image embedding, cosine, image to image.

    ``backbone`` defaults to the smoke CLIP-ReID preset's (the lab's small CLIP) or the full one's (ViT-B/16)."""
    from reidlab.methods.clip_zero_shot import zero_shot_for

    preset = get_preset("clip_reid", profile)
    if backbone is not None:
        preset = preset.replace(model=backbone)
    model = zero_shot_for(preset)
    rows = []
    for target in targets:
        data = load_method_dataset(preset.replace(dataset=target))
        rank = evaluate_method(get_method("clip_reid"), model, data, preset, flip=flip, device=device)
        rows.append({"method": "clip_zero_shot", "variant": preset.model, "source": "none (no ReID training)",
                     "target": target, "setting": "zero-shot", "protocol": rank.protocol, "ap": rank.ap,
                     "flip_tta": flip, **{k: round(v, 2) for k, v in rank.as_dict().items() if k in ("R1", "mAP",
                                                                                               "mINP")},
                     "note": "no ReID training: CLIP's image embedding", "run": ""})  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
