"""Profiles, weights resolution, atomic I/O and device selection."""

import warnings

import pytest
import torch

from reidlab import io, weights
from reidlab.device import autocast, describe_device, pick_device
from reidlab.profiles import get_profile


def test_profiles_copy_and_override():
    smoke = get_profile("smoke", epochs=2, image_size=[32, 16])
    assert smoke.epochs == 2 and smoke.image_size == (32, 16)
    assert get_profile("smoke").epochs != 2, "overrides must not leak into the shared preset"
    full = get_profile("full")
    assert full.image_size == (256, 128) and full.batch_size == 64


def test_profiles_reject_unknown_names_and_fields():
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        get_profile("tiny")
    with pytest.raises(ValueError, match="epoch"):
        get_profile("smoke", epoch=3)


def test_weights_resolution_modes(tmp_path):
    assert weights.resolve_weights("resnet18", False, folder=tmp_path) is None
    with pytest.raises(FileNotFoundError) as err:
        weights.resolve_weights("resnet18", True, folder=tmp_path)
    assert "resnet18" in str(err.value) and str(tmp_path) in str(err.value)
    weights._warned.discard("resnet18")
    with pytest.warns(UserWarning, match="random initialisation"):
        assert weights.resolve_weights("resnet18", "auto", folder=tmp_path) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning is shown once per name
        assert weights.resolve_weights("resnet18", "auto", folder=tmp_path) is None
    with pytest.raises(ValueError, match="pretrained must be"):
        weights.resolve_weights("resnet18", "yes", folder=tmp_path)


def test_local_weights_are_loaded_without_network(tmp_path, monkeypatch):
    import timm

    source = timm.create_model("resnet18", pretrained=False, num_classes=0)
    torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "resnet18.pth")
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    loaded = weights.load_timm_backbone("resnet18", pretrained=True, num_classes=0)
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="no tensor matches"):
        weights.load_into(loaded, tmp_path / "bad.pth")


def test_atomic_save_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "ckpt.pth"
    io.atomic_torch_save({"w": torch.arange(3)}, target)
    assert torch.equal(io.safe_torch_load(target)["w"], torch.arange(3))

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        io.atomic_torch_save({"w": Boom()}, target)
    assert torch.equal(io.safe_torch_load(target)["w"], torch.arange(3)), "old checkpoint must survive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pth"], "no temporary file may remain"
    assert target.stat().st_mode & 0o044, "written files are readable by others like any normal file"
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        io.safe_torch_load(tmp_path / "missing.pth")


def test_device_helpers():
    device = pick_device()
    assert device.type in {"cpu", "cuda"}
    assert str(device) in describe_device(device)
    with autocast("cpu"):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda")
