"""Model registry, last-stride change, BNNeck and the BoT model contract."""

import pytest
import torch
import torch.nn as nn

from reidlab.models import BNNeck, BoT, create_model, list_models, register_model, set_last_stride_one
from reidlab.models.backbones import resnet_backbone


def test_registry_lists_and_creates_bot_models():
    assert {"bot_resnet18", "bot_resnet50"} <= set(list_models("bot_*"))
    model = create_model("bot_resnet18", num_classes=5, pretrained=False)
    assert isinstance(model, BoT)
    assert model.model_spec == {"name": "bot_resnet18", "kwargs": {"num_classes": 5, "pretrained": False}}


def test_registry_rejects_unknown_and_duplicate_names():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        create_model("nope")

    def bot_resnet18():  # same name as a registered builder
        return nn.Identity()

    with pytest.raises(ValueError, match="already registered"):
        register_model(bot_resnet18)


def test_last_stride_one_doubles_the_final_map():
    x = torch.randn(1, 3, 64, 32)
    plain = resnet_backbone("resnet18", pretrained=False, last_stride=2)
    assert plain(x).shape[-2:] == (2, 1)
    for name in ("resnet18", "resnet50"):  # basic blocks (stride in conv1) and bottlenecks (stride in conv2)
        reid = resnet_backbone(name, pretrained=False, last_stride=1)
        out = reid(x)
        assert out.shape[-2:] == (4, 2) and out.shape[1] == reid.num_features


def test_set_last_stride_fails_clearly_without_a_stage():
    with pytest.raises(ValueError, match="no residual stage 'layer4'"):
        set_last_stride_one(nn.Sequential(nn.Conv2d(3, 3, 3)))


def test_bnneck_frozen_zero_bias_and_small_classifier():
    torch.manual_seed(0)
    neck = BNNeck(256, 1000)
    assert not neck.bn.bias.requires_grad and torch.all(neck.bn.bias == 0)
    assert torch.all(neck.bn.weight == 1)
    assert neck.classifier.bias is None
    assert abs(neck.classifier.weight.std().item() - 0.001) < 1e-4
    feats = torch.randn(8, 256)
    bn, logits = neck(feats)
    assert bn.shape == (8, 256) and logits.shape == (8, 1000)
    logits.sum().backward()
    assert neck.bn.bias.grad is None and neck.bn.weight.grad is not None


def test_bot_train_outputs_and_eval_embedding():
    torch.manual_seed(0)
    model = create_model("bot_resnet18", num_classes=7, pretrained=False)
    images = torch.randn(4, 3, 64, 32)
    out = model.train()(images)
    assert set(out) == {"logits", "features"}
    assert out["logits"].shape == (4, 7) and out["features"].shape == (4, 512)
    model.eval()
    emb = model(images, camids=torch.zeros(4, dtype=torch.long))
    assert isinstance(emb, torch.Tensor) and emb.shape == (4, 512)
    # "after": the embedding is the BN of the pooled features (eval BN = running stats)
    pooled = model.forward_features(images).mean(dim=(2, 3))
    assert torch.allclose(emb, model.neck.bn(pooled), atol=1e-6)
    before = create_model("bot_resnet18", num_classes=7, pretrained=False, neck_feat="before")
    before.load_state_dict(model.state_dict())
    assert torch.allclose(before.eval()(images), pooled, atol=1e-6)


def test_bot_without_classes_is_eval_only():
    model = create_model("bot_resnet18", pretrained=False)
    with pytest.raises(RuntimeError, match="num_classes=0"):
        model.train()(torch.randn(2, 3, 32, 16))


def test_pretrained_auto_warns_once_and_true_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="resnet18"):
        create_model("bot_resnet18", pretrained=True)
