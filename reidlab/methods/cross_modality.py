"""Cross-modality (visible–infrared) experiments: one model per RegDB trial, the SYSU-MM01 and RegDB protocols over
their 10 trials, mean ± std tables in the IV-ReID seed's format, and the BoT baseline at the same budget.

>>> from reidlab.methods.cross_modality import evaluate_sysu, train_regdb_trials, evaluate_regdb, seed_table
>>> sysu = run("ivreid", profile="smoke")
>>> per_gallery = evaluate_sysu("ivreid", sysu.model, sysu.dataset, sysu.preset)   # all/indoor × 1/10-shot × 10
>>> runs = train_regdb_trials("ivreid", get_preset("ivreid", get_profile("smoke", dataset="synth_regdb")))
>>> per_trial = evaluate_regdb("ivreid", runs)                                   # both directions per trial

Every number is computed on the test split once per trained model; nothing selects on it. SYSU-MM01 galleries
come from the release's ``exp/rand_perm_cam.mat`` when present (``source="official"`` in the tables), else from
the lab's seeded galleries (``"seeded"``; :mod:`reidlab.data.sysu_galleries`). Query features are computed once
per model and reused across galleries (the seed recomputed them for every gallery: the same numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from reidlab.data import load_dataset
from reidlab.data.sysu_galleries import MODES, SHOTS, sysu_galleries
from reidlab.engine.evaluate import extract_split_features
from reidlab.evaluation import evaluate
from reidlab.methods.ivreid import validation_split
from reidlab.methods.registry import Method, get_method, get_preset
from reidlab.methods.run import MethodRun, run

RANKS = (1, 10, 20)
METRICS = ("R1", "R10", "R20", "mAP", "mINP")
DIRECTIONS = ("visible_to_thermal", "thermal_to_visible")


def trial_dataset(preset: Any, trial: int, direction: str = "visible_to_thermal"):
    """RegDB (or ``synth_regdb``) loaded with ``trial``'s training identities and test split."""
    options: dict[str, Any] = {"trial": trial, "direction": direction}
    if preset.dataset.startswith("synth_"):
        options["size"] = getattr(preset, "synth_size", "mini")
    return load_dataset(preset.dataset, root=getattr(preset, "data_root", None), **options)


def train_regdb_trials(
    method: str | Method,
    preset: Any,
    *,
    trials: Sequence[int] | None = None,
    name: str | None = None,
    reuse: bool = False,
    overwrite: bool = False,
    resume: Any = False,
    device: torch.device | str | None = None,
) -> dict[int, MethodRun]:
    """One model per RegDB trial, each trained on that trial's training identities in its own run folder
    (``runs/<method>/<dataset>-<profile>-[<name>-]trial<t>``). ``trials`` defaults to ``preset.regdb_trials``
    (1..10). Presets with a ``trial`` field get it set per run."""
    m = get_method(method)
    trials = tuple(trials if trials is not None else getattr(preset, "regdb_trials", range(1, 11)))
    if not trials or any(not 1 <= int(t) <= 10 for t in trials):
        raise ValueError(f"trials must be RegDB trials in 1..10, got {trials}")
    out = {}
    for trial in trials:
        per_trial = preset.replace(trial=int(trial)) if hasattr(preset, "trial") else preset
        run_name = f"{name}-trial{trial}" if name else f"trial{trial}"
        out[int(trial)] = run(m, per_trial, trial_dataset(preset, int(trial)), name=run_name, reuse=reuse,
                              overwrite=overwrite, resume=resume, device=device)  # fmt: skip
    return out


def _features(model: nn.Module, samples: Sequence[Any], preset: Any, flip: bool, device: Any) -> dict[str, Any]:
    return extract_split_features(model, samples, flip=flip, batch_size=preset.eval_batch_size,
                                  num_workers=preset.num_workers, device=device, fast=preset.fast_data)  # fmt: skip


def _row(result: Any) -> dict[str, float]:
    return {"R1": 100 * result.rank(1), "R10": 100 * result.rank(10), "R20": 100 * result.rank(20),
            "mAP": 100 * result.mAP, "mINP": 100 * result.mINP}  # fmt: skip


def evaluate_sysu(
    method: str | Method,
    model: nn.Module,
    dataset: Any,
    preset: Any,
    *,
    modes: Sequence[str] = MODES,
    shots: Sequence[int] = SHOTS,
    trials: int = 10,
    source: str = "auto",
    flip: bool | None = None,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """SYSU-MM01 protocol: IR queries (cameras 3, 6) against every (mode, shot, trial) RGB gallery.

    One row per gallery: ``mode``, ``shot``, ``trial``, ``gallery_source``, ``gallery_size``, R1 / R10 / R20
    (distinct-identity CMC), mAP, mINP in percent, plus ``protocol`` ("sysu": cam-2 gallery images removed for
    cam-3 queries), ``ap`` ("standard") and ``flip_tta``. ``flip`` defaults to ``preset.flip_tta``.
    """
    m = get_method(method)
    flip = preset.flip_tta if flip is None else flip
    galleries = sysu_galleries(dataset, modes=tuple(modes), shots=tuple(shots), trials=trials, source=source)
    pool: dict[str, Any] = {}
    for gallery in galleries:
        for sample in gallery.samples:
            pool.setdefault(sample.path, sample)
    pool_samples = list(pool.values())
    position = {path: i for i, path in enumerate(pool)}
    query = _features(model, dataset.query, preset, flip, device)
    found = _features(model, pool_samples, preset, flip, device)
    extra = m.distance.evaluate_kwargs(query)
    rows = []
    for gallery in galleries:
        index = torch.tensor([position[s.path] for s in gallery.samples])
        result = evaluate(query["features"], found["features"][index], query["pids"], found["pids"][index],
                          query["camids"], found["camids"][index], protocol="sysu", **extra)  # fmt: skip
        rows.append({"mode": gallery.mode, "shot": gallery.shot, "trial": gallery.trial,
                     "gallery_source": gallery.source, "gallery_size": len(gallery.samples), **_row(result),
                     "protocol": result.protocol, "ap": result.ap, "flip_tta": flip,
                     "valid_queries": result.num_valid_queries})  # fmt: skip
    return pd.DataFrame(rows)


def evaluate_regdb(
    method: str | Method,
    runs: Mapping[int, MethodRun | nn.Module],
    preset: Any = None,
    *,
    directions: Sequence[str] = DIRECTIONS,
    flip: bool | None = None,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """RegDB protocol: each trial's own model on that trial's test split, in both directions (nothing removed,
    plain CMC). ``runs`` maps trial -> ``MethodRun`` (or model, then ``preset`` is required). One row per
    (trial, direction)."""
    m = get_method(method)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad:
        raise ValueError(f"directions must be among {DIRECTIONS}, got {bad}")
    rows = []
    for trial, entry in sorted(runs.items()):
        model = entry.model if isinstance(entry, MethodRun) else entry
        settings = entry.preset if isinstance(entry, MethodRun) else preset
        if settings is None:
            raise ValueError("evaluate_regdb: pass preset= when runs maps trials to bare models")
        use_flip = settings.flip_tta if flip is None else flip
        data = trial_dataset(settings, trial)
        visible, thermal = data.query, data.gallery  # loaded visible_to_thermal
        feats = {"visible": _features(model, visible, settings, use_flip, device),
                 "thermal": _features(model, thermal, settings, use_flip, device)}  # fmt: skip
        for direction in directions:
            source, target = direction.split("_to_")
            q, g = feats[source], feats[target]
            result = evaluate(q["features"], g["features"], q["pids"], g["pids"], q["camids"], g["camids"],
                              protocol="regdb", **m.distance.evaluate_kwargs(q))  # fmt: skip
            rows.append({"trial": int(trial), "direction": direction, **_row(result), "protocol": result.protocol,
                         "ap": result.ap, "flip_tta": use_flip, "valid_queries": result.num_valid_queries})  # fmt: skip
    return pd.DataFrame(rows)


def mean_std(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per ``by`` group: ``<metric>_mean`` and ``<metric>_std`` (ddof 1; 0 for a single trial) over the trials,
    and ``trials``."""
    grouped = frame.groupby(list(by), sort=False)
    means = grouped[list(METRICS)].mean().add_suffix("_mean")
    stds = grouped[list(METRICS)].std(ddof=1).fillna(0.0).add_suffix("_std")
    out = pd.concat([means, stds], axis=1)
    out["trials"] = grouped.size()
    return out


def _setting(row: Mapping[str, Any]) -> str:
    if "mode" in row:
        return f"{row['mode']}-search, {'single' if int(row['shot']) == 1 else 'multi'}-shot"
    source, target = str(row["direction"]).split("_to_")
    return f"{source}→{target}"


def seed_table(results: Mapping[str, pd.DataFrame], dataset: str) -> pd.DataFrame:
    """The IV-ReID README's table (``Dataset (protocol) | Rank-1 | Rank-10 | Rank-20 | mAP``, plus mINP) with
    ``mean ± std`` over trials, one row per (model, protocol setting). ``results`` maps a model label to the rows
    of :func:`evaluate_sysu` or :func:`evaluate_regdb`."""
    rows = []
    for label, frame in results.items():
        by = ["mode", "shot"] if "mode" in frame else ["direction"]
        stats = mean_std(frame, by)
        for key, values in stats.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            setting = _setting(dict(zip(by, key, strict=True)))
            row = {"model": label, "Dataset (protocol)": f"{dataset} ({setting}, {int(values['trials'])} trials)"}
            for metric, title in zip(METRICS, ("Rank-1", "Rank-10", "Rank-20", "mAP", "mINP"), strict=True):
                row[title] = f"{values[metric + '_mean']:.1f} ± {values[metric + '_std']:.1f}"
            rows.append(row)
    return pd.DataFrame(rows)


def bot_baseline_preset(preset: Any, profile: str = "smoke", *, dataset: Any = None, **overrides: Any) -> Any:
    """BoT with the cross-modality sampler at IV-ReID's budget: the same data, backbone depth, input size, batch
    (P × (K RGB + K IR)), epochs, seed and pretrained weights; BoT's own loss, augmentation and schedule (its
    warm-up and decay epochs scaled to the same number of epochs). When ``preset`` selects on a validation split,
    BoT holds out as many training identities (its own Market-style split; ``dataset`` is needed to count SYSU's
    ``val_id`` identities)."""
    bot = get_preset("bot", profile)
    scale = preset.epochs / bot.epochs
    val_ids = 0
    if getattr(preset, "validation", "none") == "held_out":
        val_ids = preset.val_ids
    elif getattr(preset, "validation", "none") == "sysu_val_id":
        if dataset is None:
            raise ValueError("bot_baseline_preset: pass dataset= to count the SYSU val_id identities held out")
        val_ids = len({s.pid for s in validation_split(preset, dataset)[1].query})
    fields = dict(
        dataset=preset.dataset, data_root=preset.data_root, synth_size=preset.synth_size,
        model=preset.model.replace("ivreid_", "bot_"), pretrained=preset.pretrained, image_size=preset.image_size,
        batch_p=preset.batch_p, batch_k=preset.batch_k, sampler="cross_modality", epochs=preset.epochs,
        max_iters_per_epoch=preset.max_iters_per_epoch, seed=preset.seed, fast_data=preset.fast_data,
        num_workers=preset.num_workers, eval_batch_size=preset.eval_batch_size, flip_tta=preset.flip_tta,
        warmup_epochs=int(round(bot.warmup_epochs * scale)),
        milestones=tuple(max(1, int(round(e * scale))) for e in bot.milestones), val_ids=val_ids,
        validate_every=preset.validate_every, checkpoint_every=preset.checkpoint_every, log_every=preset.log_every,
        progress=preset.progress,
    )  # fmt: skip
    fields.update(overrides)
    return bot.replace(**fields)


def claim_check(results: Mapping[str, pd.DataFrame], method: str, baseline: str) -> pd.DataFrame:
    """Does ``method`` beat ``baseline``? Per protocol setting: both means of mAP and Rank-1, the differences and
    the larger of the two standard deviations over trials, and a verdict (``"higher"`` / ``"lower"``, with
    ``"within the spread"`` when the mAP difference is smaller than that standard deviation)."""
    ours, theirs = results[method], results[baseline]
    by = ["mode", "shot"] if "mode" in ours else ["direction"]
    a, b = mean_std(ours, by), mean_std(theirs, by)
    rows = []
    for key in a.index:
        setting = _setting(dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)))
        d_map = a.loc[key, "mAP_mean"] - b.loc[key, "mAP_mean"]
        spread = max(a.loc[key, "mAP_std"], b.loc[key, "mAP_std"])
        verdict = "higher" if d_map > 0 else "lower"
        if abs(d_map) < spread:
            verdict += " (within the spread)"
        rows.append({
            "setting": setting, f"{method} mAP": a.loc[key, "mAP_mean"], f"{baseline} mAP": b.loc[key, "mAP_mean"],
            "Δ mAP": d_map, f"{method} R1": a.loc[key, "R1_mean"], f"{baseline} R1": b.loc[key, "R1_mean"],
            "Δ R1": a.loc[key, "R1_mean"] - b.loc[key, "R1_mean"], "largest std (mAP)": spread,
            "verdict": f"{method} {verdict}",
        })  # fmt: skip
    return pd.DataFrame(rows).round(2)


def same_person_pairs(
    query: Sequence[Any], gallery: Sequence[Any], count: int = 2, seed: int = 0
) -> list[tuple[Any, Any]]:
    """``count`` (IR, RGB) sample pairs of the same identity, one identity each, drawn with ``seed``."""
    ir = {}
    for s in query:
        if s.modality == "ir":
            ir.setdefault(s.pid, []).append(s)
    rgb = {}
    for s in gallery:
        if s.modality == "rgb":
            rgb.setdefault(s.pid, []).append(s)
    shared = sorted(set(ir) & set(rgb))
    if not shared:
        raise ValueError("no identity has both an IR query and an RGB gallery image")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(shared, size=min(count, len(shared)), replace=False)
    return [(ir[p][int(rng.integers(len(ir[p])))], rgb[p][int(rng.integers(len(rgb[p])))]) for p in chosen.tolist()]
