"""Official checkpoints: a reid-strong-baseline ``Baseline`` state dict, written here with the official key names,
loads into the lab's BoT and gives the official test feature. The reference forward is written independently on
torchvision's ResNet (the layout the official ResNet shares), with the official quirk: no ReLU after the stem BN."""

import pytest
import torch
import torch.nn as nn
import torchvision

from reidlab.models import load_official_checkpoint
from reidlab.models.bot_official import infer_resnet_depth


class OfficialBaseline(nn.Module):
    """The official Baseline's test path: ResNet (no stem ReLU, last stride 1) -> GAP -> BN1d (bias frozen)."""

    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        resnet = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        del resnet.fc
        block = resnet.layer4[0]
        block.conv2.stride = (1, 1) if depth >= 50 else block.conv2.stride
        if depth < 50:
            block.conv1.stride = (1, 1)
        block.downsample[0].stride = (1, 1)
        self.base = resnet
        self.bottleneck = nn.BatchNorm1d(resnet.layer4[-1].conv1.in_channels if depth < 50 else 2048)
        self.classifier = nn.Linear(self.bottleneck.num_features, num_classes, bias=False)

    def randomise(self, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        for name, tensor in self.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.1)
            elif name.endswith("weight") and tensor.ndim == 1:
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * (2.0 / max(tensor[0].numel(), 1)) ** 0.5)

    def forward(self, x):
        b = self.base
        x = b.maxpool(b.bn1(b.conv1(x)))  # the official ResNet: no ReLU after the stem BN
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return self.bottleneck(x.mean(dim=(2, 3)))  # TEST.NECK_FEAT 'after'


@pytest.mark.parametrize("depth,wrap", [(18, "plain"), (50, "state_dict_module")])
def test_bot_official_checkpoint_gives_the_official_test_feature(tmp_path, depth, wrap):
    official = OfficialBaseline(depth, num_classes=7)
    official.randomise(seed=depth)
    official.eval()
    state = official.state_dict()
    if wrap == "state_dict_module":  # a DataParallel model saved inside a dict
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 120}
    path = tmp_path / f"bot_r{depth}.pth"
    torch.save(state, path)

    model = load_official_checkpoint(path, method="bot")
    assert not model.training and model.neck.num_classes == 7
    assert model.preprocessing.image_size == (256, 128) and model.preprocessing.interpolation == "bilinear"
    images = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = official(images)
        got = model(images)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_official_loader_errors_name_the_problem(tmp_path):
    official = OfficialBaseline(18, num_classes=5)
    state = official.state_dict()
    torch.save({**state, "extra.weight": torch.zeros(3)}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"(?s)extra.pth.*no place in the lab's model: extra.weight"):
        load_official_checkpoint(tmp_path / "extra.pth", method="bot")
    torch.save({k: v for k, v in state.items() if not k.startswith("bottleneck.")}, tmp_path / "noneck.pth")
    with pytest.raises(ValueError, match="does not fill: neck.bn"):
        load_official_checkpoint(tmp_path / "noneck.pth", method="bot")
    torch.save({"visual.proj": torch.zeros(2, 2)}, tmp_path / "clip.pth")
    with pytest.raises(ValueError, match="not a reid-strong-baseline Baseline"):
        load_official_checkpoint(tmp_path / "clip.pth", method="bot")
    with pytest.raises(ValueError, match="no official-checkpoint loader for method 'mudeep'"):
        load_official_checkpoint(tmp_path / "extra.pth", method="mudeep")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_official_checkpoint(tmp_path / "missing.pth", method="bot")


def test_a_pickled_model_object_is_refused_with_the_conversion_recipe(tmp_path):
    torch.save(nn.Linear(2, 2), tmp_path / "whole_model.pth")  # what the official trainer writes
    with pytest.raises(ValueError, match=r"(?s)whole_model.pth.*weights_only=True.*state_dict\(\)"):
        load_official_checkpoint(tmp_path / "whole_model.pth", method="bot")


def test_resnet_depth_is_read_from_the_block_counts():
    for depth in (18, 34, 50, 101):
        resnet = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        assert infer_resnet_depth({f"base.{k}": v for k, v in resnet.state_dict().items()}) == depth
