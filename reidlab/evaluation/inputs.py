"""Validate evaluation inputs and turn NumPy arrays / torch tensors into torch tensors on one device.

Every check raises ``ValueError`` naming the argument and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor | Sequence


def resolve_device(device: torch.device | str | None, *tensors: Any) -> torch.device:
    """``device`` when given, else the device of the first torch tensor among ``tensors``, else CPU."""
    if device is not None:
        return torch.device(device)
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor):
            return tensor.device
    return torch.device("cpu")


def as_tensor(value: ArrayLike, name: str, *, device: torch.device | None = None) -> torch.Tensor:
    """A zero-copy torch view of a NumPy array (or the tensor itself), moved to ``device`` when given."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
    elif isinstance(value, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(value))
    else:
        try:
            tensor = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a NumPy array or torch tensor, got {type(value).__name__}") from err
    return tensor if device is None else tensor.to(device)


def check_matrix(value: ArrayLike, name: str, *, allow_inf: bool) -> None:
    """A 2-D floating-point, non-empty matrix without NaN (and without inf unless ``allow_inf``)."""
    if not isinstance(value, np.ndarray | torch.Tensor):
        raise ValueError(f"{name} must be a NumPy array or torch tensor, got {type(value).__name__}")
    shape = tuple(value.shape)
    if len(shape) != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {shape}")
    if shape[0] == 0 or shape[1] == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape}")
    dtype_ok = (
        value.dtype.is_floating_point if isinstance(value, torch.Tensor) else np.issubdtype(value.dtype, np.floating)
    )
    if not dtype_ok:
        raise ValueError(f"{name} must hold floating-point values, got dtype {value.dtype}")
    if not allow_inf:
        finite = torch.isfinite(value).all() if isinstance(value, torch.Tensor) else np.isfinite(value).all()
        if not bool(finite):
            raise ValueError(f"{name} contains NaN or infinite values")


_NON_NUMERIC_KINDS = {"U": "strings", "S": "bytes", "O": "objects"}


def labels(value: ArrayLike, name: str, length: int, device: torch.device) -> torch.Tensor:
    """A 1-D integer label vector of the given length as an int64 tensor on ``device``.

    Strings, objects, floats and booleans raise ``ValueError`` naming ``name``: map identity or
    camera names to integers first (e.g. ``np.unique(names, return_inverse=True)[1]``).
    """
    if not isinstance(value, np.ndarray | torch.Tensor):
        try:
            value = np.asarray(value)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{name} must be a 1-D sequence of integer labels, got {type(value).__name__}") from err
    problem = _label_dtype_problem(value)
    if problem is not None:
        raise ValueError(
            f"{name} must hold integer labels, got {problem}; map names to integers first, "
            "e.g. np.unique(names, return_inverse=True)[1]"
        )
    tensor = as_tensor(value, name)
    if tensor.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(tensor.shape)}")
    if tensor.numel() != length:
        raise ValueError(f"{name} has {tensor.numel()} entries but {length} were expected")
    return tensor.to(device=device, dtype=torch.int64)


def _label_dtype_problem(value: np.ndarray | torch.Tensor) -> str | None:
    """What is wrong with the element type of a label array, or ``None`` for integers."""
    if isinstance(value, torch.Tensor):
        dtype = value.dtype
        return None if not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool) else f"dtype {dtype}"
    if value.dtype.kind in "iu":
        return None
    kind = _NON_NUMERIC_KINDS.get(value.dtype.kind)
    if kind is None:
        return f"dtype {value.dtype}"
    return f"{kind} such as {value.flat[0]!r}" if value.size else kind


def choice(value: str, name: str, allowed: Iterable[str]) -> str:
    """``value`` when it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def rows_per_chunk(num_cols: int, bytes_per_element: int, max_chunk_bytes: int) -> int:
    """How many rows of ``num_cols`` elements fit in ``max_chunk_bytes`` of working memory (at least 1)."""
    positive_int(max_chunk_bytes, "max_chunk_bytes")
    return max(1, int(max_chunk_bytes) // max(1, num_cols * bytes_per_element))
