"""Staged training on tiny in-memory models: two optimisers in one step, stage outputs, exact resume inside stage 2."""

import pytest
import torch
import torch.nn as nn

from reidlab.engine import Stage, StagePlan, TrainConfig, run_stages
from reidlab.engine.checkpoint import load_checkpoint
from reidlab.engine.optim import build_scheduler
from reidlab.engine.trainer import StepContext, Trainer, is_convnet

CONFIG = TrainConfig(epochs=1, progress=False, checkpoint_every=1, log_every=1, amp=False)


class TwoPart(nn.Module):
    """A "backbone" and a "mask" head, each trained by its own optimiser (DPM's shape of update)."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.2), nn.ReLU())
        self.mask = nn.Linear(8, 8)

    def forward(self, images, camids=None):
        feats = self.backbone(images.flatten(1))
        return {"features": feats, "mask": torch.sigmoid(self.mask(feats))}


class Batches:
    """A deterministic in-memory loader with ``set_epoch`` (the trainer calls it every epoch)."""

    def __init__(self, n: int = 3, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.data = [{"image": torch.randn(4, 1, 2, 3, generator=g), "pid": torch.arange(4)} for _ in range(n)]
        self.epochs_seen: list[int] = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self):
        return iter([dict(b) for b in self.data])


def alternating_step(ctx: StepContext, batch):
    """Backbone update with the mask fixed, then a mask update with the backbone fixed."""
    ctx.zero_grad(["backbone"])
    out = ctx.forward(batch)
    loss_a = (out["features"] * out["mask"].detach()).pow(2).mean()
    ctx.backward(loss_a)
    ctx.step(["backbone"])
    ctx.zero_grad(["mask"])
    out = ctx.forward(batch)
    loss_b = (out["features"].detach() * out["mask"]).sum(1).std()
    ctx.backward(loss_b)
    ctx.step(["mask"])
    return {"loss": loss_a.detach() + loss_b.detach(), "backbone": loss_a.detach(), "mask": loss_b.detach()}


def _optimizers(model, mask_lr=0.1):
    return {
        "backbone": torch.optim.SGD(model.backbone.parameters(), lr=0.1),
        "mask": torch.optim.SGD(model.mask.parameters(), lr=mask_lr),
    }


def test_alternating_two_optimiser_step_updates_each_its_own_parameters():
    torch.manual_seed(0)
    model = TwoPart()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizers = _optimizers(model, mask_lr=0.0)  # the mask optimiser steps with LR 0: its weights must not move
    schedulers = {"backbone": build_scheduler("multistep", optimizers["backbone"], epochs=3, warmup_epochs=0,
                                              milestones=(2,), gamma=0.5)}  # fmt: skip
    trainer = Trainer(model, None, Batches(), optimizers=optimizers, schedulers=schedulers, epochs=3, device="cpu",
                      step_fn=alternating_step, progress=False, log_every=1, tensorboard=False)  # fmt: skip
    result = trainer.fit()
    after = result.model.state_dict()
    assert not torch.equal(before["backbone.0.weight"], after["backbone.0.weight"])
    assert torch.equal(before["mask.weight"], after["mask.weight"])
    assert torch.equal(before["mask.bias"], after["mask.bias"])
    history = result.history
    assert list(history["lr/backbone"]) == [0.1, 0.05, 0.05]  # scheduled: x0.5 at epoch 2
    assert list(history["lr/mask"]) == [0.0, 0.0, 0.0]  # deliberately without a schedule
    assert {"loss", "backbone", "mask", "images_per_s"} <= set(history.columns)


def test_zero_grad_of_an_empty_list_touches_nothing():
    model = TwoPart()
    ctx = StepContext(model=model, loss_fn=None, optimizers=_optimizers(model), scaler=torch.amp.GradScaler("cpu",
                      enabled=False), device=torch.device("cpu"), amp=False, grad_clip=None)  # fmt: skip
    model(torch.randn(2, 6))["features"].sum().backward()
    ctx.zero_grad([])
    assert model.backbone[0].weight.grad is not None
    ctx.zero_grad()
    assert model.backbone[0].weight.grad is None
    with pytest.raises(KeyError, match="unknown optimiser"):
        ctx.step(["head"])


class Crash(RuntimeError):
    pass


def _two_stage(crash_at: int | None = None):
    """Stage "warm" trains the backbone and hands its mean feature on; stage "main" trains all against it."""
    calls = {"n": 0}

    def warm(inputs):
        m = inputs.model

        def finish(model):
            with torch.no_grad():
                model.eval()
                centre = model(torch.ones(4, 6))["features"].mean(0)
                model.train()
            return {"centre": centre}

        optimizers = {"backbone": torch.optim.SGD(m.backbone.parameters(), lr=0.05)}
        step = lambda ctx, b: _plain_step(ctx, b, ["backbone"])  # noqa: E731
        return StagePlan(loader=Batches(seed=1), optimizers=optimizers, step_fn=step, finish=finish)

    def main(inputs):
        centre = inputs.outputs["warm"]["centre"]
        opts = _optimizers(inputs.model)

        def step(ctx, batch):
            calls["n"] += 1
            if crash_at is not None and calls["n"] == crash_at:
                raise Crash("killed")
            ctx.zero_grad()
            out = ctx.forward(batch)
            loss = (out["features"] * out["mask"] - centre).pow(2).mean()
            ctx.backward(loss)
            ctx.step()
            return {"loss": loss.detach()}

        scheds = {"backbone": build_scheduler("multistep", opts["backbone"], epochs=3, warmup_epochs=1,
                                              milestones=(2,))}  # fmt: skip
        return StagePlan(loader=Batches(seed=2), optimizers=opts, schedulers=scheds, step_fn=step)

    return [Stage("warm", 2, warm), Stage("main", 3, main)]


def _plain_step(ctx, batch, names):
    ctx.zero_grad(names)
    out = ctx.forward(batch)
    loss = out["features"].pow(2).mean()
    ctx.backward(loss)
    ctx.step(names)
    return {"loss": loss.detach()}


def _fresh(seed):
    torch.manual_seed(seed)
    return TwoPart()


def test_two_stage_run_killed_in_stage_two_resumes_to_identical_weights(tmp_path):
    straight = run_stages(_fresh(0), _two_stage(), config=CONFIG, run_dir=tmp_path / "straight", device="cpu")
    assert straight.completed and list(straight.history["stage"]) == ["warm"] * 2 + ["main"] * 3
    with pytest.raises(Crash):  # killed in the 2nd epoch of stage "main" (3 batches per epoch)
        run_stages(_fresh(0), _two_stage(crash_at=5), config=CONFIG, run_dir=tmp_path / "killed", device="cpu")
    saved = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert saved["stage"] == "main" and saved["epoch"] == 1 and saved["finished_stages"] == ["warm"]
    assert torch.is_tensor(saved["stage_outputs"]["warm"]["centre"])
    with pytest.raises(Exception, match="already holds a run"):
        run_stages(_fresh(7), _two_stage(), config=CONFIG, run_dir=tmp_path / "killed", device="cpu")
    resumed = run_stages(_fresh(7), _two_stage(), config=CONFIG, run_dir=tmp_path / "killed", device="cpu",
                         resume=True)  # fmt: skip
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert list(resumed.history["loss"]) == list(straight.history["loss"])
    assert torch.equal(resumed.stage_outputs["warm"]["centre"], straight.stage_outputs["warm"]["centre"])
    assert (tmp_path / "killed" / "previous.pt").is_file() and (tmp_path / "killed" / "model.pt").is_file()


def test_resume_between_stages_skips_the_finished_one(tmp_path):
    straight = run_stages(_fresh(0), _two_stage(), config=CONFIG, run_dir=tmp_path / "a", device="cpu")
    run_stages(_fresh(0), _two_stage(), config=CONFIG, run_dir=tmp_path / "b", device="cpu", stop_after=("warm", 2))
    state = load_checkpoint(tmp_path / "b" / "last.pt")
    assert state["stage_done"] and state["finished_stages"] == ["warm"]
    resumed = run_stages(_fresh(3), _two_stage(), config=CONFIG, run_dir=tmp_path / "b", device="cpu", resume=True)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    again = run_stages(_fresh(5), _two_stage(), config=CONFIG, run_dir=tmp_path / "b", device="cpu", resume=True)
    assert again.completed and torch.equal(again.model.mask.weight, resumed.model.mask.weight)  # nothing left to do


def test_resume_refuses_changed_training_settings(tmp_path):
    run_stages(_fresh(0), _two_stage(), config=CONFIG, run_dir=tmp_path / "r", device="cpu", stop_after=("warm", 1))
    with pytest.raises(ValueError, match=r"changed settings.*lr: 0.00035 -> 0.1"):
        run_stages(_fresh(0), _two_stage(), config=CONFIG.replace(lr=0.1), run_dir=tmp_path / "r", device="cpu",
                   resume=True)  # fmt: skip
    # settings that change only how the run is shown or saved may differ
    run_stages(_fresh(0), _two_stage(), config=CONFIG.replace(log_every=3, num_workers=2), run_dir=tmp_path / "r",
               device="cpu", resume=True)  # fmt: skip


def test_checkpoints_keep_the_one_before_and_survive_a_truncated_last(tmp_path):
    run_stages(_fresh(0), _two_stage(), config=CONFIG, run_dir=tmp_path / "t", device="cpu", stop_after=("main", 2))
    last = tmp_path / "t" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])  # a bad write
    with pytest.warns(UserWarning, match="last.pt: cannot be read"):
        resumed = run_stages(_fresh(0), _two_stage(), config=CONFIG, run_dir=tmp_path / "t", device="cpu",
                             resume=True)  # fmt: skip
    assert resumed.completed


def test_convnet_detection_for_channels_last():
    import timm

    assert is_convnet(timm.create_model("resnet18", pretrained=False, num_classes=0))
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=(64, 32))
    assert any(isinstance(m, nn.Conv2d) for m in vit.modules()) and not is_convnet(vit)


def test_a_stage_shows_one_progress_bar_and_no_line_per_epoch(monkeypatch, capsys):
    """A training cell in JupyterLab gets one live bar per stage, not a widget and a printed line per epoch."""
    import reidlab.engine.trainer as trainer_module

    bars = []
    real = trainer_module.tqdm

    def counting(*args, **kwargs):
        bar = real(*args, **kwargs)
        bars.append(kwargs)
        return bar

    monkeypatch.setattr(trainer_module, "tqdm", counting)
    torch.manual_seed(0)
    model = TwoPart()
    Trainer(model, None, Batches(), optimizers=_optimizers(model), epochs=4, device="cpu", step_fn=alternating_step,
            progress=True, log_every=1, tensorboard=False).fit()  # fmt: skip
    assert len(bars) == 1 and bars[0]["total"] == 4 * 3 and bars[0]["leave"] is True
    assert capsys.readouterr().out == ""
