"""``python -m reidlab.data.synthetic --world synth_market --size mini --out data/synthetic [--seed 0]``."""

from __future__ import annotations

import argparse
import sys
import time

from .catalog import SIZES, WORLDS
from .generator import generate, is_complete, world_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reidlab.data.synthetic", description=__doc__)
    parser.add_argument("--world", required=True, help=f"one of {', '.join(WORLDS)}, or 'all'")
    parser.add_argument("--size", default="mini", choices=SIZES)
    parser.add_argument("--out", default=None, help="parent folder of the worlds (default: synthetic_dir())")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="render processes (default: 2 for large worlds)")
    parser.add_argument("--force", action="store_true", help="regenerate even if a complete world exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    names = list(WORLDS) if args.world == "all" else [args.world]
    unknown = [n for n in names if n not in WORLDS]
    if unknown:
        parser.error(f"unknown synthetic world {unknown[0]!r}; expected one of {', '.join(WORLDS)} or 'all'")
    for name in names:
        target = world_dir(name, args.size, args.out, args.seed)
        if not args.force and is_complete(target, name, args.size, args.seed):
            print(f"{name} ({args.size}): up to date at {target}")
            continue
        start = time.perf_counter()
        path = generate(name, args.size, args.out, args.seed, progress=not args.quiet, workers=args.workers)
        print(f"{name} ({args.size}): generated {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
