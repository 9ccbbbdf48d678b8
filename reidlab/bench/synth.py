"""``python -m reidlab.bench synth``: time the generation of a synthetic world, writing included.

Default: ``synth_market`` at ``full`` size (12,936 train + 3,368 query + 15,913 gallery images, plus
Market's 3,819 junk files), two render processes, into a temporary folder that is removed after.
Results are appended to ``figures/benchmarks.md`` under "## Synthetic world (`python -m reidlab.bench synth`)".
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shlex
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from reidlab.bench.record import append_section

HEADING = "## Synthetic world (`python -m reidlab.bench synth`)"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run(world: str, size: str, workers: int, out: Path | None) -> dict:
    """Plan + render + write one world; returns timings and counts."""
    from reidlab.data.synthetic import generate, plan_world

    start = time.perf_counter()
    plan = plan_world(world, size).plan
    plan_s = time.perf_counter() - start
    base = out if out is not None else Path(tempfile.mkdtemp(prefix="reidlab-bench-synth-"))
    load_before = os.getloadavg()[0]
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    path = generate(world, size, out=base, progress=False, workers=workers)
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_before
    load_after = os.getloadavg()[0]
    files = [p for p in path.rglob("*") if p.is_file()]
    record = {
        "world": world, "size": size, "workers": workers, "images": len(plan.paths),
        "splits": dict(Counter(plan.split)), "plan_s": plan_s, "seconds": seconds, "cpu_s": cpu,
        "mb": sum(p.stat().st_size for p in files) / 2**20, "files": len(files),
        "load_before": load_before, "load_after": load_after,
    }
    if out is None:
        shutil.rmtree(base, ignore_errors=True)
    return record


def markdown(records: list[dict], argv: list[str], note: str) -> str:
    from reidlab.data.synthetic import GENERATOR_VERSION

    lines = [
        "| world | size | images (splits) | render processes | wall s (writing incl.) | images / s | CPU s "
        "| MB on disk | load avg before / after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        splits = ", ".join(f"{k} {v:,}" for k, v in r["splits"].items())
        lines.append(
            f"| {r['world']} | {r['size']} | {r['images']:,} ({splits}) | {r['workers']} | **{r['seconds']:.1f}** "
            f"| {r['images'] / r['seconds']:,.0f} | {r['cpu_s']:.1f} | {r['mb']:.0f} "
            f"| {r['load_before']:.2f} / {r['load_after']:.2f} |"
        )
    notes = [
        f"Command: `{shlex.join(['python', '-m', 'reidlab.bench', 'synth', *argv])}`; "
        f"synthetic world generator version {GENERATOR_VERSION}.",
        f"Machine: {_cpu_name()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}.",
        "Wall time covers rendering, JPEG/PNG/BMP/TIFF encoding and writing every file plus the side files "
        "(attributes, descriptions, manifest); planning is excluded (it took "
        + ", ".join(f"{r['plan_s']:.1f} s" for r in records) + ").",
        "Other processes were sharing the CPUs during the run (see the load averages): the figure is an upper bound "
        "for an idle machine.",
    ]
    if note:
        notes.append(note)
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"



def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m reidlab.bench synth", description=__doc__.split("\n")[0])
    parser.add_argument("--worlds", default="synth_market", help="comma-separated synthetic world names")
    parser.add_argument("--size", default="full", choices=("mini", "full"))
    parser.add_argument("--workers", type=int, default=2, help="render processes")
    parser.add_argument("--out", default=None, help="keep the world in this folder (default: a temporary one)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave figures/benchmarks.md alone")
    parser.add_argument("--note", default="", help="a sentence added to the notes of this run")
    args = parser.parse_args(argv)
    records = []
    for world in [w.strip() for w in args.worlds.split(",") if w.strip()]:
        record = run(world, args.size, args.workers, Path(args.out) if args.out else None)
        print(f"{world} ({args.size}): {record['images']:,} images in {record['seconds']:.1f} s "
              f"({record['images'] / record['seconds']:,.0f} images/s, {args.workers} processes)", flush=True)
        records.append(record)
    text = markdown(records, argv, args.note)
    print(text)
    if not args.no_write:
        append_section(HEADING, text)
    return 0
