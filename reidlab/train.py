"""Train a registered method from the command line, on one process or under ``torchrun``.

    python -m reidlab.train --method bot --profile smoke --dataset synth_market
    python -m reidlab.train --method bot --profile full --set lr=3.5e-4 --set fast_data=True
    torchrun --nproc_per_node 4 -m reidlab.train --method bot --profile full --run-dir runs/bot-market

Any preset field can be set with ``--set name=value`` (Python literals: ``image_size=(256,128)``,
``triplet_margin=None``). The test split is evaluated once, after training; results go to
``<run-dir>/results.json`` and the console.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from typing import Any

import torch

from reidlab.device import describe_device, pick_device
from reidlab.engine import evaluate_model, fit, get_method, list_methods, load_preset_dataset
from reidlab.engine.distributed import init_from_env, is_distributed, is_main_process
from reidlab.engine.fit import default_run_dir, seed_everything
from reidlab.io import atomic_write_text
from reidlab.profiles import get_preset, get_profile


def parse_value(text: str) -> Any:
    """A Python literal when it parses as one (numbers, tuples, None, booleans), else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set expects name=value, got {item!r}")
        key, value = item.split("=", 1)
        overrides[key.strip()] = parse_value(value.strip())
    return overrides


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reidlab.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", default="bot", help=f"registered method ({', '.join(list_methods())})")
    parser.add_argument("--profile", default="smoke", choices=["smoke", "full"])
    parser.add_argument("--dataset", help="dataset name (default: the profile's)")
    parser.add_argument("--data-root", help="dataset folder (default: the lab's data folder)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a preset field")
    parser.add_argument("--run-dir", help="output folder (default: runs/<method>-<dataset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last.pt")
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
    overrides = parse_sets(args.set)
    for key, value in (("dataset", args.dataset), ("data_root", args.data_root), ("epochs", args.epochs)):
        if value is not None:
            overrides[key] = value
    preset = get_preset(args.method, get_profile(args.profile), **overrides)
    method = get_method(args.method)
    if is_main_process():
        print(describe_device(device))
        print(f"method {args.method}, profile {args.profile}: {preset}")
    dataset = load_preset_dataset(preset)
    if args.run_dir is None and args.resume:
        raise SystemExit("--resume needs --run-dir")
    run_dir = args.run_dir or default_run_dir(f"{args.method}-{preset.dataset}")
    if is_distributed() and args.run_dir is None:  # every rank must agree on the folder
        shared = [str(run_dir)]
        torch.distributed.broadcast_object_list(shared, src=0)
        run_dir = shared[0]
    seed_everything(preset.seed)
    model, loss = method.build(preset, dataset)
    train = method.train or fit
    result = train(model, loss, dataset, config=preset, run_dir=run_dir, resume=args.resume, device=device,
                   meta={"method": args.method, "dataset": preset.dataset})  # fmt: skip
    summary: dict[str, Any] = {"method": args.method, "profile": args.profile, "dataset": preset.dataset,
                               "run_dir": str(run_dir), "train_seconds": result.seconds}  # fmt: skip
    if not args.no_eval:
        rank = evaluate_model(
            result.model, dataset, image_size=preset.image_size, flip=preset.flip_tta, device=device,
            batch_size=preset.eval_batch_size, num_workers=preset.num_workers, normalization=preset.normalization,
            interpolation=preset.interpolation, fast=preset.fast_data,
        )  # fmt: skip
        summary.update({"protocol": rank.protocol, "ap": rank.ap, "flip_tta": preset.flip_tta, **rank.as_dict()})
        if is_main_process():
            print(f"{preset.dataset} test: {rank} (flip TTA {'on' if preset.flip_tta else 'off'})")
    if is_main_process():
        atomic_write_text(f"{run_dir}/results.json", json.dumps(summary, indent=2))
    if is_distributed():
        torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
