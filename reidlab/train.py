"""Train a registered method from the command line, on one process or under ``torchrun``.

    python -m reidlab.train --method bot --profile smoke
    python -m reidlab.train --method bot --profile full -p lr=3.5e-4 -p fast_data=true
    python -m reidlab.train --method bot --profile smoke --resume          # continue runs/bot/synth_market-smoke
    torchrun --nproc_per_node 4 -m reidlab.train --method bot --profile full --name seed2 -p seed=2

Any preset field can be set with ``-p name=value`` (or ``--set``); each value is parsed against the
field's declared type (``flip_tta=false``, ``image_size=(256,128)``, ``triplet_margin=None``) and a wrong
type or range fails at once naming the field. The run goes to ``runs/<method>/<dataset>-<profile>[-<name>]``
(``--run-dir`` to choose another); a folder that already holds a run is refused unless ``--resume``,
``--reuse`` or ``--overwrite``. The test split is evaluated once, after training; the numbers (with
protocol, AP flavour and TTA) go to the run's ``run.json`` and the console.
"""

from __future__ import annotations

import argparse
import sys

import torch

from reidlab.device import describe_device, pick_device
from reidlab.engine.distributed import init_from_env, is_distributed, is_main_process
from reidlab.engine.runs import RunFolderError
from reidlab.methods import get_method, get_preset, list_methods, run
from reidlab.settings import SettingError, parse_assignments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reidlab.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="bot", help=f"registered method ({', '.join(list_methods())})")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    parser.add_argument("--dataset", help="dataset name (default: the profile's)")
    parser.add_argument("--data-root", help="dataset folder (default: the lab's data folder)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("-p", "--set", action="append", default=[], metavar="NAME=VALUE",
                        help="override a preset field (repeatable)")  # fmt: skip
    parser.add_argument("--name", help="run name: runs/<method>/<dataset>-<profile>-<name>")
    parser.add_argument("--run-dir", help="output folder (default: runs/<method>/<dataset>-<profile>[-<name>])")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in the run folder (it must exist)")
    mode.add_argument("--reuse", action="store_true", help="load a finished run of the same settings instead")
    mode.add_argument("--overwrite", action="store_true", help="delete what the run folder holds, then train")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: CUDA when present; LOCAL_RANK under torchrun)")
    parser.add_argument("--no-eval", action="store_true", help="skip the final test-split evaluation")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    init_from_env()
    if args.device:
        device = torch.device(args.device)
    elif is_distributed() and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = pick_device()
    try:
        method = get_method(args.method)
        overrides: dict = parse_assignments(args.set, option="-p/--set")
        for key, value in (("dataset", args.dataset), ("data_root", args.data_root), ("epochs", args.epochs)):
            if value is not None:
                overrides[key] = value
        preset = get_preset(method, args.profile, **overrides)
    except (SettingError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if is_main_process():
        print(describe_device(device))
        print(f"method {method.name}, profile {args.profile}: {preset}")
    try:
        run(method, preset, name=args.name, run_dir=args.run_dir, resume=args.resume, reuse=args.reuse,
            overwrite=args.overwrite, device=device, evaluate=not args.no_eval)  # fmt: skip
    except (RunFolderError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if is_distributed():
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
