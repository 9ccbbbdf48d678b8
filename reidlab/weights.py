"""Pretrained-weight resolution: local files only, clear errors offline, never a network retry.

Weights live in one folder, ``REIDLAB_WEIGHTS`` (default ``data/weights/``). A name resolves to
the first file found among its known file names (the files the original releases ship) or
``<name>.{safetensors,pth,pt,bin}``; the lab's own small pretrained weights (made on the synthetic
world by ``python -m reidlab.pretrain``, see :mod:`reidlab.pretrain`) are ``lab/<name>.safetensors``
beside their model card ``lab/<name>.json``. ``pretrained`` takes four values:

* ``False`` — random initialisation, nothing is looked up;
* ``"auto"`` — a real release file if present, else the lab's weights, else random initialisation with a
  warning; the choice is always said once per name;
* ``True`` — a real release file required; a missing file fails at once naming the file and folder;
* ``"lab"`` — the lab's weights required (a missing file names the command that makes them).

A file found is loaded strictly by default: weights of another architecture or variant raise,
listing what differs (``strict=False`` loads the matching part with a warning). A model built by
:func:`load_timm_backbone` records which file it got in ``model.pretrained_weights``.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from reidlab.paths import weights_dir

Pretrained = bool | Literal["auto", "lab"]
LAB_FOLDER = "lab"

#: File names of the weights the seed papers use, per model name (first match wins).
KNOWN_WEIGHT_FILES: dict[str, tuple[str, ...]] = {
    "resnet50": (
        "resnet50.safetensors",
        "resnet50-19c8e357.pth",
        "resnet50-0676ba61.pth",
        "resnet50_a1_0-14fe96d1.pth",
    ),
    "resnet18": ("resnet18.safetensors", "resnet18-5c106cde.pth", "resnet18-f37072fd.pth"),
    "resnet50_ibn_a": ("resnet50_ibn_a.pth", "resnet50_ibn_a-d9d0bb7b.pth"),
    "vit_base_patch16_224": ("jx_vit_base_p16_224-80ecf9dd.pth", "vit_base_patch16_224.safetensors"),
    "vit_small_patch16_224": ("vit_small_p16_224-15ec54c9.pth", "vit_small_patch16_224.safetensors"),
    "deit_base_patch16_224": ("deit_base_distilled_patch16_224-df68dfff.pth",),
    # TransReID's DeiT-S configs use the distilled file (its distillation token and head are skipped on loading)
    "deit_small_patch16_224": ("deit_small_distilled_patch16_224-649709d9.pth", "deit_small_patch16_224-cd65a155.pth"),
    "beit_base_patch16_224": ("beit_base_patch16_224_pt22k.pth", "beit_base_patch16_224_pt22k_ft22k.pth"),
    "data2vec_vision_base": ("data2vec_vision_base_pt.pth", "base_pt.pth"),
    "ViT-B-16": ("ViT-B-16.pt",),  # OpenAI CLIP
    "RN50": ("RN50.pt",),  # OpenAI CLIP
}

_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin")
_warned: set[str] = set()
_announced: set[tuple[str, str]] = set()
_recorders: list[dict[str, dict[str, object]]] = []


def candidate_files(name: str) -> list[str]:
    """File names that would satisfy ``name``, in lookup order."""
    known = list(KNOWN_WEIGHT_FILES.get(name, ()))
    return known + [f"{name}{ext}" for ext in _EXTENSIONS if f"{name}{ext}" not in known]


def lab_weight_file(name: str, folder: str | Path | None = None) -> Path:
    """Where the lab's own pretrained weights for ``name`` live (``<weights>/lab/<name>.safetensors``)."""
    return (Path(folder) if folder is not None else weights_dir()) / LAB_FOLDER / f"{name}.safetensors"


def _announce(name: str, path: Path, source: str) -> None:
    if (name, str(path)) not in _announced:
        _announced.add((name, str(path)))
        print(f"weights for {name!r}: {path} ({source})", file=sys.stderr)


def weights_identity(path: Path | None) -> str:
    """What a resolution gave, comparable across machines: ``"random initialisation"``, or the file's name
    (``lab/<name>.safetensors`` for the lab's), its size and, for lab weights, the SHA-256 of their card."""
    if path is None:
        return "random initialisation"
    label = f"{LAB_FOLDER}/{path.name}" if path.parent.name == LAB_FOLDER else path.name
    label += f" ({path.stat().st_size} bytes"
    card = path.with_suffix(".json")
    if path.parent.name == LAB_FOLDER and card.is_file():
        try:
            label += f", sha256 {str(json.loads(card.read_text()).get('sha256', '?'))[:16]}"
        except (OSError, ValueError):
            label += ", unreadable card"
    return label + ")"


@contextmanager
def recording_resolutions() -> Iterator[dict[str, dict[str, object]]]:
    """Collects every weight resolution made inside the block: ``{name: {"pretrained": value, "weights":
    weights_identity(...)}}``; :func:`changed_resolutions` later says whether the same calls resolve the same."""
    found: dict[str, dict[str, object]] = {}
    _recorders.append(found)
    try:
        yield found
    finally:
        _recorders.remove(found)


def changed_resolutions(recorded: dict[str, dict[str, object]], folder: str | Path | None = None) -> dict[str, tuple]:
    """``{name: (then, now)}`` for each recorded resolution that would now give other weights (a lab or release
    file made, replaced or removed since)."""
    root = Path(folder) if folder is not None else weights_dir()
    changed = {}
    for name, entry in recorded.items():
        now = weights_identity(_locate(name, entry.get("pretrained", "auto"), root))  # type: ignore[arg-type]
        if now != entry.get("weights"):
            changed[name] = (entry.get("weights"), now)
    return changed


def _locate(name: str, pretrained: Pretrained, root: Path) -> Path | None:
    """The file ``resolve_weights`` takes, or ``None``: no message, warning or error."""
    if pretrained is False:
        return None
    lab = lab_weight_file(name, root)
    if pretrained == "lab":
        return lab if lab.is_file() else None
    for file_name in candidate_files(name):
        if (root / file_name).is_file():
            return root / file_name
    return lab if pretrained == "auto" and lab.is_file() else None


def resolve_weights(name: str, pretrained: Pretrained = "auto", folder: str | Path | None = None) -> Path | None:
    """Path of the weight file for ``name`` (see the module docstring), or ``None`` for random initialisation."""
    path = _resolve(name, pretrained, folder)
    for found in _recorders:
        found[name] = {"pretrained": pretrained, "weights": weights_identity(path)}
    return path


def _resolve(name: str, pretrained: Pretrained, folder: str | Path | None) -> Path | None:
    if pretrained not in (True, False, "auto", "lab"):
        raise ValueError(f"pretrained must be True, False, 'auto' or 'lab', got {pretrained!r}")
    root = Path(folder) if folder is not None else weights_dir()
    path, lab = _locate(name, pretrained, root), lab_weight_file(name, root)
    if pretrained is False:
        return None
    card = lab.with_suffix(".json").name
    make = f"make them with `python -m reidlab.pretrain --model {name}`"
    if pretrained == "lab" and path is None:
        raise FileNotFoundError(f"no lab weights for {name!r}: {lab} is missing; {make}")
    if path is not None:
        if path != lab and pretrained == "auto":
            _announce(name, path, "release weights")
        elif path == lab:
            prefix = "" if pretrained == "lab" else "no release file; "
            _announce(name, lab, f"{prefix}the lab's synthetic pretraining; card {card}")
        return path
    expected = ", ".join(candidate_files(name)[:4])
    message = f"no pretrained weights for {name!r} in {root} (expected one of: {expected})"
    if pretrained is True:
        raise FileNotFoundError(
            f"{message}. Put the file there or set REIDLAB_WEIGHTS to the folder holding it; "
            "reidlab never downloads weights at run time (pretrained='lab' takes the lab's own weights)."
        )
    if name not in _warned:
        _warned.add(name)
        warnings.warn(f"{message} and no lab weights ({make}); using random initialisation", stacklevel=3)
    return None


class WeightFileError(ValueError):
    """A weight file that cannot be read (truncated, corrupt, or not a weight file at all)."""


class WeightMismatchError(ValueError):
    """A weight file whose tensors do not fit the model (``load_into(..., strict=True)``)."""


class PartialWeightsWarning(UserWarning):
    """Only part of a model was loaded from a weight file (``load_into(..., strict=False)``)."""


HEAD_PREFIXES = ("fc.", "head.", "classifier.")
_SHOWN = 10  # entries shown per list in errors and warnings
# BatchNorm counters are absent from older releases (e.g. torchvision's resnet50-19c8e357.pth): never "missing".
_OPTIONAL_SUFFIX = "num_batches_tracked"


def _read_weight_file(path: Path) -> object:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weight file (safetensors or a torch checkpoint, ``weights_only=True``) into a flat state dict.

    Wrappers (``state_dict`` / ``model`` / ``module`` keys, ``module.`` / ``model.`` prefixes) are
    removed; non-tensor entries (metadata) are left out. An unreadable file raises
    :class:`WeightFileError` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    try:
        state = _read_weight_file(path)
    except Exception as error:  # noqa: BLE001 - every reader failure is re-raised with the file name
        raise WeightFileError(
            f"cannot read weight file {path} ({path.stat().st_size} bytes): {type(error).__name__}: {error}. "
            "The file may be truncated or corrupt (an interrupted download?); replace it."
        ) from error
    if hasattr(state, "state_dict"):  # a whole scripted module (e.g. OpenAI CLIP .pt)
        state = state.state_dict()
    for key in ("state_dict", "model", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
    return {k.removeprefix("module.").removeprefix("model."): v for k, v in state.items() if torch.is_tensor(v)}


@dataclass
class WeightLoadReport:
    """What :func:`load_into` copied from ``file`` into a model (keys under the skipped prefixes left out)."""

    file: str
    loaded: list[str]
    missing: list[str]  # model keys the file lacks (model order)
    unexpected: list[str]  # file keys the model lacks (file order)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, file shape, model shape)
    tensors_total: int
    fraction_loaded: float  # loaded elements / model elements

    @property
    def tensors_loaded(self) -> int:
        return len(self.loaded)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def record(self) -> dict[str, object]:
        """The run-record entry: ``{"file", "source", "tensors_loaded", "tensors_total", "fraction_loaded"}``
        (``source``: ``"lab"`` for the lab's own pretrained weights, else ``"release"``)."""
        source = "lab" if Path(self.file).parent.name == LAB_FOLDER else "release"
        return {"file": self.file, "source": source, "tensors_loaded": self.tensors_loaded,
                "tensors_total": self.tensors_total, "fraction_loaded": self.fraction_loaded}

    def differences(self) -> str:
        """Missing, unexpected and mismatched keys, one line each, long lists truncated with a count."""
        mismatched = [f"{k}: file {fs} vs model {ms}" for k, fs, ms in self.mismatched]
        parts = [("missing keys", self.missing), ("unexpected keys", self.unexpected),
                 ("shape mismatches", mismatched)]
        return "\n".join(f"  {title} ({len(items)}): {_shorten(items)}" for title, items in parts if items)


def _shorten(items: list[str]) -> str:
    more = f", ... and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def compare_state_dicts(
    own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], path: Path, skip_prefixes: tuple[str, ...]
) -> tuple[WeightLoadReport, dict[str, torch.Tensor]]:
    """The report of loading ``state`` into a model with state dict ``own``, and the tensors that fit."""
    model_keys = [k for k in own if not k.startswith(skip_prefixes)]
    file_keys = [k for k in state if not k.startswith(skip_prefixes)]
    usable = {k: state[k] for k in file_keys if k in own and tuple(state[k].shape) == tuple(own[k].shape)}
    counted = [k for k in model_keys if not k.endswith(_OPTIONAL_SUFFIX)]
    total = sum(own[k].numel() for k in counted)
    loaded = [k for k in counted if k in usable]
    report = WeightLoadReport(
        file=str(path),
        loaded=loaded,
        missing=[k for k in counted if k not in state],
        unexpected=[k for k in file_keys if k not in own],
        mismatched=[(k, tuple(state[k].shape), tuple(own[k].shape)) for k in file_keys if k in own and k not in usable],
        tensors_total=len(counted),
        fraction_loaded=sum(own[k].numel() for k in loaded) / total if total else 1.0,
    )
    return report, usable


def load_into(
    model: torch.nn.Module, path: str | Path, *, skip_prefixes: tuple[str, ...] = (), strict: bool = True
) -> WeightLoadReport:
    """Copy the tensors of weight file ``path`` into ``model``; returns what was loaded.

    Keys starting with ``skip_prefixes`` (classifier heads) are neither missing nor unexpected, and
    BatchNorm ``num_batches_tracked`` counters may be absent. ``strict=True`` raises
    :class:`WeightMismatchError` (naming the file, listing missing keys, unexpected keys and shape
    mismatches) before touching the model unless everything else fits; ``strict=False`` loads the
    tensors that fit and warns (:class:`PartialWeightsWarning`) with the same lists and the fraction
    of the model's tensor elements loaded. No tensor fitting at all is an error in both modes.
    """
    path = Path(path)
    report, usable = compare_state_dicts(model.state_dict(), load_state_dict(path), path, skip_prefixes)
    name = type(model).__name__
    if not usable:
        raise ValueError(f"{path}: no tensor matches {name}; is it the right weight file?\n{report.differences()}")
    summary = (f"{path}: {report.tensors_loaded} of {report.tensors_total} tensors of {name} match "
               f"({report.fraction_loaded:.2%} of the model's tensor elements)")
    if not report.complete and strict:
        raise WeightMismatchError(
            f"{summary}; refusing to load weights of another architecture or variant "
            f"(pass strict=False to load the matching part):\n{report.differences()}"
        )
    model.load_state_dict(usable, strict=False)
    if not report.complete:
        warnings.warn(f"{summary}; loaded those, the rest stays at initialisation:\n{report.differences()}",
                      PartialWeightsWarning, stacklevel=2)
    return report


def load_timm_backbone(
    model_name: str, pretrained: Pretrained = "auto", *, strict: bool = True, **timm_kwargs
) -> torch.nn.Module:
    """``timm.create_model`` with random init, then local weights when they resolve (never a download).

    ``strict`` is passed to :func:`load_into` (classifier heads are skipped). The returned model
    carries ``pretrained_weights``: :meth:`WeightLoadReport.record` of the file used, or ``None``
    for random initialisation.
    """
    import timm

    model = timm.create_model(model_name, pretrained=False, **timm_kwargs)
    path = resolve_weights(model_name, pretrained)
    report = None if path is None else load_into(model, path, skip_prefixes=HEAD_PREFIXES, strict=strict)
    model.pretrained_weights = None if report is None else report.record()
    return model
