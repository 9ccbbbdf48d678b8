"""Run a table's plan: every ready cell through ``reidlab.methods.run``, evaluated on its target, resumable.

Progress lives in ``runs/reproduce/<table>-<profile>/progress.json`` (written atomically after each cell), so an
interrupted reproduction continues without redoing finished cells; each cell's training run is itself a run
folder that ``run(..., reuse=True, resume="auto")`` reuses or continues. The reproduced table — the seed's
numbers, ours and the deltas, with protocol, AP flavour and TTA — goes to
``figures/reproduce_<table>_<profile>.md`` and ``.png``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from reidlab.engine.distributed import is_main_process
from reidlab.io import atomic_write_text
from reidlab.markdown import markdown_table
from reidlab.paths import figures_dir, runs_dir
from reidlab.reproduce.plan import PlannedCell, describe_plan, plan_table
from reidlab.reproduce.tables import Cell, Table, get_table


def progress_file(table: Table, profile: str) -> Path:
    return runs_dir() / "reproduce" / f"{table.name}-{profile}" / "progress.json"


def _load_progress(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); delete it to start the table again") from None


def run_cell(planned: PlannedCell, *, device: torch.device | str | None = None, **overrides: Any) -> dict[str, Any]:
    """Train the cell's model(s) on the source and evaluate on the target; mean R1 / mAP / mINP over models.

    Cross-modality cells follow their protocol: SYSU-MM01 averages the 10 random galleries of the cell's mode
    and shot (``evaluate_sysu``); RegDB trains one model per trial on that trial's identities and tests each
    on its own trial's split in the cell's direction (``train_regdb_trials`` / ``evaluate_regdb``).
    """
    from reidlab.methods import get_preset

    cell = planned.cell
    preset = get_preset(cell.method, planned.profile, dataset=planned.source, **{**cell.overrides, **overrides})
    if cell.protocol == "sysu":
        results = _sysu_cell(cell, preset, device)
    elif cell.protocol == "regdb":
        results = _regdb_cell(cell, preset, device)
    else:
        results = [_plain_model(cell, planned, preset, index, device) for index in range(cell.models)]
    mean = {k: round(sum(r[k] for r in results) / len(results), 2) for k in ("R1", "mAP", "mINP")}
    spread = {f"{k}_std": round(float(pd.Series([r[k] for r in results]).std(ddof=1)), 2)
              for k in ("R1", "mAP")} if len(results) > 1 else {}  # fmt: skip
    return {**mean, **spread, "models": cell.models, "evaluations": len(results), "protocol": cell.protocol,
            "ap": cell.ap, "flip_tta": cell.tta}  # fmt: skip


def _plain_model(cell: Cell, planned: PlannedCell, preset: Any, index: int, device: Any) -> dict[str, float]:
    """One model (seed ``preset.seed + index``) trained on the source, evaluated on the target."""
    from reidlab.data import load_dataset
    from reidlab.methods import evaluate_method, run

    if cell.models > 1:
        preset = preset.replace(seed=preset.seed + index)
    trained = run(cell.method, preset, name=f"{cell.key}-m{index}" if cell.models > 1 else cell.key,
                  reuse=True, resume="auto", device=device, evaluate=False)  # fmt: skip
    target = load_dataset(planned.target, **({"size": preset.synth_size} if planned.target.startswith("synth_")
                                             else {}), **cell.target_options)  # fmt: skip
    rank = evaluate_method(cell.method, trained.model, target, preset, flip=cell.tta, device=device,
                           protocol=cell.protocol, ap=cell.ap)  # fmt: skip
    return rank.as_dict()


def _sysu_cell(cell: Cell, preset: Any, device: Any) -> list[dict[str, float]]:
    """One model, the 10 galleries of the cell's (mode, shot)."""
    from reidlab.methods import load_method_dataset, run
    from reidlab.methods.cross_modality import evaluate_sysu

    if cell.models != 1:
        raise ValueError(f"{cell.key}: a SYSU-MM01 cell trains one model (models=1), got {cell.models}")
    trained = run(cell.method, preset, name=cell.key, reuse=True, resume="auto", device=device, evaluate=False)
    frame = evaluate_sysu(cell.method, trained.model, load_method_dataset(preset),
                          preset, modes=(cell.target_options.get("mode", "all"),),
                          shots=(int(cell.target_options.get("shot", 1)),), flip=cell.tta, device=device)  # fmt: skip
    return frame[["R1", "mAP", "mINP"]].to_dict("records")


def _regdb_cell(cell: Cell, preset: Any, device: Any) -> list[dict[str, float]]:
    """One model per trial (trials 1..models), each tested on its own trial in the cell's direction."""
    from reidlab.methods.cross_modality import evaluate_regdb, train_regdb_trials

    trained = train_regdb_trials(cell.method, preset, trials=range(1, cell.models + 1), name=cell.key, reuse=True,
                                 resume="auto", device=device)  # fmt: skip
    direction = cell.target_options.get("direction", "visible_to_thermal")
    frame = evaluate_regdb(cell.method, trained, directions=(direction,), flip=cell.tta, device=device)
    return frame[["R1", "mAP", "mINP"]].to_dict("records")


def reproduce(name: str, profile: str = "full", *, device: torch.device | str | None = None,
              dry_run: bool = False, **overrides: Any) -> pd.DataFrame:  # fmt: skip
    """Run (or, with ``dry_run``, only plan) the table ``name``; returns the reproduced table."""
    from tqdm.auto import tqdm

    table = get_table(name)
    planned = plan_table(table, profile)
    print(describe_plan(table, planned))
    if dry_run:
        return table_frame(table, planned, {})
    path = progress_file(table, profile)
    done = _load_progress(path)
    todo = [p for p in planned if p.ready and p.cell.key not in done]
    for p in tqdm(todo, desc=f"{table.name} ({profile})", unit="cell"):
        done[p.cell.key] = run_cell(p, device=device, **overrides)
        if is_main_process():  # under torchrun every rank trains; one writes
            atomic_write_text(path, json.dumps(done, indent=1) + "\n")
    frame = table_frame(table, planned, done)
    if is_main_process():
        write_outputs(table, profile, frame)
    return frame


def table_frame(table: Table, planned: list[PlannedCell], done: dict[str, Any]) -> pd.DataFrame:
    """One row per cell: the seed's numbers, ours (blank where not run) and the differences."""
    rows = []
    for p in planned:
        c, ours = p.cell, done.get(p.cell.key, {})
        row = {"row": c.row, "method": c.method, "source": p.source, "target": p.target,
               "protocol": c.protocol, "AP": c.ap, "TTA": c.tta, "paper R1": c.paper["R1"],
               "paper mAP": c.paper["mAP"], "ours R1": ours.get("R1"), "ours mAP": ours.get("mAP"),
               "status": "done" if ours else ("ready" if p.ready else "missing"), "note": c.note}  # fmt: skip
        for metric in ("R1", "mAP"):
            row[f"Δ {metric}"] = round(ours[metric] - c.paper[metric], 2) if metric in ours else None
        rows.append(row)
    return pd.DataFrame(rows)


def write_outputs(table: Table, profile: str, frame: pd.DataFrame) -> tuple[Path, Path]:
    """``figures/reproduce_<table>_<profile>.md`` and ``.png``."""
    import matplotlib.pyplot as plt

    from reidlab.viz import save_figure

    stem = f"reproduce_{table.name}_{profile}"
    shown = frame.drop(columns=["note"]).fillna("—")
    header = f"# {table.title}\n\nSource: {table.source}. Profile: {profile}. {table.note}\n\n"
    notes = "\n".join(f"- {r['row']} ({r['source']} → {r['target']}): {r['note']}" for _, r in frame.iterrows()
                      if r["note"])  # fmt: skip
    md = figures_dir() / f"{stem}.md"
    atomic_write_text(md, header + markdown_table(frame.drop(columns=["note"]), digits=2)
                      + ("\nNotes:\n" + notes + "\n" if notes else ""))
    fig, ax = plt.subplots(figsize=(min(2 + 1.1 * len(shown.columns), 22), 0.9 + 0.35 * len(shown)))
    ax.axis("off")
    cells = ax.table(cellText=shown.astype(str).values, colLabels=list(shown.columns), loc="center")
    cells.auto_set_font_size(False)
    cells.set_fontsize(7)
    ax.set_title(f"{table.title} — {profile}", fontsize=9)
    png = save_figure(fig, f"{stem}.png")
    plt.close(fig)
    return md, Path(png)
