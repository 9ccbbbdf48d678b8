"""DPM: the hierarchical mask, the masked-prototype ArcFace (vectorised = the official per-sample loop), the head-enrich
loss, the alternating two-optimiser update, official checkpoints reproduced by an independent reference, and a tiny
end-to-end run with the masked test distance."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from vit_reference import official_dpm_state, reference_dpm

from reidlab.engine import StepContext
from reidlab.losses.dpm import DPMLoss, arcface_logits, head_orthogonality, head_orthogonality_loss
from reidlab.methods import get_preset
from reidlab.methods.dpm import (
    REPO_OCCLUDED_DUKE,
    alternating_step,
    dpm_optimizers,
    dpm_schedulers,
    split_parameters,
)
from reidlab.models import create_model, load_official_checkpoint
from reidlab.models.dpm import default_mask_blocks, masked_prototype_cosine
from reidlab.models.vit import cls_attention_logits, patch_grid

TINY = {"embed_dim": 32, "depth": 6, "num_heads": 2}


def tiny_dpm(num_classes=5, **kwargs):
    return create_model("dpm_vit", backbone=TINY, num_classes=num_classes, pretrained=False, image_size=(64, 64),
                        stride=16, drop_path_rate=0.0, **kwargs)  # fmt: skip


def test_the_mask_shapes_blocks_and_initial_value():
    torch.manual_seed(0)
    model = tiny_dpm(sie_cameras=2)
    assert model.mask_blocks == default_mask_blocks(6) == (1, 2, 5, 6)
    assert default_mask_blocks(12) == (2, 4, 10, 12) and default_mask_blocks(8) == (1, 3, 7, 8)
    with pytest.raises(ValueError, match="too shallow"):
        default_mask_blocks(4)
    images, cams = torch.randn(3, 3, 64, 64), torch.tensor([0, 1, 0])
    out = model.train()(images, cams)
    assert out["mask"].shape == (3, 32) and torch.allclose(out["mask"], torch.full((3, 32), 0.5))  # zero-init fc
    assert out["prototype_cosine"].shape == out["logits"].shape == (3, 5)
    assert out["attention_logits"].shape == (3, 2, 16)  # heads x 4x4 patches
    single = model.eval()(images[:1], cams[:1])  # a batch of one keeps its batch dimension
    assert single["embedding"].shape == single["mask"].shape == (1, 32)
    with pytest.raises(ValueError, match="too small"):
        create_model("dpm_vit", backbone=TINY, pretrained=False, image_size=(48, 64), stride=16).eval()(
            torch.randn(1, 3, 48, 64))


def official_masked_arcface(features, masks, weight, labels, s=30.0, m=0.5):
    """stone96123/DPM's ``MArcface``: a loop over the batch building normalize(mask_i * normalize(W))."""
    rows = []
    for i in range(features.shape[0]):
        query = F.normalize(features[i].unsqueeze(0))
        prototypes = masks[i].unsqueeze(0) * F.normalize(weight)
        rows.append(F.linear(F.normalize(query), F.normalize(prototypes)))
    cosine = torch.cat(rows, 0)
    sine = torch.sqrt(1.0 - cosine**2)
    phi = cosine * math.cos(m) - sine * math.sin(m)
    phi = torch.where(cosine > math.cos(math.pi - m), phi, cosine - math.sin(math.pi - m) * m)
    one_hot = torch.zeros_like(cosine).scatter_(1, labels.view(-1, 1), 1)
    return F.linear(features, weight), s * (one_hot * phi + (1 - one_hot) * cosine)


@pytest.mark.parametrize("margin", [0.3, 0.5, 1.4])
def test_vectorised_masked_prototype_arcface_equals_the_official_loop(margin):
    g = torch.Generator().manual_seed(0)
    features, weight = torch.randn(6, 16, generator=g), torch.randn(9, 16, generator=g)
    masks = torch.rand(6, 16, generator=g)
    labels = torch.randint(0, 9, (6,), generator=g)
    plain, expected = official_masked_arcface(features, masks, weight, labels, m=margin)
    cosine = masked_prototype_cosine(features, masks, weight)
    assert torch.allclose(arcface_logits(cosine, labels, scale=30.0, margin=margin), expected, atol=1e-4)
    assert torch.allclose(F.linear(features, weight), plain)
    # the clamped sine keeps gradients finite where the repo's sqrt(1 - cos²) has none (|cos| = 1)
    edge = torch.tensor([[1.0, -1.0, 0.2]], requires_grad=True)
    arcface_logits(edge, torch.tensor([0]), margin=margin).sum().backward()
    assert torch.isfinite(edge.grad).all()


def test_the_orthogonality_loss_equals_its_formula():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 10, generator=g)
    expected = []
    for b in range(4):
        rows = logits[b] / torch.sqrt((logits[b] ** 2).sum(-1, keepdim=True) + 1e-6)
        gram = rows @ rows.T
        expected.append(((gram - torch.eye(3)) ** 2).sum() / 9)
    expected = torch.stack(expected)
    assert torch.allclose(head_orthogonality(logits), expected, atol=1e-6)
    assert torch.allclose(head_orthogonality_loss(logits, "mean"), expected.mean(), atol=1e-6)
    assert torch.allclose(head_orthogonality_loss(logits, "repo_batch_sum"), expected.sum(), atol=1e-6)
    orthogonal = torch.zeros(1, 3, 10)
    orthogonal[0, 0, 0] = orthogonal[0, 1, 1] = orthogonal[0, 2, 2] = 5.0
    assert head_orthogonality(orthogonal).item() < 1e-6
    with pytest.raises(ValueError, match="orth_reduction"):
        DPMLoss(orth_reduction="sum")


def _context(model, loss, preset):
    optimizers = dpm_optimizers(model, preset)
    return StepContext(model=model, loss_fn=loss, optimizers=optimizers, device=torch.device("cpu"), amp=False,
                       grad_clip=None, scaler=torch.amp.GradScaler("cpu", enabled=False))  # fmt: skip


def _snapshot(params):
    return [p.detach().clone() for p in params]


def test_one_alternating_iteration_steps_each_optimiser_on_its_own_parameters():
    torch.manual_seed(0)
    model = tiny_dpm(num_classes=4).train()
    preset = get_preset("dpm", "smoke", lr=0.05)
    loss = DPMLoss(orth_weight=0.1)
    batch = {"image": torch.randn(8, 3, 64, 64), "pid": torch.arange(4).repeat_interleave(2),
             "camid": torch.zeros(8, dtype=torch.long)}  # fmt: skip
    reference = copy.deepcopy(model)  # the seed's update: full backward in both passes, gradients discarded
    ctx = _context(model, loss, preset)
    backbone = [p for _, p in split_parameters(model)[0]]
    mask = [p for _, p in split_parameters(model)[1]]
    assert {id(p) for g in ctx.optimizers["backbone"].param_groups for p in g["params"]} == {id(p) for p in backbone}
    assert {id(p) for g in ctx.optimizers["mask"].param_groups for p in g["params"]} == {id(p) for p in mask}
    states = []
    real_step = ctx.step

    def recording_step(names=None):
        before = (_snapshot(backbone), _snapshot(mask))
        real_step(names)
        states.append((names, before, (_snapshot(backbone), _snapshot(mask))))

    ctx.step = recording_step
    parts = alternating_step(ctx, batch)
    assert [names for names, _, _ in states] == [["backbone"], ["mask"]]
    (_, (bb0, mk0), (bb1, mk1)), (_, _, (bb2, mk2)) = states
    assert any(not torch.equal(a, b) for a, b in zip(bb0, bb1, strict=True))  # pass 1 moves the backbone ...
    assert all(torch.equal(a, b) for a, b in zip(mk0, mk1, strict=True))  # ... and not the mask generator
    assert all(torch.equal(a, b) for a, b in zip(bb1, bb2, strict=True))  # pass 2 leaves the backbone ...
    assert any(not torch.equal(a, b) for a, b in zip(mk1, mk2, strict=True))  # ... and moves the mask generator
    assert all(p.requires_grad for p in mask + backbone if p is not model.neck.bn.bias)
    assert {"loss", "loss_mask_pass", "id_masked", "orth", "triplet"} <= set(parts)

    # the same update as the seed's procedure (both passes backpropagate into everything; each step uses its share)
    rctx = _context(reference, loss, preset)
    for names in (["backbone"], ["mask"]):
        rctx.zero_grad(names)
        total, _ = rctx.loss(rctx.forward(batch), batch)
        rctx.backward(total)
        rctx.step(names)
    for (name, ours), theirs in zip(model.state_dict().items(), reference.state_dict().values(), strict=True):
        assert torch.allclose(ours.float(), theirs.float(), atol=1e-6), name


def test_the_mask_optimiser_follows_the_backbone_schedule_unless_the_repo_constant_is_asked():
    model = tiny_dpm()
    preset = get_preset("dpm", "smoke", epochs=10, warmup_epochs=2)
    for kind, constant in (("backbone", False), ("repo_constant", True)):
        chosen = preset.replace(mask_lr_schedule=kind)
        optimizers = dpm_optimizers(model, chosen)
        schedulers = dpm_schedulers(optimizers, chosen)
        lrs = []
        for epoch in (1, 3, 10):
            for s in schedulers.values():
                s.step(epoch)
            lrs.append((optimizers["backbone"].param_groups[0]["lr"], optimizers["mask"].param_groups[0]["lr"]))
        if constant:
            assert {m for _, m in lrs} == {chosen.lr}
        else:
            assert all(math.isclose(b, m) for b, m in lrs) and lrs[0][0] < lrs[1][0] > lrs[2][0]
    repo = get_preset("dpm", "full", **REPO_OCCLUDED_DUKE)
    assert (repo.arcface_margin, repo.orth_reduction, repo.mask_lr_schedule) == (0.5, "repo_batch_sum",
                                                                                 "repo_constant")  # fmt: skip


def test_dpm_official_checkpoint_reproduces_the_official_test_feature_and_mask(tmp_path):
    grid = patch_grid((256, 128), 16, 12)
    state = official_dpm_state(d=24, depth=12, num_patches=grid[0] * grid[1], cameras=6, classes=5)
    torch.save(state, tmp_path / "dpm.pth")
    model = load_official_checkpoint(tmp_path / "dpm.pth", method="dpm", num_heads=2)
    assert model.mask_blocks == (2, 4, 10, 12) and model.vit.stride == 12 and model.classifier.weight.shape == (5, 24)
    images = torch.randn(2, 3, 256, 128, generator=torch.Generator().manual_seed(3))
    cams = torch.tensor([1, 4])
    with torch.no_grad():
        got = model(images, camids=cams)
        feature, mask, logits = reference_dpm(state, images, cams, stride=12, heads=2)
    assert torch.allclose(got["embedding"], feature, atol=1e-4, rtol=1e-4), (got["embedding"] - feature).abs().max()
    assert torch.allclose(got["mask"], mask, atol=1e-4), (got["mask"] - mask).abs().max()
    with torch.no_grad():
        _, kept = model.vit.forward_tokens(images, cams, keep=[11])
        attention = cls_attention_logits(model.vit.blocks[-1], kept[11])
    assert torch.allclose(attention, logits, atol=1e-4)  # the head-enrich input, as the official ``orth_proto``
    torch.save({k: v for k, v in state.items() if not k.startswith("base.attfc")}, tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="not a DPM checkpoint"):
        load_official_checkpoint(tmp_path / "plain.pth", method="dpm", num_heads=2)
    with pytest.raises(ValueError, match="use method='dpm'"):
        load_official_checkpoint(tmp_path / "dpm.pth", method="transreid", num_heads=2)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    from reid_fakes import fake_dataset

    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    return fake_dataset(tmp_path / "data", num_ids=6, per_id=4)


SMALL = dict(image_size=(64, 64), stride=16, batch_p=3, batch_k=2, epochs=1, max_iters_per_epoch=2, pretrained=False,
             progress=False, fast_data=False, dataset="fake", checkpoint_every=0, eval_batch_size=16)  # fmt: skip


@pytest.mark.parametrize("update", ["alternating", "joint"])
def test_a_tiny_dpm_run_end_to_end_with_the_masked_distance(fake, update):
    from reidlab.methods import evaluate_method, run

    result = run("dpm", data=fake, update=update, name=update, **SMALL)
    assert result.record["distance"] == "masked_cosine" and result.metrics["distance"] == "masked_cosine"
    history = result.history
    assert {"lr/backbone", "lr/mask", "id_masked", "orth"} <= set(history.columns)
    assert ("loss_mask_pass" in history.columns) == (update == "alternating")
    rank, feats = evaluate_method("dpm", result.model, fake, result.preset, return_features=True)
    assert feats["query"]["mask"].shape == feats["query"]["features"].shape == (len(fake.query), 192)
    assert rank.mAP * 100 == pytest.approx(result.metrics["mAP"], abs=1e-2)
    # a feature bank ranks the same images under several distances, extracting them once
    from reidlab.engine import evaluate_model
    from reidlab.engine.feature_bank import FeatureBank
    from reidlab.methods.dpm import DPM_DISTANCE

    bank = FeatureBank(result.model)
    assert bank.evaluate(fake, DPM_DISTANCE).mAP == pytest.approx(rank.mAP, abs=1e-6)
    assert bank.evaluate(fake, "cosine").mAP == pytest.approx(evaluate_model(result.model, fake).mAP, abs=1e-6)
    assert len(bank._rows) == len(fake.query) + len(fake.gallery)


def test_mask_pictures_and_the_region_map(tmp_path):
    from reidlab.preprocessing import Preprocessing, attach_preprocessing
    from reidlab.viz import dpm_masks, mask_region_map, plot_dpm_masks

    masks = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    tokens = torch.tensor([[[3.0, 0.0], [0.0, 2.0]], [[1.0, 1.0], [2.0, 0.0]]])
    assert torch.allclose(mask_region_map(masks, tokens, (1, 2)), torch.tensor([[[1.0, 0.0]], [[0.5, 0.5]]]))
    model = attach_preprocessing(tiny_dpm(sie_cameras=2), Preprocessing((64, 64), "half", "bilinear"))
    images, cams = torch.randn(2, 3, 64, 64), torch.tensor([0, 1])
    out = dpm_masks(model, images, cams)
    assert out["mask"].shape == (2, 32) and out["region"].shape == (2, 4, 4) and model.training
    fig = plot_dpm_masks(model, images, cams, titles=["a\noccluded", "a\nunoccluded"], save=tmp_path / "masks.png")
    assert (tmp_path / "masks.png").is_file() and len(fig.axes) >= 5


def test_occluded_and_unoccluded_query_sets_share_one_gallery():
    from reidlab.data import ReIDDataset, Sample
    from reidlab.data.occlusion_queries import occlusion_query_sets

    def s(name, pid, cam):
        return Sample(f"/x/{name}.jpg", pid, cam)

    query = [s("q1", 1, 0), s("q2", 2, 0), s("q3", 3, 0)]
    gallery = [s("g1a", 1, 1), s("g1b", 1, 2), s("g2a", 2, 1), s("g2b", 2, 1), s("g3a", 3, 1), s("g3b", 3, 2)]
    hidden = {"/x/g1a.jpg": 0.0, "/x/g1b.jpg": 0.3, "/x/g2a.jpg": 0.0, "/x/g2b.jpg": 0.0, "/x/g3a.jpg": 0.4,
              "/x/g3b.jpg": 0.5}  # fmt: skip
    sets = occlusion_query_sets(ReIDDataset("w", "/x", query=query, gallery=gallery), hidden)
    # pid 1: g1a moves (another camera remains); pid 2: both clear images share a camera; pid 3: none is clear
    assert [q.path for q in sets["unoccluded"].query] == ["/x/g1a.jpg"]
    assert [q.path for q in sets["occluded"].query] == ["/x/q1.jpg"]
    assert sets["occluded"].gallery == sets["unoccluded"].gallery and gallery[0] not in sets["occluded"].gallery
    with pytest.raises(ValueError, match="no query identity"):
        occlusion_query_sets(ReIDDataset("w", "/x", query=query[1:], gallery=gallery), hidden)


def test_paired_bootstrap_interval():
    from reidlab.evaluation.paired import paired_bootstrap

    a = np.array([0.2, 0.4, np.nan, 0.6, 0.8])
    out = paired_bootstrap(a, a + 0.1)
    assert out["queries"] == 4 and out["difference"] == pytest.approx(0.1) and out["low"] == pytest.approx(0.1)
    noisy = paired_bootstrap(np.zeros(200), np.random.default_rng(0).normal(0, 1, 200))
    assert noisy["low"] < noisy["difference"] < noisy["high"]
