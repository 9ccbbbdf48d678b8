"""``python -m reidlab.pretrain --model NAME [--profile smoke|full] [-p field=value] [--resume | --overwrite]``

Pretrains one of the lab's backbones on the pretraining world, exports the weights and model card to
``data/weights/lab/`` and runs the checks on the held-out world (``--no-checks`` skips them). ``--checks-only``
re-runs the checks on existing lab weights and updates the card.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from reidlab.device import describe_device, pick_device
from reidlab.pretrain.specs import SPECS
from reidlab.settings import SettingError, parse_assignments


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reidlab.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help=f"one of {', '.join(sorted(SPECS))}")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    parser.add_argument("-p", "--set", action="append", default=[], metavar="NAME=VALUE", help="override a field")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the pretraining run (it must exist)")
    mode.add_argument("--overwrite", action="store_true", help="train anew and replace existing lab weights")
    parser.add_argument("--device", help="cpu, cuda (default: CUDA when present)")
    parser.add_argument("--no-checks", action="store_true", help="skip the checks on the held-out world")
    parser.add_argument("--checks-only", action="store_true", help="only (re)run the checks of existing weights")
    args = parser.parse_args(argv)
    device = torch.device(args.device) if args.device else pick_device()
    from reidlab.pretrain.run import check_and_record, pretrain

    try:
        overrides = parse_assignments(args.set, option="-p/--set")
        if not args.checks_only:
            print(describe_device(device))
            result = pretrain(args.model, args.profile, device=device, resume=args.resume, overwrite=args.overwrite,
                              **overrides)  # fmt: skip
            print(f"weights: {result.weights}; final losses {result.card.get('final_losses')}")
        if not args.no_checks:
            checks = check_and_record(args.model, device=device)
            print(json.dumps(checks, indent=1))
    except (SettingError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
