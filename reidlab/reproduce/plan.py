"""What a table's cells need before they can run: the method and its preset, the datasets, the weight files.

Under the ``full`` profile a cell runs on the real releases under ``data/`` and starts from the release weights
its preset names; under ``smoke`` every real dataset stands in as its synthetic world (:data:`SYNTHETIC`) and the
lab's own weights are used, so a plan can be exercised end to end on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reidlab.reproduce.tables import Cell, Table

#: The synthetic world standing for each real dataset under the smoke profile.
SYNTHETIC = {
    "market1501": "synth_market",
    "dukemtmc": "synth_duke",
    "msmt17": "synth_msmt",
    "msmt17_all": "synth_msmt",
    "cuhk03_np": "synth_cuhk03_np",
    "randperson": "synth_randperson",
    "occluded_duke": "synth_occluded_duke",
    "occluded_reid": "synth_occluded_reid",
    "sysu_mm01": "synth_sysu",
    "regdb": "synth_regdb",
}


@dataclass(frozen=True)
class Requirement:
    """One thing a cell needs: a method, a dataset or a weight file; ``detail`` says where it is or should go."""

    kind: str  # "method" | "data" | "weights"
    name: str
    ok: bool
    detail: str


@dataclass
class PlannedCell:
    """A cell under a profile: the datasets it uses there and what it needs."""

    cell: Cell
    profile: str
    source: str
    target: str
    requirements: list[Requirement] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.requirements)

    @property
    def missing(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.ok]


def dataset_for(name: str, profile: str) -> str:
    """The dataset a cell uses for ``name`` under ``profile`` (its synthetic world under ``smoke``)."""
    if profile == "smoke":
        if name not in SYNTHETIC:
            raise ValueError(f"no synthetic world stands for {name!r}; known: {sorted(SYNTHETIC)}")
        return SYNTHETIC[name]
    return name


def _dataset_requirement(name: str, options: tuple[tuple[str, Any], ...]) -> Requirement:
    if name.startswith("synth_"):
        return Requirement("data", name, True, "synthetic world (generated on first use)")
    from reidlab.data import load_dataset

    try:
        dataset = load_dataset(name, **dict(options))
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        return Requirement("data", name, False, _where(str(exc)))
    return Requirement("data", name, True, dataset.root)


def _where(message: str) -> str:
    """A loader's "not found" message on one line: the folders searched, then the expected layout."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " ".join(lines)


def _weights_requirement(name: str, profile: str) -> Requirement:
    from reidlab.weights import resolve_weights

    if profile == "smoke":
        return Requirement("weights", name, True, "not needed under smoke (the lab's own weights or random init)")
    try:
        return Requirement("weights", name, True, str(resolve_weights(name, True)))
    except FileNotFoundError as exc:
        return Requirement("weights", name, False, str(exc).split(". Put")[0])


def _method_requirement(cell: Cell, profile: str, source: str) -> Requirement:
    from reidlab.methods import get_preset

    try:
        get_preset(cell.method, profile, dataset=source, **cell.overrides)
    except (ValueError, TypeError) as exc:
        return Requirement("method", cell.method, False, str(exc).splitlines()[0])
    return Requirement("method", cell.method, True, f"preset {profile} with {cell.overrides or 'no overrides'}")


def plan_cell(cell: Cell, profile: str = "full", seen: dict | None = None) -> PlannedCell:
    """The cell's datasets under ``profile`` and the state of each requirement (``seen`` caches dataset checks)."""
    seen = {} if seen is None else seen

    def data(name: str, options: dict[str, Any]) -> Requirement:
        key = (name, tuple(sorted(options.items())))
        if key not in seen:
            seen[key] = _dataset_requirement(*key)
        return seen[key]

    source, target = dataset_for(cell.source, profile), dataset_for(cell.target, profile)
    planned = PlannedCell(cell, profile, source, target)
    planned.requirements.append(_method_requirement(cell, profile, source))
    planned.requirements.append(data(source, {}))
    if (target, cell.target_options) != (source, {}):
        planned.requirements.append(data(target, cell.target_options))
    planned.requirements += [_weights_requirement(w, profile) for w in cell.weights]
    return planned


def plan_table(table: Table, profile: str = "full") -> list[PlannedCell]:
    """Every cell of ``table`` planned under ``profile`` (each dataset checked once)."""
    seen: dict = {}
    return [plan_cell(cell, profile, seen) for cell in table.cells]


def describe_plan(table: Table, planned: list[PlannedCell]) -> str:
    """The dry-run report: one line per cell, then one list of everything missing and where it goes."""
    lines = [f"{table.name}: {table.title} ({table.source}); {len(planned)} cells, profile {planned[0].profile}"]
    for p in planned:
        c = p.cell
        state = "ready" if p.ready else "missing " + ", ".join(f"{r.kind} {r.name}" for r in p.missing)
        extra = (f" x{c.models} models" if c.models > 1 else "") + (
            f" on {c.gpus} GPUs (torchrun --nproc_per_node {c.gpus})" if c.gpus > 1 else "")
        lines.append(f"  {c.row:<22} {c.method:<13} {p.source} -> {p.target}{extra}; paper R1 {c.paper['R1']} / "
                     f"mAP {c.paper['mAP']} ({c.protocol}, {c.ap} AP, TTA {'on' if c.tta else 'off'}): {state}")
    missing = {(r.kind, r.name): r.detail for p in planned for r in p.missing}
    if missing:
        lines.append("missing, and where it goes:")
        lines += [f"  {kind} {name}: {detail}" for (kind, name), detail in sorted(missing.items())]
    else:
        lines.append("nothing missing")
    return "\n".join(lines)
