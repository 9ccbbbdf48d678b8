"""Weight files: corrupt files name themselves; another architecture's weights never load silently."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch

from reidlab import weights
from reidlab.weights import PartialWeightsWarning, WeightFileError, WeightMismatchError, load_into, load_state_dict


def resnet18() -> torch.nn.Module:
    return timm.create_model("resnet18", pretrained=False, num_classes=0)


# --------------------------------------------------------------------------- 7. corrupt files
@pytest.mark.parametrize("name", ["resnet18.safetensors", "resnet18.pth"])
def test_corrupt_weight_file_error_names_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x00\x01garbage, not a weight file" * 3)
    with pytest.raises(WeightFileError, match=f"cannot read weight file {path}"):
        load_state_dict(path)
    with pytest.raises(ValueError, match=str(path)):  # WeightFileError is a ValueError
        load_into(resnet18(), path)


def test_truncated_safetensors_names_the_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in resnet18().state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(WeightFileError, match=f"{path}.*truncated or corrupt"):
        load_state_dict(path)


def test_weight_file_that_is_not_a_state_dict_names_the_file(tmp_path):
    torch.save([torch.zeros(2)], tmp_path / "list.pth")
    with pytest.raises(ValueError, match=r"list.pth: expected a state dict, found list"):
        load_state_dict(tmp_path / "list.pth")


# --------------------------------------------------------------------------- 8. other architecture
def test_another_architecture_is_refused_by_default_with_the_differences(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(timm.create_model("resnet50", pretrained=False, num_classes=0).state_dict(), path)
    model = resnet18()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightMismatchError) as err:
        load_into(model, path)
    message = str(err.value)
    assert str(path) in message and "ResNet" in message
    assert "unexpected keys (" in message and "layer1.0.conv3.weight" in message
    assert "shape mismatches (" in message and "layer1.0.conv1.weight: file (64, 64, 1, 1) vs model (64, 64, 3, 3)" \
        in message
    assert "... and " in message  # long lists are truncated with a count
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed although loading was refused"


def test_a_file_with_one_tensor_is_missing_keys_strict_and_a_small_fraction_when_not(tmp_path):
    model = resnet18()
    path = tmp_path / "only_conv1.pth"
    torch.save({"conv1.weight": torch.ones_like(model.conv1.weight)}, path)
    with pytest.raises(WeightMismatchError, match=r"(?s)only_conv1.pth.*missing keys \(\d+\): bn1\.weight, bn1\.bias"):
        load_into(model, path)
    with pytest.warns(PartialWeightsWarning, match=r"(?s)only_conv1.pth.*1 of \d+ tensors.*missing keys") as record:
        report = load_into(model, path, strict=False)
    assert "% of the model's tensor elements" in str(record[0].message)
    assert torch.equal(model.conv1.weight, torch.ones_like(model.conv1.weight))
    assert report.tensors_loaded == 1 and report.missing and not report.unexpected
    total = sum(v.numel() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert report.fraction_loaded == pytest.approx(model.conv1.weight.numel() / total)
    assert report.record() == {"file": str(path), "source": "release", "tensors_loaded": 1,
                               "tensors_total": report.tensors_total, "fraction_loaded": report.fraction_loaded}


def test_non_strict_loads_matching_tensors_and_lists_unexpected_keys(tmp_path):
    source = resnet18()
    state = dict(source.state_dict())
    state["extra.weight"] = torch.zeros(3)
    state["layer4.1.bn2.weight"] = torch.zeros(7)  # wrong shape
    torch.save(state, tmp_path / "w.pth")
    model = resnet18()
    with pytest.warns(PartialWeightsWarning, match=r"(?s)unexpected keys \(1\): extra.weight.*shape mismatches \(1\)"):
        report = load_into(model, tmp_path / "w.pth", strict=False)
    assert torch.equal(model.conv1.weight, source.conv1.weight)
    assert report.unexpected == ["extra.weight"] and [m[0] for m in report.mismatched] == ["layer4.1.bn2.weight"]
    assert 0.99 < report.fraction_loaded < 1


def test_skip_prefixes_are_neither_missing_nor_unexpected(tmp_path):
    source = timm.create_model("resnet18", pretrained=False, num_classes=10)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}  # old format
    torch.save(state, tmp_path / "with_head.pth")
    headless = resnet18()  # no fc: the file's fc.* would be unexpected without skip_prefixes
    with pytest.raises(WeightMismatchError, match=r"unexpected keys \(2\): fc.weight, fc.bias"):
        load_into(headless, tmp_path / "with_head.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = load_into(headless, tmp_path / "with_head.pth", skip_prefixes=("fc.",))
    assert report.fraction_loaded == 1.0 and report.tensors_loaded == report.tensors_total
    other_head = timm.create_model("resnet18", pretrained=False, num_classes=3)  # fc of another shape, skipped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_into(other_head, tmp_path / "with_head.pth", skip_prefixes=("fc.",))
    assert torch.equal(other_head.layer1[0].conv1.weight, source.layer1[0].conv1.weight)


def test_no_matching_tensor_is_an_error_in_both_modes(tmp_path):
    torch.save({"unrelated.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    for strict in (True, False):
        with pytest.raises(ValueError, match=r"bad.pth: no tensor matches ResNet"):
            load_into(resnet18(), tmp_path / "bad.pth", strict=strict)


def test_timm_backbone_records_which_weights_were_used(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    assert weights.load_timm_backbone("resnet18", pretrained=False, num_classes=0).pretrained_weights is None
    torch.save(timm.create_model("resnet50", pretrained=False, num_classes=0).state_dict(), tmp_path / "resnet18.pth")
    with pytest.raises(WeightMismatchError, match="resnet18.pth"):
        weights.load_timm_backbone("resnet18", pretrained=True, num_classes=0)
    with pytest.warns(PartialWeightsWarning):
        partial = weights.load_timm_backbone("resnet18", pretrained=True, strict=False, num_classes=0)
    record = partial.pretrained_weights
    assert record["file"] == str(tmp_path / "resnet18.pth") and record["tensors_loaded"] < record["tensors_total"]
    assert 0 < record["fraction_loaded"] < 1
    torch.save(resnet18().state_dict(), tmp_path / "resnet18.pth")
    full = weights.load_timm_backbone("resnet18", pretrained=True, num_classes=0)
    assert full.pretrained_weights["fraction_loaded"] == 1.0
    assert full.pretrained_weights["tensors_loaded"] == full.pretrained_weights["tensors_total"]


def test_auto_prefers_release_files_then_lab_weights_and_says_which(tmp_path, capsys):
    import timm
    from safetensors.torch import save_file

    weights._warned.discard("resnet18")
    source = timm.create_model("resnet18", pretrained=False, num_classes=0)
    lab = weights.lab_weight_file("resnet18", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no lab weights for 'resnet18'.*reidlab.pretrain --model resnet18"):
        weights.resolve_weights("resnet18", "lab", folder=tmp_path)
    lab.parent.mkdir()
    save_file(source.state_dict(), str(lab))
    assert weights.resolve_weights("resnet18", "auto", folder=tmp_path) == lab
    assert weights.resolve_weights("resnet18", "lab", folder=tmp_path) == lab
    assert "the lab's synthetic pretraining" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="pretrained='lab'"):
        weights.resolve_weights("resnet18", True, folder=tmp_path)
    release = tmp_path / "resnet18.safetensors"
    save_file(source.state_dict(), str(release))
    assert weights.resolve_weights("resnet18", "auto", folder=tmp_path) == release
    assert "release weights" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pretrained must be"):
        weights.resolve_weights("resnet18", "imagenet", folder=tmp_path)
