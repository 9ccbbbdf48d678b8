"""Headless notebook runner over papermill.

``python -m reidlab.notebooks run [--profile smoke|full] [--only 02 ...] [-p key=value ...]`` executes
the numbered notebooks in ``notebooks/`` with parameters injected, writes executed copies under
``runs/notebooks/<profile>/`` and ends with a table (notebook, status, seconds). A failure exits
non-zero naming the notebook and the failing cell with its traceback.

Parameters: ``profile`` is always injected. A ``-p key=value`` whose key is declared in the notebook's
``parameters`` cell is injected as is; any other key goes into the notebook's ``overrides`` dict
(which every notebook forwards to its profile/preset), so any single value can be overridden.
Values are parsed as Python literals when possible (``-p epochs=2``, ``-p image_size=(128,64)``),
otherwise kept as strings.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reidlab.paths import REPO_ROOT, runs_dir

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class NotebookRun:
    """Outcome of one notebook execution."""

    name: str
    status: str  # "ok" | "failed"
    seconds: float
    output: Path
    error: str | None = None


class NotebookError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the traceback."""


def list_notebooks(only: Sequence[str] | None = None, folder: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) in order; ``only`` keeps those whose name starts with a prefix."""
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if only:
        selected = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
        missing = [o for o in only if not any(p.name.startswith(o) for p in found)]
        if missing:
            names = ", ".join(p.name for p in found)
            raise ValueError(f"--only {missing}: no notebook in {folder} starts with that; found: {names}")
        return selected
    return found


def parse_value(text: str) -> Any:
    """A ``-p`` value: a Python literal when it parses as one, else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_parameters(pairs: Iterable[str]) -> dict[str, Any]:
    """``["epochs=2", "dataset=synth_duke"]`` -> ``{"epochs": 2, "dataset": "synth_duke"}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"-p expects key=value with a Python identifier as key, got {pair!r}")
        params[key.strip()] = parse_value(value.strip())
    return params


def parameters_cells(notebook: dict) -> list[int]:
    """Indices of the code cells tagged ``parameters``."""
    return [
        i
        for i, cell in enumerate(notebook.get("cells", []))
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])
    ]


def declared_parameters(path: Path) -> dict[str, Any]:
    """Names and default values assigned in the notebook's ``parameters`` cell."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    cells = parameters_cells(notebook)
    if len(cells) != 1:
        raise ValueError(f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source = "".join(notebook["cells"][cells[0]]["source"])
    declared: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        declared[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                    except ValueError:
                        declared[target.id] = None
    return declared


def hygiene_problems(path: Path) -> list[str]:
    """What is wrong with a committed notebook: outputs left in, not exactly one parameters cell."""
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{path.name}: not a readable notebook ({exc})"]
    problems = []
    cells = notebook.get("cells", [])
    with_outputs = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and c.get("outputs")]
    counted = [i for i, c in enumerate(cells) if c.get("cell_type") == "code" and c.get("execution_count")]
    if with_outputs:
        problems.append(f"{path.name}: cells {with_outputs} have outputs (commit notebooks without outputs)")
    if counted:
        problems.append(f"{path.name}: cells {counted} have execution counts (clear them before committing)")
    n_params = len(parameters_cells(notebook))
    if n_params != 1:
        problems.append(f"{path.name}: expected exactly one cell tagged 'parameters', found {n_params}")
    return problems


def build_parameters(path: Path, profile: str, params: dict[str, Any]) -> dict[str, Any]:
    """Split user parameters into declared ones and ``overrides`` for this notebook."""
    declared = declared_parameters(path)
    injected: dict[str, Any] = {"profile": profile} if "profile" in declared else {}
    extra = {k: v for k, v in params.items() if k not in declared}
    injected.update({k: v for k, v in params.items() if k in declared})
    if extra:
        if "overrides" not in declared:
            raise ValueError(
                f"{path.name}: parameter(s) {sorted(extra)} are not declared in its parameters cell "
                f"(declared: {sorted(declared)}) and it has no 'overrides' dict"
            )
        merged = dict(declared.get("overrides") or {})
        merged.update(params.get("overrides", {}) if isinstance(params.get("overrides"), dict) else {})
        merged.update(extra)
        injected["overrides"] = merged
    return injected


def _format_failure(name: str, exc: Exception) -> str:
    cell = getattr(exc, "cell_index", None)
    count = getattr(exc, "exec_count", None)
    lines = [f"notebook {name} failed"]
    if cell is not None:
        lines[0] += f" in cell {cell}" + (f" (execution count {count})" if count is not None else "")
    source = getattr(exc, "source", None)
    if source:
        lines.append("cell source:\n" + "\n".join("    " + s for s in str(source).splitlines()[:30]))
    traceback = getattr(exc, "traceback", None)
    if traceback:
        lines.append("traceback:\n" + _ANSI.sub("", "\n".join(traceback)))
    else:
        lines.append(f"{type(exc).__name__}: {exc}")
    return "\n".join(lines)


def run_notebook(
    path: Path,
    *,
    profile: str = "smoke",
    parameters: dict[str, Any] | None = None,
    output_dir: Path | None = None,
    kernel_name: str = "python3",
    timeout: int | None = None,
) -> NotebookRun:
    """Execute one notebook with papermill; never raises for a cell error (see ``NotebookRun.error``)."""
    import papermill as pm

    path = Path(path)
    output_dir = Path(output_dir) if output_dir is not None else runs_dir() / "notebooks" / profile
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / path.name
    partial = output_dir / f".{path.stem}.running.ipynb"
    injected = build_parameters(path, profile, parameters or {})
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(partial),
            parameters=injected,
            kernel_name=kernel_name,
            cwd=str(path.parent),
            progress_bar=False,
            execution_timeout=timeout,
        )
    except Exception as exc:  # papermill raises PapermillExecutionError for cell errors
        failed = output_dir / f"{path.stem}.failed.ipynb"
        if partial.exists():
            partial.replace(failed)
        return NotebookRun(path.name, "failed", time.perf_counter() - start, failed, _format_failure(path.name, exc))
    partial.replace(final)
    stale = output_dir / f"{path.stem}.failed.ipynb"
    if stale.exists():
        stale.unlink()
    return NotebookRun(path.name, "ok", time.perf_counter() - start, final)


def summary_table(runs: Sequence[NotebookRun]) -> str:
    """A short fixed-width table: notebook, status, seconds."""
    width = max([len("notebook")] + [len(r.name) for r in runs])
    lines = [f"{'notebook':<{width}}  status  seconds", f"{'-' * width}  ------  -------"]
    lines += [f"{r.name:<{width}}  {r.status:<6}  {r.seconds:7.1f}" for r in runs]
    return "\n".join(lines)


def run_all(
    notebooks: Sequence[Path],
    *,
    profile: str = "smoke",
    parameters: dict[str, Any] | None = None,
    output_dir: Path | None = None,
    stop_on_failure: bool = False,
) -> list[NotebookRun]:
    """Execute notebooks in order with a progress bar across them."""
    from tqdm.auto import tqdm

    runs: list[NotebookRun] = []
    bar = tqdm(notebooks, desc="notebooks", unit="nb")
    for path in bar:
        bar.set_postfix_str(path.name)
        run = run_notebook(path, profile=profile, parameters=parameters, output_dir=output_dir)
        runs.append(run)
        if run.status != "ok":
            tqdm.write(run.error or f"{run.name} failed")
            if stop_on_failure:
                break
    return runs


def prepare(profile: str = "smoke") -> list[str]:
    """Generate the synthetic worlds the notebooks need under ``profile`` when they are missing."""
    from reidlab.data import load_dataset
    from reidlab.profiles import get_profile

    prof = get_profile(profile)
    names = [prof.dataset] if prof.dataset.startswith("synth_") else []
    for name in names:
        dataset = load_dataset(name, size=prof.synth_size)
        print(
            f"{name} ({prof.synth_size}): {len(dataset.train)} train, {len(dataset.query)} query, "
            f"{len(dataset.gallery)} gallery images at {dataset.root}"
        )
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reidlab.notebooks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute notebooks headless")
    run_p.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    run_p.add_argument("--only", nargs="+", metavar="PREFIX", help="notebook name prefixes, e.g. 00 02")
    run_p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    run_p.add_argument("--output-dir", type=Path, default=None)
    run_p.add_argument("--stop-on-failure", action="store_true")
    prep_p = sub.add_parser("prepare", help="generate the synthetic worlds the notebooks need")
    prep_p.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    sub.add_parser("check", help="check notebook hygiene (no outputs, one parameters cell)")
    args = parser.parse_args(argv)

    if args.command == "prepare":
        prepare(args.profile)
        return 0
    if args.command == "check":
        problems = [p for nb in list_notebooks() for p in hygiene_problems(nb)]
        print("\n".join(problems) or "all notebooks clean")
        return 1 if problems else 0

    try:
        notebooks = list_notebooks(args.only)
        params = parse_parameters(args.param)
        for nb in notebooks:
            build_parameters(nb, args.profile, params)  # fail fast on unknown parameters
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no numbered notebooks found in {NOTEBOOKS_DIR}", file=sys.stderr)
        return 2
    print(f"executing {len(notebooks)} notebook(s) with profile {args.profile!r}")
    runs = run_all(
        notebooks,
        profile=args.profile,
        parameters=params,
        output_dir=args.output_dir,
        stop_on_failure=args.stop_on_failure,
    )
    print(summary_table(runs))
    failed = [r for r in runs if r.status != "ok"]
    if failed:
        print(f"\n{len(failed)} notebook(s) failed: " + ", ".join(r.name for r in failed), file=sys.stderr)
        for run in failed:
            print(f"\n{run.error}\nexecuted copy: {run.output}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
