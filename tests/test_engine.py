"""Training engine: schedules, parameter groups, features (flip TTA, dict outputs), validation split,
exact resume across processes, fast data path, evaluation wrapper."""

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from reid_fakes import fake_dataset, samples_from_folder

from reidlab.engine import (
    EvalSplit,
    build_optimizer,
    build_scheduler,
    build_train_loader,
    evaluate_model,
    extract_features,
    fit,
    load_checkpoint,
    load_trained_model,
    param_groups,
    protocol_for,
    split_validation,
)
from reidlab.losses import BoTLoss
from reidlab.models import create_model
from reidlab.preprocessing import Preprocessing

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(image_size=(32, 16), batch_p=4, batch_k=2, num_workers=0, warmup_epochs=1, milestones=(2,), progress=False)


def _lrs(scheduler, optimizer, epoch):
    scheduler.step(epoch)
    return [g["lr"] for g in optimizer.param_groups]


def test_bot_warmup_multistep_schedule():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=3.5e-4)
    sched = build_scheduler("multistep", opt, epochs=120, warmup_epochs=10, warmup_factor=0.1, milestones=(40, 70))
    assert math.isclose(opt.param_groups[0]["lr"], 3.5e-5)  # e = 0: the start of the warm-up
    expected = {
        1: 3.5e-5 + 3.15e-5,
        5: 3.5e-5 + 5 * 3.15e-5,
        10: 3.5e-4,
        39: 3.5e-4,
        40: 3.5e-5,
        69: 3.5e-5,
        70: 3.5e-6,
    }
    for epoch, lr in expected.items():
        assert math.isclose(_lrs(sched, opt, epoch)[0], lr, rel_tol=1e-9), epoch


def test_cosine_schedule_is_spec_0_6_exactly():
    b, total = 0.008, 60
    w, bias = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [w], "lr": b}, {"params": [bias], "lr": 2 * b}], lr=b, momentum=0.9)
    sched = build_scheduler("cosine", opt, epochs=total, warmup_epochs=5, warmup_lr_init=0.01 * b, lr_min=0.002 * b)
    for e in range(1, total + 1):
        got = _lrs(sched, opt, e)
        for base, lr in zip((b, 2 * b), got, strict=True):
            if e < 5:
                want = 0.01 * b + e * (base - 0.01 * b) / 5
            elif e < total:
                want = 0.002 * b + 0.5 * (base - 0.002 * b) * (1 + math.cos(math.pi * e / total))
            else:
                want = 0.002 * b
            assert math.isclose(lr, want, rel_tol=1e-9), (e, lr, want)


def test_param_groups_bias_factor_decay_exceptions_and_frozen():
    model = create_model("bot_resnet18", num_classes=3, pretrained=False)
    groups = param_groups(
        model, lr=1e-3, weight_decay=5e-4, bias_lr_factor=2.0, weight_decay_bias=0.0, weight_decay_norm=0.0
    )
    by_name = {n: (g["lr"], g["weight_decay"]) for g in groups for n in g["names"]}
    assert "neck.bn.bias" not in by_name  # frozen BNNeck bias
    assert by_name["backbone.conv1.weight"] == (1e-3, 5e-4)
    assert by_name["backbone.bn1.weight"] == (1e-3, 0.0)
    assert by_name["backbone.bn1.bias"] == (2e-3, 0.0)
    assert by_name["neck.classifier.weight"] == (1e-3, 5e-4)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_name) == trainable
    heads = param_groups(model, lr=1e-3, weight_decay=0.0, lr_factors={"neck.": 10.0}, no_decay=("classifier",))
    by_name = {n: (g["lr"], g["weight_decay"]) for g in heads for n in g["names"]}
    assert by_name["neck.classifier.weight"] == (1e-2, 0.0)
    opt = build_optimizer("sgd", groups, lr=1e-3, momentum=0.9)
    assert len(opt.param_groups) == len(groups) and "names" not in opt.param_groups[0]
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer("lamb", groups, lr=1e-3)


class _Toy(nn.Module):
    """Eval output depends on left/right asymmetry, so flip TTA changes it; optional dict output with extras."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.as_dict = as_dict
        self.w = nn.Parameter(torch.linspace(-1, 1, 8))

    def forward(self, images, camids=None):
        emb = (images.mean(dim=(1, 2)) * self.w).reshape(len(images), -1)  # (B, W)
        return {"embedding": emb, "mask": emb.abs()} if self.as_dict else emb


def _toy_loader(n=10, batch=4):
    torch.manual_seed(0)
    images = torch.randn(n, 3, 4, 8)
    batches = []
    for s in range(0, n, batch):
        idx = torch.arange(s, min(s + batch, n))
        batches.append({"image": images[idx], "pid": idx // 2, "camid": idx % 2, "modality": idx * 0, "index": idx})
    return images, batches


def test_extract_features_flip_tta_and_dict_outputs():
    images, loader = _toy_loader()
    model = _Toy()
    out = extract_features(model, loader, "cpu")
    assert out["features"].shape == (10, 8) and out["features"].dtype == torch.float32
    assert torch.equal(out["pids"], torch.arange(10) // 2) and torch.equal(out["camids"], torch.arange(10) % 2)
    with torch.no_grad():
        plain, mirrored = model(images), model(images.flip(-1))
    assert torch.allclose(out["features"], plain)
    flipped = extract_features(model, loader, "cpu", flip=True)
    assert torch.allclose(flipped["features"], (plain + mirrored) / 2)
    assert not torch.allclose(flipped["features"], plain)
    extra = extract_features(_Toy(as_dict=True), list(reversed(loader)), "cpu")  # order restored by "index"
    assert set(extra) >= {"features", "mask", "pids", "camids", "modalities"}
    assert torch.allclose(extra["features"], plain) and torch.allclose(extra["mask"], plain.abs())
    assert model.training  # the model's mode is restored


def test_split_validation_holds_identities_out(tmp_path):
    data = fake_dataset(tmp_path, num_ids=10, per_id=4)
    train, val = split_validation(data.train, num_ids=3, seed=0)
    held = set(val.options["held_out_pids"])
    assert len(held) == 3 and not held & {s.pid for s in train}
    assert len(val.query) == 3 and {s.pid for s in val.query} == held == {s.pid for s in val.gallery}
    assert len(train) + len(val.query) + len(val.gallery) == len(data.train)
    assert not {s.path for s in val.query} & {s.path for s in val.gallery}
    with pytest.raises(ValueError, match="val_ids"):
        split_validation(data.train, num_ids=10)


def test_protocol_follows_the_dataset():
    assert protocol_for(EvalSplit("synth_sysu", [], [])) == "sysu"
    assert protocol_for(EvalSplit("regdb", [], [])) == "regdb"
    assert protocol_for(EvalSplit("market1501", [], [])) == "market"
    assert protocol_for(EvalSplit("x", [], [], {"protocol": "cuhk03_classic"})) == "cuhk03_classic"


def _resume_job(root, run_dir, stop, seed, resume=False):
    samples = samples_from_folder(Path(root) / "train")
    torch.manual_seed(seed)  # a different init in the resumed process: loading must overwrite it
    model = create_model("bot_resnet18", num_classes=8, pretrained=False)
    loss = BoTLoss(num_classes=8, feat_dim=model.embed_dim, center_weight=5e-4)
    fit(model, loss, samples, run_dir=run_dir, resume=resume, device="cpu", epochs=2, checkpoint_every=1,
        stop_after_epoch=stop, max_iters_per_epoch=3, **SMALL)  # fmt: skip


def test_resume_is_exact_across_processes(tmp_path):
    """2 epochs straight == 1 epoch, then a fresh process with fresh objects resuming epoch 2 (bit-identical)."""
    fake_dataset(tmp_path / "data", num_ids=8, per_id=4)
    _resume_job(tmp_path / "data", tmp_path / "straight", None, seed=0)
    _resume_job(tmp_path / "data", tmp_path / "killed", 1, seed=0)
    after_one = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert after_one["epoch"] == 1
    code = "import sys, test_engine; test_engine._resume_job(sys.argv[1], sys.argv[2], None, seed=99, resume=True)"
    env = {"PYTHONPATH": f"{REPO}:{REPO / 'tests'}", "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, str(tmp_path / "data"), str(tmp_path / "killed")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert straight["epoch"] == resumed["epoch"] == 2
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    assert torch.equal(straight["loss"]["center.centers"], resumed["loss"]["center.centers"])
    trained = [
        k for k, v in after_one["model"].items() if v.is_floating_point() and not torch.equal(v, resumed["model"][k])
    ]
    assert trained  # epoch 2 really changed the weights
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]
    assert straight["history"][1]["loss"] == resumed["history"][1]["loss"]


def test_fit_writes_run_files_and_reloads(tmp_path):
    data = fake_dataset(tmp_path / "data", num_ids=8, per_id=4)
    torch.manual_seed(0)
    model = create_model("bot_resnet18", num_classes=8, pretrained=False)
    loss = BoTLoss(num_classes=8, feat_dim=model.embed_dim)
    result = fit(
        model, loss, data, run_dir=tmp_path / "run", device="cpu", epochs=2, val_ids=2, validate_every=1, **SMALL
    )
    assert list(result.history["epoch"]) == [1, 2]
    assert {"loss", "id", "triplet", "lr/model", "images_per_s", "val_mAP", "val_rank1"} <= set(result.history.columns)
    assert (tmp_path / "run" / "metrics.csv").is_file() and any((tmp_path / "run" / "tb").iterdir())
    assert result.best_epoch in (1, 2) and (tmp_path / "run" / "best_model.pt").is_file()
    reloaded = load_trained_model(tmp_path / "run")
    images = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        assert torch.allclose(reloaded(images), result.model.eval()(images))
    rank = evaluate_model(result.model, data, device="cpu", batch_size=8, preprocessing=Preprocessing((32, 16)))
    assert rank.num_queries == len(data.query) and 0 <= rank.mAP <= 1
    with pytest.raises(ValueError, match="carries no preprocessing"):
        evaluate_model(result.model, data, device="cpu")


def test_fast_path_batches_match_the_contract(tmp_path):
    data = fake_dataset(tmp_path / "data", num_ids=8, per_id=4)
    kwargs = dict(image_size=(32, 16), batch_p=4, batch_k=2, seed=3, cache_dir=None, progress=False)
    fast = build_train_loader(data.train, fast=True, **kwargs)
    slow = build_train_loader(data.train, fast=False, **kwargs)
    fb, sb = next(iter(fast)), next(iter(slow))
    assert fb["image"].shape == sb["image"].shape == (8, 3, 32, 16) and fb["image"].dtype == torch.float32
    assert torch.equal(fb["index"], sb["index"])  # same sampler, same seed: same P×K batch
    assert torch.equal(fb["pid"], torch.as_tensor(sb["pid"]))
    pids = fb["pid"].tolist()
    assert len(set(pids)) == 4 and all(pids.count(p) == 2 for p in set(pids))
    torch.manual_seed(0)
    model = create_model("bot_resnet18", num_classes=8, pretrained=False)
    loss = BoTLoss(num_classes=8, feat_dim=model.embed_dim)
    result = fit(model, loss, data, run_dir=tmp_path / "run", device="cpu", epochs=1, fast_data=True, **SMALL)
    assert result.history["iterations"].iloc[0] > 0 and math.isfinite(result.history["loss"].iloc[0])


def test_samples_round_trip(tmp_path):
    data = fake_dataset(tmp_path, num_ids=3, per_id=2)
    assert samples_from_folder(tmp_path / "train") == data.train


def test_train_cli_end_to_end_on_a_market_layout(tmp_path, monkeypatch):
    import json

    from reid_fakes import write_market_layout

    from reidlab.train import main

    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    write_market_layout(tmp_path / "data")
    argv = ["--method", "bot", "--profile", "smoke", "--dataset", "market1501", "--data-root", str(tmp_path / "data"),
            "--epochs", "1", "--device", "cpu", "-p", "image_size=(32,16)", "-p", "flip_tta=false"]  # fmt: skip
    argv += ["--set", "batch_p=4", "--set", "batch_k=2", "--set", "max_iters_per_epoch=2", "--set", "progress=False"]
    argv += ["--set", "pretrained=false", "--name", "cli"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "bot" / "market1501-smoke-cli"
    record = json.loads((run / "run.json").read_text())
    assert record["method"] == "bot" and record["dataset"] == "market1501" and record["status"] == "finished"
    assert record["preset"]["flip_tta"] is False and record["preset"]["pretrained"] is False
    metrics = record["metrics"]
    assert metrics["protocol"] == "market" and metrics["ap"] == "standard" and metrics["flip_tta"] is False
    assert 0 <= metrics["mAP"] <= 100 and (run / "model.pt").is_file() and (run / "last.pt").is_file()
    assert record["preprocessing"] == {"image_size": [32, 16], "normalization": "imagenet", "interpolation": "bilinear"}
    assert main(argv) == 2  # the folder holds a finished run now: refused without --resume / --reuse / --overwrite
    assert main([*argv, "--reuse"]) == 0
    assert main([*argv, "-p", "lr=1e-3x"]) == 2  # a wrong type fails before anything runs


def test_cross_modality_sampler_batches(tmp_path):
    import dataclasses

    data = fake_dataset(tmp_path / "data", num_ids=8, per_id=4)
    samples = [dataclasses.replace(s, modality="ir" if i % 2 else "rgb") for i, s in enumerate(data.train)]
    loader = build_train_loader(samples, image_size=(32, 16), batch_p=2, batch_k=2, sampler="cross_modality")
    batch = next(iter(loader))
    assert batch["image"].shape[0] == 8  # P x (K rgb + K ir)
    assert sorted(batch["modality"].tolist()) == [0] * 4 + [1] * 4
    with pytest.raises(ValueError, match="unknown sampler"):
        build_train_loader(samples, image_size=(32, 16), batch_p=2, batch_k=2, sampler="random")
