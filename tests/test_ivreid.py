"""IV-ReID: model shapes and quirks, the loss (modality from labels, KL gradients per modality), the official checkpoint
against an independently written forward of the seed's model, SYSU galleries (official file / seeded), one model per
RegDB trial, and a tiny end-to-end run with the SYSU protocol tables."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

from reidlab.data import load_dataset
from reidlab.data.sysu_galleries import sysu_galleries
from reidlab.engine import StageInputs
from reidlab.losses.cross_modality import IVReIDLoss, kl_to_detached, modality_masks, mutual_kl
from reidlab.methods import get_preset, run
from reidlab.methods.cross_modality import (
    bot_baseline_preset,
    evaluate_regdb,
    evaluate_sysu,
    seed_table,
    train_regdb_trials,
)
from reidlab.methods.ivreid import build_ivreid, ivreid_stages, validation_split
from reidlab.models import create_model, load_official_checkpoint
from reidlab.profiles import get_profile
from reidlab.settings import SettingError
from reidlab.viz.modality_gap import modality_gap

TINY = dict(image_size=(32, 16), batch_p=2, batch_k=2, epochs=1, max_iters_per_epoch=2, pretrained=False,
            progress=False, fast_data=False, num_workers=0, eval_batch_size=32, checkpoint_every=0)  # fmt: skip


# ----------------------------------------------------------------------------- tiny on-disk datasets
def _image(path: Path, colour: np.ndarray, infrared: bool, rng: np.random.Generator) -> None:
    pixels = np.empty((16, 8, 3))
    pixels[:8], pixels[8:] = colour[0], colour[1]
    if infrared:
        pixels[:] = pixels.mean(axis=2, keepdims=True) * 0.8 + 30
    pixels += rng.normal(0, 8, pixels.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)


def write_sysu(root: Path, per_camera: int = 3) -> Path:
    """SYSU-MM01 layout: ids 1-6 train, 7-8 val, 9-12 test; ``per_camera`` images per identity and camera."""
    folder = root / "SYSU-MM01"
    rng = np.random.default_rng(0)
    for pid in range(1, 13):
        colour = rng.integers(0, 256, (2, 3))
        for camera in range(1, 7):
            for k in range(1, per_camera + 1):
                _image(folder / f"cam{camera}" / f"{pid:04d}" / f"{k:04d}.jpg", colour, camera in (3, 6), rng)
    (folder / "exp").mkdir()
    for name, ids in (("train", range(1, 7)), ("val", (7, 8)), ("test", range(9, 13))):
        (folder / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return folder


def write_regdb(root: Path, num_ids: int = 8, per_id: int = 3) -> Path:
    """RegDB layout with idx files; trial t trains on a different half of the identities."""
    folder = root / "RegDB"
    rng = np.random.default_rng(1)
    names: dict[str, list[tuple[str, int]]] = {"visible": [], "thermal": []}
    for pid in range(1, num_ids + 1):
        colour = rng.integers(0, 256, (2, 3))
        for spectrum, sub in (("visible", "Visible"), ("thermal", "Thermal")):
            for k in range(per_id):
                relative = f"{sub}/{pid}/{spectrum[0]}_{pid}_{k}.bmp"
                _image(folder / relative, colour, spectrum == "thermal", rng)
                names[spectrum].append((relative, pid))
    (folder / "idx").mkdir()
    for trial in range(1, 11):
        train = set(np.random.default_rng(trial).permutation(np.arange(1, num_ids + 1))[: num_ids // 2].tolist())
        for spectrum, entries in names.items():
            for split in ("train", "test"):
                lines = [f"{p} {pid}" for p, pid in entries if (pid in train) == (split == "train")]
                (folder / "idx" / f"{split}_{spectrum}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


# ----------------------------------------------------------------------------- model
def test_model_shapes_heads_and_quirk_options():
    model = create_model("ivreid_resnet18", num_classes=7, pretrained=False)
    assert model.bn.bias.requires_grad  # a learnable BN bias, not BNNeck's frozen one
    head = model.heads["rgb"]
    assert sum(p.numel() for p in head.parameters()) == 2 * 512 + (512 * 512 + 512) + (512 * 7 + 7)
    model.train()
    out = model(torch.randn(4, 3, 32, 16))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (4, 7), "features": (4, 512), "rgb_logits": (4, 7), "ir_logits": (4, 7)}  # fmt: skip
    model.eval()
    assert model(torch.randn(2, 3, 32, 16)).shape == (2, 512)
    assert isinstance(model.backbone.act1, nn.ReLU)
    assert all(m.bias is None for m in model.backbone.modules() if isinstance(m, nn.Conv2d))
    seed_like = create_model("ivreid_resnet18", num_classes=7, pretrained=False, stem_relu=False, conv_bias=True)
    assert isinstance(seed_like.backbone.act1, nn.Identity)
    assert all(m.bias is not None for m in seed_like.backbone.modules() if isinstance(m, nn.Conv2d))
    test_path = create_model("ivreid_resnet18", num_classes=7, pretrained=False, heads=False)
    assert test_path.heads is None and test_path.num_classes == 7
    with pytest.raises(ValueError, match="needs num_classes > 0"):
        create_model("ivreid_resnet18", num_classes=0, pretrained=False)


# ----------------------------------------------------------------------------- loss
def test_kl_gradients_reach_each_head_only_from_its_own_modality():
    gen = torch.Generator().manual_seed(0)
    rgb_logits = torch.randn(6, 5, generator=gen, requires_grad=True)
    ir_logits = torch.randn(6, 5, generator=gen, requires_grad=True)
    modality = torch.tensor([1, 0, 0, 1, 1, 0])
    rgb, ir = modality_masks(modality)
    mutual_kl(rgb_logits, ir_logits, rgb, ir).backward()
    assert torch.all(rgb_logits.grad[ir] == 0) and torch.all(rgb_logits.grad[rgb].abs().sum(1) > 0)
    assert torch.all(ir_logits.grad[rgb] == 0) and torch.all(ir_logits.grad[ir].abs().sum(1) > 0)

    # on the model: with only RGB samples the KL never reaches the IR head (it only teaches), and vice versa
    model = create_model("ivreid_resnet18", num_classes=5, pretrained=False).train()
    images = torch.randn(4, 3, 32, 16, generator=gen)
    for code, learner, teacher in ((0, "rgb", "ir"), (1, "ir", "rgb")):
        model.zero_grad(set_to_none=True)
        out = model(images)
        rgb, ir = modality_masks(torch.full((4,), code))
        mutual_kl(out["rgb_logits"], out["ir_logits"], rgb, ir).backward()
        assert all(p.grad is None or torch.all(p.grad == 0) for p in model.heads[teacher].parameters())
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads[learner].parameters())


def test_kl_reductions():
    student, teacher = torch.randn(4, 6), torch.randn(4, 6)
    batchmean = kl_to_detached(student, teacher, "batchmean")
    reference = (F.softmax(teacher, 1) * (F.log_softmax(teacher, 1) - F.log_softmax(student, 1))).sum() / 4
    assert torch.allclose(batchmean, reference, atol=1e-6)
    assert torch.allclose(kl_to_detached(student, teacher, "mean"), batchmean / 6, atol=1e-7)  # the seed's RegDB
    with pytest.raises(ValueError, match="batchmean"):
        IVReIDLoss(kl_reduction="sum")


def test_modality_comes_from_labels_so_a_shuffled_batch_gives_the_same_loss():
    gen = torch.Generator().manual_seed(3)
    model = create_model("ivreid_resnet18", num_classes=4, pretrained=False).train()
    loss = IVReIDLoss(triplet_margin=0.3)
    batch = {"image": torch.randn(8, 3, 32, 16, generator=gen), "pid": torch.tensor([0, 0, 1, 1, 0, 0, 1, 1]),
             "modality": torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])}  # fmt: skip
    total, parts = loss(model(batch["image"]), batch)
    order = torch.randperm(8, generator=gen)
    shuffled = {k: v[order] for k, v in batch.items()}
    total_shuffled, parts_shuffled = loss(model(shuffled["image"]), shuffled)
    assert torch.allclose(total, total_shuffled, atol=1e-4), (total, total_shuffled)
    for name in ("id", "id_rgb", "id_ir", "kl", "triplet"):
        assert torch.allclose(parts[name], parts_shuffled[name], atol=1e-4), name
    swapped = {**batch, "modality": 1 - batch["modality"]}  # same images and positions, other labels
    assert not torch.allclose(loss(model(batch["image"]), swapped)[1]["id_rgb"], parts["id_rgb"])
    as_strings = {**batch, "modality": ["rgb" if m == 0 else "ir" for m in batch["modality"].tolist()]}
    assert torch.allclose(loss(model(batch["image"]), as_strings)[0], total, atol=1e-4)
    with pytest.raises(KeyError, match="modality labels"):
        loss(model(batch["image"]), {"pid": batch["pid"]})
    with pytest.raises(ValueError, match="0 \\(rgb\\) or 1 \\(ir\\)"):
        modality_masks(torch.tensor([0, 2]))


# ----------------------------------------------------------------------------- official checkpoint
class SeedBaseline(nn.Module):
    """The seed's test path written independently: torchvision-layout ResNet with a bias on every convolution and no
    ReLU after the stem BN, last stride 1, GAP, ``bottleneck`` BN1d; ``share_classifier`` with a bias."""

    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        base = getattr(torchvision.models, f"resnet{depth}")(weights=None)
        del base.fc
        for conv in base.modules():
            if isinstance(conv, nn.Conv2d):
                conv.bias = nn.Parameter(torch.zeros(conv.out_channels))
        first = base.layer4[0]
        (first.conv2 if depth >= 50 else first.conv1).stride = (1, 1)
        first.downsample[0].stride = (1, 1)
        self.base = base
        dim = 2048 if depth >= 50 else 512
        self.bottleneck = nn.BatchNorm1d(dim)
        self.share_classifier = nn.Linear(dim, num_classes)

    def randomise(self, seed: int) -> None:
        """Random weights, conv biases and BN affines; residual-branch BN gains in [0.25, 0.5] keep the random
        network as well conditioned as a trained one (running statistics come from :meth:`calibrate`)."""
        g = torch.Generator().manual_seed(seed)
        for name, tensor in self.state_dict().items():
            if name.endswith(("num_batches_tracked", "running_mean", "running_var")):
                continue
            if name.endswith("weight") and tensor.ndim == 1:
                tensor.copy_(torch.rand(tensor.shape, generator=g) * 0.25 + 0.25)
            elif name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.3)
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * (2.0 / max(tensor[0].numel(), 1)) ** 0.5)

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Set every BN's running statistics to those of ``images`` (activations of order 1 throughout, as in a
        trained network; the conv biases are part of the running means, as in the seed's training)."""
        norms = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for bn in norms:
            bn.momentum = 1.0
        self.train()
        self(images)
        for bn in norms:
            bn.momentum = 0.1
        self.bottleneck.running_var.clamp_(min=1e-2)  # no near-constant channel amplifies fp32 rounding
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.base
        x = b.maxpool(b.bn1(b.conv1(x)))  # no ReLU after the stem BN
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return self.bottleneck(x.mean(dim=(2, 3)))  # the test feature (normalised by the seed's evaluator)


@pytest.mark.parametrize("depth,fold", [(18, True), (18, False), (50, True)])
def test_official_checkpoint_reproduces_the_seed_test_feature(tmp_path, depth, fold):
    seed = SeedBaseline(depth, num_classes=6)
    seed.randomise(depth)
    seed.calibrate(torch.randn(16, 3, 64, 32, generator=torch.Generator().manual_seed(2)))
    seed.eval()
    state = seed.state_dict()
    assert "base.layer1.0.conv1.bias" in state and "base.conv1.bias" in state  # the seed's key names
    path = tmp_path / f"ivreid_r{depth}.pth"
    torch.save(state, path)
    model = load_official_checkpoint(path, method="ivreid", fold_conv_bias=fold)
    assert not model.training and model.heads is None and model.num_classes == 6
    assert model.preprocessing.image_size == (384, 128) and model.preprocessing.interpolation == "bilinear"
    conv_biases = [m.bias is not None for m in model.backbone.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv_biases) if not fold else not any(conv_biases)
    images = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = seed(images), model(images)
    assert got.shape == expected.shape == (2, seed.bottleneck.num_features)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    assert torch.allclose(F.normalize(got), F.normalize(expected), atol=1e-4)


def test_official_checkpoint_with_heads_and_errors(tmp_path):
    seed = SeedBaseline(18, num_classes=5)
    heads = {}
    for modality in ("rgb", "ir"):  # IDENet's keys: rgb_bn, rgb_fc1, rgb_fc2, ir_bn, ir_fc1, ir_fc2
        for layer, shape in (("bn", (512,)), ("fc1", (512, 512)), ("fc2", (5, 512))):
            heads[f"{modality}_{layer}.weight"] = torch.randn(shape)
            heads[f"{modality}_{layer}.bias"] = torch.randn(shape[0])
        heads[f"{modality}_bn.running_mean"] = torch.randn(512)
        heads[f"{modality}_bn.running_var"] = torch.rand(512) + 0.5
        heads[f"{modality}_bn.num_batches_tracked"] = torch.tensor(10)
    torch.save({**seed.state_dict(), **{f"ide_net.{k}": v for k, v in heads.items()}}, tmp_path / "with_heads.pth")
    model = load_official_checkpoint(tmp_path / "with_heads.pth", method="ivreid")
    assert model.heads is not None and torch.equal(model.heads["ir"].fc2.weight, heads["ir_fc2.weight"])
    torch.save({**seed.state_dict(), "extra.weight": torch.zeros(2)}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"(?s)extra.pth.*no place in the lab's model: extra.weight"):
        load_official_checkpoint(tmp_path / "extra.pth", method="ivreid")
    no_bn = {k: v for k, v in seed.state_dict().items() if not k.startswith("bottleneck.")}
    torch.save(no_bn, tmp_path / "no_bn.pth")
    with pytest.raises(ValueError, match="USING_NORM 'no'"):
        load_official_checkpoint(tmp_path / "no_bn.pth", method="ivreid")
    torch.save(nn.Linear(2, 2), tmp_path / "pickled.pth")  # what torch.save(model) writes
    with pytest.raises(ValueError, match=r"(?s)weights_only=True.*state_dict\(\)"):
        load_official_checkpoint(tmp_path / "pickled.pth", method="ivreid")


# ----------------------------------------------------------------------------- presets and optimisation
def test_full_presets_are_the_seed_recipe_with_two_adam_groups(tmp_path):
    sysu = get_preset("ivreid", "full")
    regdb = get_preset("ivreid", get_profile("full", dataset="regdb"))
    assert (sysu.dataset, sysu.model, sysu.image_size, sysu.batch_p, sysu.batch_k, sysu.epochs) == (
        "sysu_mm01", "ivreid_resnet50", (384, 128), 8, 4, 100)  # fmt: skip
    assert (sysu.sampler, sysu.optimizer, sysu.lr, sysu.weight_decay, sysu.schedule) == (
        "cross_modality", "adam", 1e-4, 5e-4, "constant")  # fmt: skip
    assert sysu.lr_factors == {"heads.": 10.0} and sysu.erasing_p == 0 and sysu.interpolation == "bilinear"
    assert (sysu.triplet_margin, sysu.kl_reduction, sysu.validation) == (0.3, "batchmean", "sysu_val_id")
    assert (regdb.dataset, regdb.triplet_margin, regdb.validation, regdb.val_ids) == ("regdb", 0.2, "held_out", 20)
    assert regdb.regdb_trials == tuple(range(1, 11)) and regdb.kl_reduction == "batchmean"

    dataset = load_dataset("sysu_mm01", root=write_sysu(tmp_path))
    preset = sysu.replace(data_root=str(tmp_path), pretrained=False, image_size=(32, 16), batch_p=2, num_workers=0)
    model, loss = build_ivreid(preset, dataset)
    (stage,) = ivreid_stages(preset, dataset, model, loss)
    plan = stage.build(StageInputs(model=model, device=torch.device("cpu"), run_dir=None))
    groups = plan.optimizers["model"].param_groups
    assert isinstance(plan.optimizers["model"], torch.optim.Adam) and len(groups) == 2
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert by_lr[1e-3] == {id(p) for p in model.heads.parameters()}  # the heads at 10×
    assert all(g["weight_decay"] == 5e-4 for g in groups)
    assert plan.select_metric == "mAP" and plan.validate is not None  # on SYSU's val_id identities


# ----------------------------------------------------------------------------- data, validation, protocols
def test_sysu_galleries_come_from_the_official_file_when_present(tmp_path):
    from scipy.io import savemat

    dataset = load_dataset("sysu_mm01", root=write_sysu(tmp_path))
    seeded = sysu_galleries(dataset, trials=2)
    assert [(g.mode, g.shot, g.trial) for g in seeded][:3] == [("all", 1, 0), ("all", 1, 1), ("all", 10, 0)]
    assert all(g.source == "seeded" for g in seeded)
    again = load_dataset("sysu_mm01", root=dataset.root, mode="indoor", shot=1, trial=1)
    assert [s.path for s in seeded[5].samples] == [s.path for s in again.gallery]  # indoor, single, trial 1
    assert {s.camid for s in seeded[4].samples} == {0, 1}  # indoor: cameras 1, 2

    perm = np.empty((6, 1), dtype=object)
    rng = np.random.default_rng(0)
    for camera in range(6):
        per_id = np.empty((1, 12), dtype=object)
        for pid in range(12):
            per_id[0, pid] = np.stack([rng.permutation(3) + 1 for _ in range(10)]).astype(np.float64)
        perm[camera, 0] = per_id
    savemat(Path(dataset.root) / "exp" / "rand_perm_cam.mat", {"rand_perm_cam": perm})
    official = sysu_galleries(dataset, modes=("all",), shots=(1,), trials=3)
    assert all(g.source == "official" for g in official)
    first = official[2].samples  # trial 2: camera 1 then 2, 4, 5; test ids ascending within a camera
    expected = int(perm[0, 0][0, 8][2, 0])  # camera 1, id 9, trial 2, first number
    assert first[0].path.endswith(f"cam1/0009/{expected:04d}.jpg") and len(first) == 4 * 4
    with pytest.raises(ValueError, match="source must be"):
        sysu_galleries(dataset, source="matlab")


def test_validation_splits_hold_out_training_identities_across_modalities(tmp_path):
    dataset = load_dataset("sysu_mm01", root=write_sysu(tmp_path))
    preset = get_preset("ivreid", "smoke", dataset="sysu_mm01", validation="sysu_val_id")
    train, split = validation_split(preset, dataset)
    held = {s.original_pid for s in split.query}
    assert held == {7, 8} and not {s.original_pid for s in train} & held
    assert {s.modality for s in split.query} == {"ir"} and {s.modality for s in split.gallery} == {"rgb"}
    assert split.options["protocol"] == "regdb"
    held_out = get_preset("ivreid", "smoke", validation="held_out", val_ids=3)
    train, split = validation_split(held_out, dataset)
    assert len({s.pid for s in split.query}) == 3 and len({s.pid for s in train}) == 5
    with pytest.raises(SettingError, match="val_ids"):
        get_preset("ivreid", "smoke", val_ids=3)  # a Market-style split would mix the modalities
    with pytest.raises(SettingError, match="kl_reduction"):
        get_preset("ivreid", "smoke", kl_reduction="sum")


def test_one_model_per_regdb_trial(tmp_path, runs_dir):
    root = write_regdb(tmp_path)
    preset = get_preset("ivreid", "smoke", dataset="regdb", data_root=str(root), regdb_trials=(1, 2), **TINY)
    with pytest.raises(ValueError, match="loaded with trial=1 but the preset trains trial=2"):
        build_ivreid(preset.replace(trial=2), load_dataset("regdb", root=root, trial=1))
    runs = train_regdb_trials("ivreid", preset)
    assert sorted(runs) == [1, 2]
    assert [r.run_dir.name for r in runs.values()] == ["regdb-smoke-trial1", "regdb-smoke-trial2"]
    assert [r.preset.trial for r in runs.values()] == [1, 2]
    trained_on = [{s.original_pid for s in r.dataset.train} for r in runs.values()]
    assert trained_on[0] != trained_on[1]
    assert runs[1].model is not runs[2].model
    assert not torch.equal(runs[1].model.classifier.weight, runs[2].model.classifier.weight)
    rows = evaluate_regdb("ivreid", runs)
    assert list(zip(rows["trial"], rows["direction"], strict=True)) == [
        (1, "visible_to_thermal"), (1, "thermal_to_visible"), (2, "visible_to_thermal"), (2, "thermal_to_visible")]
    assert (rows["protocol"] == "regdb").all() and rows[["R1", "mAP"]].notna().all().all()
    table = seed_table({"IV-ReID": rows}, "RegDB")
    assert list(table["Dataset (protocol)"]) == [
        "RegDB (visible→thermal, 2 trials)", "RegDB (thermal→visible, 2 trials)"]  # fmt: skip
    assert " ± " in table.loc[0, "Rank-1"]


def test_tiny_end_to_end_run_with_sysu_tables_and_the_bot_baseline(tmp_path, runs_dir):
    root = write_sysu(tmp_path)
    preset = get_preset("ivreid", "smoke", dataset="sysu_mm01", data_root=str(root), validation="sysu_val_id",
                        validate_every=1, **TINY)  # fmt: skip
    result = run("ivreid", preset)
    assert result.metrics["protocol"] == "sysu" and "val_mAP" in result.history
    assert result.record["preset"]["lr_factors"] == dict(preset.lr_factors)
    rows = evaluate_sysu("ivreid", result.model, result.dataset, preset, trials=2)
    assert len(rows) == 2 * 2 * 2 and set(rows["gallery_source"]) == {"seeded"}
    multi = rows[rows["shot"] == 10].groupby("mode")["gallery_size"].unique().to_dict()
    assert {k: list(v) for k, v in multi.items()} == {"all": [4 * 4 * 3], "indoor": [2 * 4 * 3]}  # cams × ids × 3
    table = seed_table({"IV-ReID": rows}, "SYSU-MM01")
    assert table["Dataset (protocol)"].tolist()[0] == "SYSU-MM01 (all-search, single-shot, 2 trials)"
    bot = bot_baseline_preset(preset, "smoke", dataset=result.dataset)
    assert (bot.sampler, bot.model, bot.epochs, bot.batch_p, bot.image_size) == (
        "cross_modality", "bot_resnet18", preset.epochs, preset.batch_p, preset.image_size)  # fmt: skip
    assert bot.val_ids == 2  # as many held-out identities as SYSU's val_id list
    with torch.no_grad():
        feats = result.model.eval()(torch.randn(6, 3, 32, 16))
    gap = modality_gap(feats, [0, 0, 0, 1, 1, 1], ["rgb", "ir", "rgb", "ir", "rgb", "ir"])
    assert gap.centroid_distance >= 0 and gap.identity_spread > 0 and gap.ratio >= 0
