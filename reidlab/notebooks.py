"""Headless notebook runner over papermill.

``python -m reidlab.notebooks run [--profile smoke|full] [--only 02 ...] [-p key=value ...]`` executes
the numbered notebooks in ``notebooks/`` with parameters injected, writes executed copies under
``runs/notebooks/<profile>/`` and ends with a table (notebook, status, seconds). While a notebook
runs, the cell being executed (index / total, its first line) and the elapsed time are shown. A
failure exits non-zero naming the notebook and the failing cell with its traceback.

``--only`` picks notebooks by number (``0``, ``00`` and ``2``, ``02`` are whole numbers: ``0`` is
notebook 00 only) or by name (``02_baseline_bot``).

Parameters: ``profile`` is always injected. A ``-p key=value`` whose key is declared in the notebook's
``parameters`` cell is read as the type of its declared default (bool: true/false/1/0/yes/no;
int; float; str as written; list/tuple/dict: a Python literal; a ``None`` default: a Python literal,
else the string) and a value that does not fit stops the run before anything executes. Any other key
goes into the notebook's ``overrides`` dict (which every notebook forwards to its profile or method
preset, where it is validated), parsed as a Python literal when it is one (``-p epochs=2``,
``-p image_size=(128,64)``), otherwise kept as a string.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

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


def _shown(path: Path) -> str:
    """``path`` as a user would type it: relative to the working folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- which notebooks
def _selects(token: str, path: Path) -> bool:
    """``--only`` token vs a notebook: a whole number (``0`` = ``00``, ``2`` = ``02``) or its stem / file name."""
    token = token.strip()
    if token.isdigit():
        return int(token) == int(path.name[:2])
    return token in (path.stem, path.name)


def list_notebooks(only: Sequence[str] | None = None, folder: Path | None = None) -> list[Path]:
    """Numbered notebooks (``NN_name.ipynb``) in order; ``only`` keeps those selected by number or name.

    ``only=["0"]`` or ``["00"]`` is notebook 00 alone (not every notebook starting with 0);
    ``["2", "09_visualisation"]`` are 02 and 09.
    """
    folder = NOTEBOOKS_DIR if folder is None else Path(folder)
    found = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    missing = [o for o in only if not any(_selects(o, p) for p in found)]
    if missing:
        names = ", ".join(p.stem for p in found) or "none"
        raise ValueError(
            f"--only {' '.join(missing)}: no notebook in {_shown(folder)} has that number or name "
            f"(give a number such as 2 or 02, or a name such as {found[0].stem if found else '02_baseline_bot'}); "
            f"found: {names}"
        )
    return [p for p in found if any(_selects(o, p) for o in only)]


# ----------------------------------------------------------------------------- parameters
def parse_value(text: str) -> Any:
    """A ``-p`` value for a key that is not declared: a Python literal when it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """``["epochs=2", "dataset=synth_duke"]`` -> ``{"epochs": "2", "dataset": "synth_duke"}``.

    Values stay text here: :func:`build_parameters` reads each one against the notebook it goes to.
    """
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"-p expects key=value with a Python identifier as key, got {pair!r}")
        params[key.strip()] = value.strip()
    return params


def _read_notebook(path: Path) -> dict:
    """The notebook's JSON; an error names the file and what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{_shown(path)}: not a notebook: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        notebook = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{_shown(path)}: not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ValueError(f"{_shown(path)}: not a notebook: the JSON has no 'cells' list")
    return notebook


def parameters_cells(notebook: dict) -> list[int]:
    """Indices of the code cells tagged ``parameters``."""
    return [
        i
        for i, cell in enumerate(notebook.get("cells", []))
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", [])
    ]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def declared_parameters(path: Path) -> dict[str, Any]:
    """Names and default values assigned in the notebook's ``parameters`` cell (``None`` where not a literal)."""
    notebook = _read_notebook(path)
    cells = parameters_cells(notebook)
    if len(cells) != 1:
        raise ValueError(f"{_shown(path)}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    source = _source(notebook["cells"][cells[0]])
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        line = (exc.text or "").strip()
        raise ValueError(
            f"{_shown(path)}: syntax error in the parameters cell (cell {cells[0]}), line {exc.lineno}: {exc.msg}"
            + (f"\n    {line}" if line else "")
        ) from None
    declared: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        declared[target.id] = ast.literal_eval(node.value) if node.value is not None else None
                    except (ValueError, SyntaxError, TypeError):
                        declared[target.id] = None
    return declared


_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _expected(default: Any) -> str:
    if isinstance(default, bool):
        return "a bool (true/false, 1/0, yes/no)"
    if isinstance(default, int):
        return "an int"
    if isinstance(default, float):
        return "a float"
    if isinstance(default, str):
        return "a str"
    return f"a {type(default).__name__} (a Python literal)"


def _typed(default: Any, value: Any) -> Any:
    """``value`` as the type of ``default``; raises ``ValueError`` when it does not fit. Text is parsed."""
    text = value.strip() if isinstance(value, str) else None
    if default is None:
        return parse_value(text) if text is not None else value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if text is not None and text.lower() in _TRUE + _FALSE:
            return text.lower() in _TRUE
        raise ValueError
    if isinstance(default, int):
        parsed = parse_value(text) if text is not None else value
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return parsed
        raise ValueError
    if isinstance(default, float):
        if text is not None:
            return float(text)  # ValueError for 'abc'; '2', '1e-3', 'inf' are fine
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ValueError
    parsed = parse_value(text) if text is not None else value
    if isinstance(default, list | tuple) and isinstance(parsed, list | tuple):
        return type(default)(parsed)
    if isinstance(parsed, type(default)):
        return parsed
    raise ValueError


def typed_parameter(path: Path, key: str, default: Any, value: Any) -> Any:
    """``value`` for the declared parameter ``key`` of notebook ``path``, read as the type of its ``default``.

    Text (what ``-p`` gives) is parsed; other values must already have the type. A value that does not
    fit raises ``ValueError`` naming the notebook, the parameter and the expected type.
    """
    try:
        return _typed(default, value)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(
            f"{_shown(path)}: parameter {key!r} expects {_expected(default)} like its default {default!r}, "
            f"got {value!r}"
        ) from None


def build_parameters(path: Path, profile: str, params: dict[str, Any]) -> dict[str, Any]:
    """What papermill injects into notebook ``path``: ``profile``, declared parameters, ``overrides``.

    Declared keys are read as their default's type (:func:`typed_parameter`); any other key goes into
    the notebook's ``overrides`` dict, text parsed as a Python literal when it is one.
    """
    declared = declared_parameters(path)
    injected: dict[str, Any] = {"profile": profile} if "profile" in declared else {}
    injected.update({k: typed_parameter(path, k, declared[k], v) for k, v in params.items() if k in declared})
    extra = {k: parse_value(v) if isinstance(v, str) else v for k, v in params.items() if k not in declared}
    if extra:
        if "overrides" not in declared:
            raise ValueError(
                f"{_shown(path)}: parameter(s) {sorted(extra)} are not declared in its parameters cell "
                f"(declared: {sorted(declared)}) and it has no 'overrides' dict"
            )
        merged = dict(declared.get("overrides") or {})
        merged.update(injected.get("overrides") or {})
        merged.update(extra)
        injected["overrides"] = merged
    return injected


def hygiene_problems(path: Path) -> list[str]:
    """What is wrong with a committed notebook: outputs left in, not exactly one parameters cell."""
    try:
        notebook = _read_notebook(path)
    except (OSError, ValueError) as exc:
        return [str(exc)]
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


# ----------------------------------------------------------------------------- progress
def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


class CellProgress:
    """Which cell of a notebook is executing, with elapsed times, fed by nbclient's cell hooks.

    On a terminal: one line, rewritten in place every ``refresh`` seconds, so a long cell shows its
    clock ticking. Elsewhere (CI logs, pipes, files): one line per cell as it starts, never rewritten.
    """

    def __init__(self, name: str, stream: TextIO | None = None, live: bool | None = None, refresh: float = 1.0):
        self.name = name
        self.stream = stream if stream is not None else sys.stderr
        self.live = (hasattr(self.stream, "isatty") and self.stream.isatty()) if live is None else live
        self.refresh = refresh
        self.total = 0
        self.index = 0
        self.first_line = ""
        self.started = self.cell_started = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._width = 0

    # nbclient hooks (keyword arguments)
    def notebook_start(self, notebook: Any = None, **_: Any) -> None:
        cells = notebook.cells if notebook is not None else []
        self.total = sum(1 for c in cells if c.cell_type == "code" and c.source.strip())
        self.started = time.perf_counter()
        if self.live and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name=f"progress {self.name}", daemon=True)
            self._ticker.start()

    def cell_execute(self, cell: Any = None, cell_index: int | None = None, **_: Any) -> None:
        source = cell.source if cell is not None else ""
        with self._lock:
            self.index += 1
            self.cell_started = time.perf_counter()
            self.first_line = next((s.strip() for s in source.splitlines() if s.strip()), "")
            if self.live:
                self._draw()
            else:
                self.stream.write(self.line() + "\n")
                self.stream.flush()

    def close(self) -> None:
        """Stop refreshing; a live line is ended so the next output starts on a fresh line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            if self.live and self._width:
                self.stream.write("\r" + " " * self._width + "\r")
                self.stream.flush()
                self._width = 0

    def line(self) -> str:
        now = time.perf_counter()
        width = len(str(self.total))
        head = f"  {self.name}  cell {self.index:>{width}}/{self.total}"
        if self.live:
            head += f"  {_clock(now - self.cell_started)} in cell, {_clock(now - self.started)} in notebook"
        else:
            head += f"  at {_clock(now - self.started)}"
        text = f"{head}  {self.first_line}"
        limit = max(40, shutil.get_terminal_size((120, 20)).columns - 1)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def _draw(self) -> None:
        text = self.line()
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh):
            with self._lock:
                if self.index:
                    self._draw()

    def hooks(self) -> dict[str, Any]:
        """Keyword arguments for papermill / nbclient."""
        return {"on_notebook_start": self.notebook_start, "on_cell_execute": self.cell_execute}


# ----------------------------------------------------------------------------- execution
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


def _kernel_transport(socket_dir: str | None) -> dict[str, Any]:
    """Engine keyword arguments that make the kernel talk over IPC sockets in ``socket_dir``.

    By default a kernel and papermill talk over TCP on localhost, and ipykernel (7+) then warns for
    every notebook "Kernel is running over TCP without encryption". We do not hide that warning: we
    remove its cause. IPC (Unix domain sockets) in a private, freshly made 0700 folder can only be
    opened by this user, so nothing travels over the network stack to eavesdrop on; the folder
    must be absolute, otherwise the sockets would land in the notebook's working folder. ZeroMQ has
    no IPC on Windows: there ``socket_dir`` is ``None``, TCP stays and so does the warning.
    """
    if socket_dir is None:
        return {}
    from traitlets.config import Config

    config = Config()
    config.KernelManager.transport = "ipc"
    config.KernelManager.ip = os.path.join(socket_dir, "kernel")
    return {"config": config}


def run_notebook(
    path: Path,
    *,
    profile: str = "smoke",
    parameters: dict[str, Any] | None = None,
    output_dir: Path | None = None,
    kernel_name: str = "python3",
    timeout: int | None = None,
    progress: bool | TextIO = False,
) -> NotebookRun:
    """Execute one notebook with papermill; never raises for a cell error (see ``NotebookRun.error``).

    ``progress``: ``True`` shows the executing cell on stderr (:class:`CellProgress`), a stream shows
    it there, ``False`` shows nothing.
    """
    import papermill as pm

    path = Path(path)
    output_dir = Path(output_dir) if output_dir is not None else runs_dir() / "notebooks" / profile
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / path.name
    partial = output_dir / f".{path.stem}.running.ipynb"
    injected = build_parameters(path, profile, parameters or {})
    cells = None
    if progress is not False:
        cells = CellProgress(path.stem, stream=None if progress is True else progress)
    socket_dir = tempfile.mkdtemp(prefix="reidlab-kernel-") if os.name == "posix" else None
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
            **_kernel_transport(socket_dir),
            **(cells.hooks() if cells is not None else {}),
        )
    except Exception as exc:  # papermill raises PapermillExecutionError for cell errors
        failed = output_dir / f"{path.stem}.failed.ipynb"
        if partial.exists():
            partial.replace(failed)
        return NotebookRun(path.name, "failed", time.perf_counter() - start, failed, _format_failure(path.name, exc))
    finally:
        if cells is not None:
            cells.close()
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)
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
    progress: bool | TextIO = True,
) -> list[NotebookRun]:
    """Execute notebooks in order, reporting each one's start, status and time on stderr (or ``progress``).

    While a notebook runs, its executing cell is shown as well (see :func:`run_notebook`).
    """
    stream = sys.stderr if progress is True else (progress or None)
    runs: list[NotebookRun] = []
    for number, path in enumerate(notebooks, 1):
        if stream is not None:
            stream.write(f"[{number}/{len(notebooks)}] {path.name}\n")
            stream.flush()
        run = run_notebook(path, profile=profile, parameters=parameters, output_dir=output_dir, progress=progress)
        runs.append(run)
        if stream is not None:
            stream.write(f"[{number}/{len(notebooks)}] {path.name}: {run.status} in {_clock(run.seconds)}\n")
            stream.flush()
        if run.status != "ok":
            if stream is not None:
                stream.write((run.error or f"{run.name} failed") + "\n")
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
    run_p.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                       help="notebook numbers or names, e.g. 0 2 or 00_quickstart 02 (whole numbers: 0 is 00 only)")
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
            build_parameters(nb, args.profile, params)  # fail fast: unknown keys, values of the wrong type
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print(f"error: no numbered notebooks found in {NOTEBOOKS_DIR}", file=sys.stderr)
        return 2
    print(f"executing {len(notebooks)} notebook(s) with profile {args.profile!r}: "
          + ", ".join(p.stem for p in notebooks), flush=True)
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
