"""The seeds' published numbers beside the lab's for the same (method, source, target) cells.

Under ``smoke`` the lab's cells are on the synthetic stand-ins (:data:`~reidlab.reproduce.plan.SYNTHETIC`), so a
difference there measures another domain, not a reproduction gap; every matched row says so, and carries the
seed's own caveats (test-set selection, a non-standard protocol or AP flavour) from its table.
"""

from __future__ import annotations

import pandas as pd

from reidlab.reproduce.plan import dataset_for
from reidlab.reproduce.tables import TABLES, Cell, Table

SEED_COLUMNS = ("seed row", "seed R1", "seed mAP", "seed protocol", "Δ R1", "Δ mAP", "seed note")


def _matches(cell: Cell, row: pd.Series, profile: str) -> bool:
    if cell.method != row["method"]:
        return False
    if cell.method == "clip_prompts" and cell.overrides.get("mode") not in str(row.get("variant", "")).split():
        return False
    try:
        return dataset_for(cell.source, profile) == row["source"] and dataset_for(cell.target, profile) == row["target"]
    except ValueError:
        return False


def _note(table: Table, cell: Cell, profile: str, row: pd.Series) -> str:
    parts = []
    if profile == "smoke":
        parts.append(f"ours on synthetic stand-ins of {cell.source} → {cell.target}: another domain, not a "
                     "reproduction")
    flavour = f"{cell.protocol} protocol, {cell.ap} AP, TTA {'on' if cell.tta else 'off'}"
    ours = f"{row['protocol']} protocol, {row['ap']} AP, TTA {'on' if row['flip_tta'] else 'off'}"
    if flavour != ours:
        parts.append(f"seed: {flavour}; ours: {ours}")
    parts.extend(n for n in (cell.note, table.note) if n)
    return "; ".join(parts)


def beside_seeds(frame: pd.DataFrame, profile: str) -> pd.DataFrame:
    """``frame`` (rows with method, variant, source, target, protocol, ap, flip_tta, R1, mAP) with the first
    matching published cell of any seed table: its numbers, the differences (ours − seed) and its caveats.
    Rows without a published counterpart keep empty seed columns."""
    out = frame.copy()
    for column in SEED_COLUMNS:
        out[column] = None
    for index, row in frame.iterrows():
        found = next(((t, c) for t in TABLES.values() for c in t.cells if _matches(c, row, profile)), None)
        if found is None:
            continue
        table, cell = found
        out.loc[index, list(SEED_COLUMNS)] = [
            f"{table.name}: {cell.row}", cell.paper["R1"], cell.paper["mAP"], cell.protocol,
            round(row["R1"] - cell.paper["R1"], 2), round(row["mAP"] - cell.paper["mAP"], 2),
            _note(table, cell, profile, row)]  # fmt: skip
    return out
