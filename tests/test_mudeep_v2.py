"""MuDeep v2: shapes, parameter counts, the γ = 0 start, flip TTA, the loss, the official checkpoint, a tiny run."""

import copy
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from reid_fakes import fake_dataset

from reidlab.data.pass_sampler import IdentityPassSampler
from reidlab.engine import extract_features
from reidlab.losses.mudeep import MuDeepLoss
from reidlab.methods import get_preset, run
from reidlab.models import create_model, load_official_checkpoint


def small(**kwargs):
    torch.manual_seed(0)
    return create_model("mudeep_v2_resnet18", pretrained=False, **kwargs)


@pytest.fixture(scope="module")
def r50():
    torch.manual_seed(0)
    return create_model("mudeep_v2_resnet50", num_classes=751, pretrained=False)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_are_those_of_the_paper_model(r50):
    classifiers = sum(count(h.classifier) for h in r50.heads)
    assert round(count(r50) / 1e6, 1) == 66.7  # training, 751 classes
    assert round((count(r50) - classifiers) / 1e6, 1) == 62.1  # test (no classifiers)
    parts = {name: round(count(getattr(r50, name)) / 1e6, 2) for name in ("trunk", "streams", "leader", "attention")}
    assert parts == {"trunk": 8.54, "streams": 31.51, "leader": 3.15, "attention": 6.29}
    assert [round(count(s) / 1e6, 2) for s in r50.streams] == [6.04, 10.5, 14.96]
    assert r50.embed_dim == 6144 and len(r50.heads) == 12 and torch.equal(r50.gamma, torch.zeros(3))


def test_paper_model_shapes_and_a_batch_of_one(r50):
    r50.eval()
    with torch.no_grad():
        assert r50(torch.randn(1, 3, 96, 48)).shape == (1, 6144)  # no squeeze() dropping the batch axis
        maps = r50.forward_maps(torch.randn(2, 3, 96, 48))
    assert [tuple(x.shape) for x in maps["streams"]] == [(2, 2048, 6, 3)] * 3  # stride 16: layer4 at stride 1
    assert tuple(maps["leader"].shape) == (2, 512, 6, 3)
    assert [tuple(a.shape) for a in maps["affinity"]] == [(2, 2048, 2048)] * 3  # channel affinity


@pytest.mark.parametrize("attention", ["channel", "spatial", "none"])
def test_small_model_shapes_in_train_and_eval_mode(attention):
    model = small(num_classes=7, attention=attention)
    images = torch.randn(3, 3, 64, 32)
    out = model.train()(images)
    assert out["logits"].shape == (3, 12, 7) and out["features"].shape == (3, 3, 128)
    with torch.no_grad():
        descriptor = model.eval()(images)
        assert descriptor.shape == (3, 12 * 128) and (descriptor >= 0).all()  # post-ReLU embeddings
        maps = model.forward_maps(images)
    assert model.head_names[:5] == ["s1/global", "s1/stripe0", "s1/stripe1", "s1/stripe2", "s2/global"]
    if attention == "spatial":
        assert [tuple(a.shape) for a in maps["affinity"]] == [(3, 8, 8)] * 3  # 4×2 positions
    assert len(maps["streams"]) == 3 and len(model.streams[2]) == 3  # ResNet-18: stream 3 repeats the last block


def test_gamma_zero_is_the_plain_multi_scale_network():
    attended = small(num_classes=5)
    plain = small(num_classes=5, attention="none")
    missing, unexpected = plain.load_state_dict(attended.state_dict(), strict=False)
    assert not missing and {k.split(".")[0] for k in unexpected} == {"leader", "attention", "gamma"}
    images = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(attended.eval()(images), plain.eval()(images))
    for model in (attended, plain):
        torch.manual_seed(3)  # the same dropout masks
        model.train()
        model.out = model(images)
    assert torch.equal(attended.out["logits"], plain.out["logits"])
    # the gates learn from the start, and once open the leader changes the descriptor
    attended.out["features"].sum().backward()
    assert attended.gamma.grad is not None and attended.gamma.grad.abs().sum() > 0
    with torch.no_grad():
        attended.gamma.fill_(0.5)
        assert not torch.allclose(attended.eval()(images), plain.eval()(images))


def test_scaled_attention_divides_the_logits():
    model = small(scaled_attention=True)
    attend = model.attention[0]
    leader, value = torch.randn(2, 128, 4, 2), torch.randn(2, 512, 4, 2)
    _, affinity = attend(leader, value)
    q, k = attend.query(leader).flatten(2), attend.key(leader).flatten(2)
    expected = (q @ k.transpose(1, 2) / 8**0.5).softmax(-1)  # N = 8 positions contracted
    assert torch.allclose(affinity, expected, atol=1e-6)


def test_flip_tta_is_the_mean_of_the_two_passes():
    model = small(num_classes=4).eval()
    with torch.no_grad():
        model.gamma.fill_(0.3)
    images = torch.randn(5, 3, 64, 32)
    batches = [{"image": images[:3], "pid": torch.arange(3), "camid": torch.zeros(3), "index": torch.arange(3)},
               {"image": images[3:], "pid": torch.arange(3, 5), "camid": torch.ones(2), "index": torch.arange(3, 5)}]
    got = extract_features(model, batches, "cpu", flip=True)["features"]
    with torch.no_grad():
        expected = (model(images) + model(images.flip(-1))) / 2
    assert torch.allclose(got, expected, atol=1e-6)


def block_triplet(features: torch.Tensor, p: int, k: int, margin: float) -> torch.Tensor:
    """The official TripHard on a P×K block layout, written out with loops."""
    f = features / features.norm(dim=1, keepdim=True)
    losses = []
    for a in range(p * k):
        d = [((f[a] - f[b]) ** 2).sum().add(1e-8).sqrt() for b in range(p * k)]
        block = a // k
        pos = max(d[b] for b in range(block * k, (block + 1) * k))
        neg = min(d[b] for b in range(p * k) if b // k != block)
        losses.append(torch.clamp(pos - neg + margin, min=0))
    return torch.stack(losses).mean()


def test_loss_is_twice_the_per_scale_mean_ce_plus_the_normalised_triplets():
    p, k, heads, classes = 3, 2, 12, 5
    labels = torch.arange(p).repeat_interleave(k)
    logits, features = torch.randn(p * k, heads, classes), torch.rand(p * k, 3, 16)
    total, parts = MuDeepLoss()(dict(logits=logits, features=features), {"pid": labels})
    ce = sum(F.cross_entropy(logits[:, h], labels) for h in range(heads)) / 4
    triplet = sum(block_triplet(features[:, s], p, k, margin=1.0) for s in range(3))
    assert torch.allclose(parts["id"], ce, atol=1e-5) and torch.allclose(parts["triplet"], triplet, atol=1e-5)
    assert torch.allclose(total, 2 * ce + triplet, atol=1e-5)


def test_identity_pass_sampler_sees_every_identity_passes_times_k():
    pids = [0] * 10 + [1] * 2 + [2] * 6 + [3] * 7  # identity 1 has fewer than K images: drawn with replacement
    sampler = IdentityPassSampler(pids, p=2, k=3, passes=2, seed=5)
    batches = sampler.epoch_batches(0)
    assert batches.shape == (4, 6)  # 4 identities x 2 passes x 3 images = 24 = 4 batches of 6
    drawn = [pids[i] for i in batches.reshape(-1)]
    assert all(drawn.count(pid) == 6 for pid in range(4))
    first_pass = batches.reshape(-1)[:12].reshape(4, 3)  # each identity's 3 images form one block
    assert all(len({pids[i] for i in block}) == 1 for block in first_pass)
    assert (sampler.epoch_batches(0) == IdentityPassSampler(pids, 2, 3, 2, seed=5).epoch_batches(0)).all()
    assert not (sampler.epoch_batches(1) == batches).all()
    with pytest.raises(ValueError, match="passes >= 1"):
        IdentityPassSampler(pids, 2, 3, passes=0)


@pytest.mark.parametrize("fast", [True, False])
def test_pass_loader_batches_whole_passes_on_both_data_paths(tmp_path, monkeypatch, fast):
    from reidlab.methods.mudeep_v2 import pass_loader

    monkeypatch.setenv("REIDLAB_DATA", str(tmp_path / "cache_root"))  # the fast path's decode cache
    fake = fake_dataset(tmp_path / "data", num_ids=4, per_id=3)
    preset = get_preset("mudeep_v2", "smoke", image_size=(32, 16), batch_p=2, batch_k=4, sampler_passes=3,
                        fast_data=fast, progress=False)  # fmt: skip
    loader = pass_loader(preset, fake.train, torch.device("cpu"))
    batches = list(loader)
    assert len(batches) == len(loader) == 4 * 3 * 4 // 8
    assert all(b["image"].shape == (8, 3, 32, 16) for b in batches)
    pids = torch.cat([b["pid"] for b in batches])
    assert all(int((pids == p).sum()) == 12 for p in range(4))  # every identity: 3 passes x K = 4 images


def test_presets_state_the_official_recipe():
    full = get_preset("mudeep_v2", "full")
    assert (full.image_size, full.batch_p, full.batch_k, full.sampler_passes) == ((384, 192), 12, 6, 3)
    assert (full.optimizer, full.nesterov, full.lr, full.weight_decay) == ("sgd", True, 0.009, 5e-4)
    assert full.lr_factors == {"heads.": 10.0, "attention.": 10.0} and full.warmup_epochs == 0
    assert (full.epochs, full.milestones, full.triplet_margin, full.flip_tta) == (160, (80,), 1.0, True)
    assert (full.padding, full.erasing_mode, full.erasing_area, full.interpolation) == (0, "zero", (0.02, 0.4),
                                                                                         "bicubic")  # fmt: skip
    with pytest.raises(ValueError, match=r"MuDeepV2Preset\.attention"):
        get_preset("mudeep_v2", "smoke", attention="pixel")


# ---------------------------------------------------------------- the official checkpoint
class OfficialMuDeepV2(nn.Module):
    """The official ``MuDeep_v2`` module layout (its attribute names), with a test forward written from the spec."""

    def __init__(self, num_class: int) -> None:
        super().__init__()
        net = torchvision.models.resnet50(weights=None)
        net.layer4[0].conv2.stride = (1, 1)
        net.layer4[0].downsample[0].stride = (1, 1)
        self.conv = nn.Module()
        self.conv.conv, self.conv.bn = net.conv1, net.bn1
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        blocks = list(net.layer4)  # three unshared copies: 1, 2 and 3 blocks
        self.layer4_1 = copy.deepcopy(blocks[0])
        self.layer4_2 = nn.Sequential(*(copy.deepcopy(b) for b in blocks[:2]))
        self.layer4_3 = nn.Sequential(*(copy.deepcopy(b) for b in blocks))
        self.conv_all = nn.Module()
        self.conv_all.conv1, self.conv_all.bn1 = nn.Conv2d(6144, 512, 1, bias=False), nn.BatchNorm2d(512)
        for i in (1, 2, 3):
            att = nn.Module()
            for name in ("feature1", "feature2"):
                sub = nn.Module()
                sub.conv1 = nn.Conv2d(512, 2048, 1, bias=False)
                setattr(att, name, sub)
            setattr(self, f"atten{i}", att)
            for suffix in ("", "_1", "_2", "_3"):
                head = nn.Module()
                head.feature = nn.Module()
                head.feature.conv1, head.feature.bn = nn.Conv2d(2048, 512, 1, bias=False), nn.BatchNorm2d(512)
                head.classifier = nn.Module()
                head.classifier.fc = nn.Linear(512, num_class)
                setattr(self, f"scale{i}{suffix}", head)
            setattr(self, f"gamma{i}", nn.Parameter(torch.zeros(1)))

    def randomise(self, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        for name, tensor in self.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.startswith("gamma"):
                tensor.copy_(torch.rand(1, generator=g) * 0.5 + 0.2)  # open gates: the attention matters
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.1)
            elif name.endswith("weight") and tensor.ndim == 1:
                tensor.copy_(torch.rand(tensor.shape, generator=g) + 0.5)
            else:
                fan_in = max(tensor[0].numel(), 1)
                scale = 0.02 if ".feature1." in name or ".feature2." in name else (2.0 / fan_in) ** 0.5
                tensor.copy_(torch.randn(tensor.shape, generator=g) * scale)

    def descriptor(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: the 12 head outputs concatenated (scale 1 global, stripes 1-3; scale 2 ...; scale 3 ...)."""
        c = self.conv
        x = self.layer3(self.layer2(self.layer1(F.max_pool2d(F.relu(c.bn(c.conv(x))), 3, 2, 1))))
        xs = [self.layer4_1(x), self.layer4_2(x), self.layer4_3(x)]
        hg = F.relu(self.conv_all.bn1(self.conv_all.conv1(torch.cat(xs, 1))))
        outs = []
        for i, xi in enumerate(xs, start=1):
            att = getattr(self, f"atten{i}")
            q = att.feature1.conv1(hg).flatten(2)
            k = att.feature2.conv1(hg).flatten(2)
            a = torch.einsum("bcn,bdn->bcd", q, k).softmax(dim=2)
            y = getattr(self, f"gamma{i}") * torch.einsum("bcd,bdn->bcn", a, xi.flatten(2)).reshape(xi.shape) + xi
            rows = y.shape[2]
            pools = [y.mean(dim=(2, 3), keepdim=True)]
            for j in range(3):  # adaptive average pooling to 3 horizontal bins
                lo, hi = (j * rows) // 3, -((-(j + 1) * rows) // 3)
                pools.append(y[:, :, lo:hi].mean(dim=(2, 3), keepdim=True))
            for suffix, pooled in zip(("", "_1", "_2", "_3"), pools, strict=True):
                f = getattr(self, f"scale{i}{suffix}").feature
                outs.append(F.relu(f.bn(f.conv1(pooled))).flatten(1))
        return torch.cat(outs, dim=1)

    def test_feature(self, x: torch.Tensor) -> torch.Tensor:
        """The official test code: average with the flipped image, then L2-normalise."""
        ff = (self.descriptor(x) + self.descriptor(x.flip(-1))) / 2
        return ff / ff.norm(dim=1, keepdim=True)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory):
    official = OfficialMuDeepV2(num_class=5)
    official.randomise(seed=7)
    official.eval()
    path = tmp_path_factory.mktemp("official") / "market_160.pkl"
    state = {f"module.{k}": v for k, v in official.state_dict().items()}  # saved from nn.DataParallel
    torch.save({"epoch": 160, "state_dict": state, "optimizer": {"state": {}, "param_groups": []}}, path)
    return official, path


def test_official_checkpoint_gives_the_official_test_descriptor(official_file):
    official, path = official_file
    model = load_official_checkpoint(path, method="mudeep_v2")
    assert not model.training and model.num_classes == 5 and model.embed_dim == 6144
    assert model.preprocessing.image_size == (384, 192) and model.preprocessing.interpolation == "bicubic"
    images = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected_pass, expected = official.descriptor(images), official.test_feature(images)
        got_pass = model(images)
    assert got_pass.shape == (2, 6144) and expected_pass.abs().max() > 0
    assert torch.allclose(got_pass, expected_pass, atol=1e-4, rtol=1e-4), (got_pass - expected_pass).abs().max()
    batches = [{"image": images, "pid": torch.arange(2), "camid": torch.zeros(2), "index": torch.arange(2)}]
    got = F.normalize(extract_features(model, batches, "cpu", flip=True)["features"], dim=1)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_official_loader_names_what_does_not_fit(official_file, tmp_path):
    _, path = official_file
    state = torch.load(path, weights_only=True)["state_dict"]
    torch.save({k: v for k, v in state.items() if not k.startswith("module.atten2.")}, tmp_path / "no_atten2.pkl")
    with pytest.raises(ValueError, match=r"(?s)no_atten2.pkl.*does not fill: attention.1.key.weight"):
        load_official_checkpoint(tmp_path / "no_atten2.pkl", method="mudeep_v2")
    torch.save({**state, "module.gamma4": torch.zeros(1)}, tmp_path / "four.pkl")
    with pytest.raises(ValueError, match="no place in the lab's model: gamma4"):
        load_official_checkpoint(tmp_path / "four.pkl", method="mudeep_v2")
    torch.save({"base.conv1.weight": torch.zeros(1)}, tmp_path / "bot.pth")
    with pytest.raises(ValueError, match="not a naiq/MuDeep_v2 checkpoint"):
        load_official_checkpoint(tmp_path / "bot.pth", method="mudeep_v2")


# ---------------------------------------------------------------- a tiny run
def test_tiny_run_logs_the_gates_and_reports_its_test_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    fake = fake_dataset(tmp_path / "data", num_ids=6, per_id=4)
    settings = dict(image_size=(32, 16), batch_p=3, batch_k=2, epochs=2, max_iters_per_epoch=2, pretrained=False,
                    progress=False, dataset="fake", checkpoint_every=1, sampler_passes=2, fast_data=False,
                    flip_tta=True)  # fmt: skip
    result = run("mudeep_v2", data=fake, **settings)
    record = json.loads((result.run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["metrics"]["flip_tta"] is True
    history = result.history
    assert {"loss", "id", "triplet", "gamma/s1", "gamma/s2", "gamma/s3", "lr/model"} <= set(history.columns)
    assert (history[["gamma/s1", "gamma/s2", "gamma/s3"]].abs().to_numpy()[-1] > 0).all()  # the gates opened
    assert torch.equal(result.model.gamma.detach().abs() > 0, torch.ones(3, dtype=torch.bool))
    from reidlab.methods.mudeep_v2 import evaluate_ap_flavours

    ranks, feats = evaluate_ap_flavours(result.model, fake, result.preset)
    assert ranks["standard"].ap == "standard" and ranks["devkit"].ap == "devkit"
    assert feats["query"]["features"].shape[1] == 1536
    assert round(ranks["standard"].as_dict()["R1"], 4) == record["metrics"]["R1"]
    assert ranks["devkit"].as_dict()["R1"] == ranks["standard"].as_dict()["R1"]  # the AP flavour changes only AP
