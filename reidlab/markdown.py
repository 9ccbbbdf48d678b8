"""Markdown tables from DataFrames without an extra dependency (pandas' ``to_markdown`` needs ``tabulate``)."""

from __future__ import annotations

from typing import Any


def markdown_table(table: Any, digits: int = 1) -> str:
    """A GitHub-style markdown table of a DataFrame; floats with ``digits`` decimals, missing values as "—"."""
    cols = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in table.iterrows():
        cells = []
        for v in row.tolist():
            if v is None or (isinstance(v, float) and v != v):
                cells.append("—")
            else:
                cells.append(f"{v:.{digits}f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
