"""``python -m reidlab.reproduce [--list] [TABLE ...] [--dry-run] [--profile full|smoke] [-p field=value]``

``--list`` prints the tables and their cells; ``--dry-run`` plans a table (every run with its data and weight
requirements, and one list of what is missing and where it goes); without it the ready cells run through
``reidlab.methods.run`` (resuming after an interruption) and the reproduced table with the seed's numbers,
ours and the deltas goes to ``figures/``. Under ``torchrun`` the same runs use DDP.
"""

from __future__ import annotations

import argparse
import sys

from reidlab.reproduce.plan import describe_plan, plan_table
from reidlab.reproduce.tables import TABLES, get_table
from reidlab.settings import SettingError, parse_assignments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reidlab.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("tables", nargs="*", metavar="TABLE", help=f"one or more of {', '.join(sorted(TABLES))}")
    parser.add_argument("--list", action="store_true", help="list the tables and their cells")
    parser.add_argument("--dry-run", action="store_true", help="plan only: requirements and what is missing")
    parser.add_argument("--profile", default="full", choices=["full", "smoke"])
    parser.add_argument("-p", "--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a preset field of every cell")  # fmt: skip
    parser.add_argument("--device", help="cpu, cuda (default: CUDA when present)")
    args = parser.parse_args(argv)
    try:
        names = args.tables or (sorted(TABLES) if (args.list or args.dry_run) else [])
        if not names:
            parser.error("name a table (or --list / --dry-run for all)")
        tables = [get_table(n) for n in names]
        overrides = parse_assignments(args.set, option="-p/--set")
    except (ValueError, SettingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for table in tables:
        if args.list:
            print(f"{table.name}: {table.title} ({table.source})")
            for c in table.cells:
                print(f"  {c.row:<22} {c.method:<13} {c.source} -> {c.target} {c.target_options or ''} "
                      f"paper R1 {c.paper['R1']} / mAP {c.paper['mAP']}")
        elif args.dry_run:
            print(describe_plan(table, plan_table(table, args.profile)))
        else:
            from reidlab.reproduce.run import reproduce

            print(reproduce(table.name, args.profile, device=args.device, **overrides).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
