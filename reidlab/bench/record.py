"""The benchmark record: each benchmark owns one ``## heading`` section of ``figures/benchmarks.md``."""

from __future__ import annotations

from pathlib import Path

from reidlab.io import atomic_write_text
from reidlab.paths import figures_dir


def benchmarks_file() -> Path:
    return figures_dir() / "benchmarks.md"


def append_section(heading: str, text: str, path: Path | None = None) -> Path:
    """Add ``text`` at the end of the section ``heading`` (created if missing); other sections stay as they are.

    The file is re-read right before writing and replaced atomically.
    """
    path = Path(path) if path is not None else benchmarks_file()
    current = path.read_text(encoding="utf-8") if path.exists() else "# reidlab benchmarks\n"
    lines = current.rstrip("\n").split("\n")
    if heading not in lines:
        updated = current.rstrip("\n") + f"\n\n{heading}\n\n{text.strip()}\n"
    else:
        start = lines.index(heading)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        head, tail = "\n".join(lines[:end]).rstrip("\n"), "\n".join(lines[end:])
        updated = f"{head}\n\n{text.strip()}\n" + (f"\n{tail}\n" if tail else "")
    atomic_write_text(path, updated)
    return path
