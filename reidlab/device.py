"""Pick the compute device once and describe it; autocast policy per device."""

from __future__ import annotations

import contextlib
import os
import platform

import torch


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or ``prefer``/``REIDLAB_DEVICE`` when given), CPU otherwise."""
    choice = prefer or os.environ.get("REIDLAB_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {choice!r} requested but CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device | str, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA, a no-op (fp32) on CPU."""
    device = torch.device(device)
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def describe_device(device: torch.device | str | None = None) -> str:
    """One line saying what this process runs on (printed by every notebook)."""
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        what = f"CUDA {props.name} ({props.total_memory / 2**30:.0f} GiB), bf16 autocast"
    else:
        what = f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, fp32"
    return f"device: {device} — {what}; torch {torch.__version__}"
