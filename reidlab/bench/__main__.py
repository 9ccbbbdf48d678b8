"""Dispatch ``python -m reidlab.bench <name> ...`` to ``reidlab.bench.<name>.main(argv)``."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import reidlab.bench as bench_pkg


def available() -> list[str]:
    """Names of the benchmark modules in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(bench_pkg.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = available()
    if not argv or argv[0] in {"-h", "--help"}:
        print(f"usage: python -m reidlab.bench {{{','.join(names)}}} [options]")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in names:
        print(f"unknown benchmark {name!r}; expected one of {names}", file=sys.stderr)
        return 2
    return int(importlib.import_module(f"reidlab.bench.{name}").main(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
