"""CLIP-ReID: the image encoders' ReID changes, the text tower over embeddings, the SupCon and stage-2 losses, the
two stages (what each may change), the official checkpoint, missing OpenAI weights and the benchmark's stages."""

import pytest
import torch
import torch.nn.functional as F
from clip_reference import official_rn_feature, official_rn_state, official_vit_feature, official_vit_state
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import QuickGELU, VisionTransformer
from reid_fakes import fake_dataset

from reidlab.engine import seed_everything
from reidlab.losses.clip_reid import ClipReIDLoss, SymmetricSupConLoss, supcon_loss
from reidlab.losses.reid import cross_entropy_ls, triplet_loss
from reidlab.methods import build_model, get_preset, run
from reidlab.models import load_official_checkpoint
from reidlab.models.clip_image import (
    ClipResNetEncoder,
    ClipViTEncoder,
    infer_stride,
    patch_grid,
    resize_grid_embedding,
)
from reidlab.models.clip_text import ClipTextEncoder, identity_prompts
from reidlab.models.clip_weights import load_clip


def _vit(width=64, layers=2, image_size=(64, 32), output_dim=32):
    return VisionTransformer(image_size=image_size, patch_size=16, width=width, layers=layers, heads=width // 32,
                             mlp_ratio=4.0, output_dim=output_dim, act_layer=QuickGELU)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_clip():
    from reidlab.models.lab_clip import create_lab_clip

    return create_lab_clip(pretrained=False)


def test_patch_grid_and_stride_inference():
    assert patch_grid((256, 128), 16, 12) == (21, 10)  # (H - P)//S + 1, not the seed's H//12
    assert patch_grid((384, 128), 16, 12) == (31, 10)
    assert patch_grid((256, 128), 16, 16) == (16, 8)
    assert infer_stride(210, (256, 128), 16) == 12 and infer_stride(128, (256, 128), 16) == 16
    with pytest.raises(ValueError, match="image_size"):
        infer_stride(211, (256, 128), 16)


def test_position_embedding_resize_keeps_cls_and_handles_non_square_grids():
    pos = torch.randn(1 + 8 * 4, 6)  # a non-square 8×4 source grid (the seed assumed a square one)
    out = resize_grid_embedding(pos, (8, 4), (10, 5))
    assert out.shape == (1 + 50, 6)
    assert torch.equal(out[0], pos[0])  # the CLS row is kept as it is
    grid = F.interpolate(pos[1:].reshape(1, 8, 4, 6).permute(0, 3, 1, 2), size=(10, 5), mode="bilinear",
                         align_corners=False).permute(0, 2, 3, 1).reshape(50, 6)  # fmt: skip
    torch.testing.assert_close(out[1:], grid)
    assert torch.equal(resize_grid_embedding(pos, (8, 4), (8, 4)), pos)
    with pytest.raises(ValueError, match="does not fit"):
        resize_grid_embedding(pos, (7, 4), (10, 5))


def test_vit_encoder_overlapping_patches_and_the_three_features():
    visual = _vit()
    source_cls = visual.positional_embedding[0].detach().clone()
    enc = ClipViTEncoder(visual, image_size=(64, 32), stride=8).eval()
    assert enc.grid == (7, 3) and visual.conv1.stride == (8, 8)
    assert visual.positional_embedding.shape == (1 + 21, 64) and torch.equal(visual.positional_embedding[0], source_cls)
    x = torch.randn(2, 3, 64, 32)
    out = enc(x, tokens=True)
    # reference: open_clip's own modules run by hand
    t = visual.conv1(x).flatten(2).transpose(1, 2)
    t = torch.cat([visual.class_embedding.expand(2, 1, -1), t], 1) + visual.positional_embedding
    t = visual.ln_pre(t)
    t = visual.transformer.resblocks[0](t)
    torch.testing.assert_close(out["f_last"], t[:, 0])
    t = visual.ln_post(visual.transformer.resblocks[1](t))
    torch.testing.assert_close(out["f"], t[:, 0])
    torch.testing.assert_close(out["f_proj"], t[:, 0] @ visual.proj)
    assert out["patch_proj"].shape == (2, 21, 32)


def test_sie_changes_only_through_the_camera():
    enc = ClipViTEncoder(_vit(), image_size=(64, 32), num_cameras=3, sie_coef=1.5).eval()
    x = torch.randn(2, 3, 64, 32)
    a, b = enc.embed(x, torch.tensor([0, 0])), enc.embed(x, torch.tensor([2, 2]))
    assert torch.equal(a[:, 1:], b[:, 1:])  # patches untouched: SIE sits on the CLS token only
    torch.testing.assert_close(a[:, 0] - b[:, 0], 1.5 * (enc.sie_embed[0] - enc.sie_embed[2]).expand(2, -1))
    same = enc(x, torch.tensor([1, 1]))["f"], enc(x, torch.tensor([1, 1]))["f"]
    assert torch.equal(*same)
    assert not torch.allclose(enc(x, torch.tensor([0, 0]))["f"], enc(x, torch.tensor([1, 1]))["f"])
    plain = ClipViTEncoder(_vit(), image_size=(64, 32)).eval()
    assert plain.sie_embed is None and torch.equal(plain(x, torch.tensor([0, 1]))["f"], plain(x)["f"])


def test_resnet_encoder_layer4_stride_one_and_attention_pool_grid():
    visual = ModifiedResNet([1, 1, 1, 1], output_dim=32, heads=4, image_size=64, width=8)  # pool grid 2×2
    mean_row = visual.attnpool.positional_embedding[0].detach().clone()
    enc = ClipResNetEncoder(visual, image_size=(64, 32)).eval()
    assert enc.grid == (4, 2) and visual.attnpool.positional_embedding.shape == (1 + 8, 256)
    assert torch.equal(visual.attnpool.positional_embedding[0], mean_row)
    x = torch.randn(2, 3, 64, 32)
    assert visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(x))))).shape[-2:] == (4, 2)
    out = enc(x)
    assert out["f_last"].shape == (2, 128) and out["f"].shape == (2, 256) and out["f_proj"].shape == (2, 32)
    with pytest.raises(ValueError, match="multiples of 16"):
        ClipResNetEncoder(ModifiedResNet([1, 1, 1, 1], 32, 4, 64, 8), image_size=(60, 32))


def test_text_encoder_over_embeddings_equals_open_clip_and_prompts_sit_on_the_x(tiny_clip):
    clip, tokenizer = tiny_clip
    encoder = ClipTextEncoder(clip).eval()
    tokens = tokenizer(["a man in a red shirt", "a woman with long blond hair and a backpack"])
    with torch.no_grad():  # cutting the sequence after the end token is exact under the causal mask
        torch.testing.assert_close(encoder.encode(tokens), clip.encode_text(tokens))
    learner = identity_prompts(encoder, tokenizer, num_classes=5)
    assert (learner.start, learner.count) == (5, 4)  # "<sot> a photo of a" | X X X X | "person . <eot>"
    embeddings, ids = learner(torch.tensor([3, 1]))
    torch.testing.assert_close(embeddings[:, 5:9], learner.cls_ctx[[3, 1]])
    template = clip.token_embedding(learner.tokenized)
    torch.testing.assert_close(embeddings[0, :5], template[:5].detach())
    torch.testing.assert_close(embeddings[0, 9:], template[9:].detach())
    assert torch.equal(ids[0], learner.tokenized)


def test_supcon_losses_equal_their_formulas():
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 1, 0, 2, 1, 0])

    def formula(a, c):
        total = 0.0
        for i in range(len(a)):
            denominator = sum(torch.exp(a[i] @ c[j]) for j in range(len(c)))
            positives = [p for p in range(len(c)) if y[p] == y[i]]
            total += sum(torch.log(torch.exp(a[i] @ c[p]) / denominator) for p in positives) / len(positives)
        return -total / len(a)

    torch.testing.assert_close(supcon_loss(v @ t.T, y, y), formula(v, t))
    total, parts = SymmetricSupConLoss()(v, t, y)
    torch.testing.assert_close(parts["i2t"], formula(v, t))
    torch.testing.assert_close(parts["t2i"], formula(t, v))
    torch.testing.assert_close(total, formula(v, t) + formula(t, v))
    scaled, _ = SymmetricSupConLoss(normalize=True, logit_scale=10.0)(v, t, y)
    vn, tn = F.normalize(v, dim=1) * 10.0 ** 0.5, F.normalize(t, dim=1) * 10.0 ** 0.5
    torch.testing.assert_close(scaled, formula(vn, tn) + formula(tn, vn))


def test_stage2_loss_is_the_weighted_sum_of_its_terms():
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = [torch.randn(6, 3, generator=g) for _ in range(2)]
    feats = [torch.randn(6, d, generator=g) for d in (5, 5, 4)]
    outputs = {"scores": scores, "features": feats, "i2t_logits": torch.randn(6, 3, generator=g)}
    total, parts = ClipReIDLoss(id_weight=0.25, triplet_weight=1.0, i2t_weight=1.0)(outputs, {"pid": y})
    expected = (0.25 * sum(cross_entropy_ls(s, y, 0.1) for s in scores)
                + sum(triplet_loss(f, y, margin=0.3) for f in feats) + cross_entropy_ls(outputs["i2t_logits"], y, 0.1))
    torch.testing.assert_close(total, expected)
    assert set(parts) == {"id", "triplet", "i2t"}
    with pytest.raises(KeyError, match="i2t_logits"):
        ClipReIDLoss()({"scores": scores, "features": feats}, {"pid": y})


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _changed(before, model):
    return {k for k, v in model.state_dict().items() if not torch.equal(before[k], v)}


def test_stage1_updates_only_the_prompts_and_stage2_never_touches_them(tmp_path):
    data = fake_dataset(tmp_path / "data", num_ids=6, per_id=4, size=(32, 16))
    preset = get_preset("clip_reid", "smoke", pretrained=False, image_size=(32, 16), batch_p=3, batch_k=4,
                        fast_data=False, stage1_epochs=2, stage1_batch=8, epochs=2, progress=False)  # fmt: skip
    folder = tmp_path / "run"
    seed_everything(preset.seed)  # run() seeds the same way before it builds the model
    start, _ = build_model("clip_reid", preset, data)
    first = run("clip_reid", preset, data, run_dir=folder, stop_after=("stage1", 2), evaluate=False, device="cpu")
    model = first.model
    assert not first.train.completed and (folder / "stage1_image_features.pt").is_file()
    output = first.train.stage_outputs["stage1"]
    assert output["text_features"].shape == (6, model.proj_dim) and 0.0 <= output["i2t_accuracy"] <= 1.0
    changed = _changed(start.state_dict(), model)
    assert changed == {"prompt_learner.cls_ctx"}  # nothing else, BN-neck statistics included
    after_stage1 = _snapshot(model)
    final = run("clip_reid", preset, data, run_dir=folder, resume=True, device="cpu")
    changed = _changed(after_stage1, final.model)
    assert not any(k.startswith(("prompt_learner.", "text_encoder.")) for k in changed)
    assert any(k.startswith("image_encoder.") for k in changed) and "classifier.weight" in changed
    assert {"i2t", "i2t_acc"} <= set(final.history.columns) and final.metrics["ap"] == "standard"


def test_official_checkpoint_vit_with_sie_and_overlapping_patches(tmp_path):
    state = official_vit_state(width=128, layers=2, grid=(21, 10), cameras=3)
    path = tmp_path / "ViT-B-16_60.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # DDP-trained files carry module. prefixes
    model = load_official_checkpoint(path, method="clipreid")
    assert model.image_encoder.stride == 12 and model.image_encoder.sie_coef == 1.0 and model.embed_dim == 192
    assert model.preprocessing.normalization == "half" and model.preprocessing.interpolation == "bilinear"
    assert any(k.startswith("text_encoder.") for k in model.official_skipped)
    x, cams = torch.randn(2, 3, 256, 128), torch.tensor([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(model(x, cams), official_vit_feature(state, x, stride=12, camids=cams),
                                   atol=1e-4, rtol=1e-4)  # fmt: skip
        three = load_official_checkpoint(path, method="clipreid", sie_coef=3.0)
        torch.testing.assert_close(three(x, cams), official_vit_feature(state, x, stride=12, camids=cams,
                                                                        sie_coef=3.0), atol=1e-4, rtol=1e-4)


def test_official_checkpoint_rn50_and_baseline_files(tmp_path):
    state = official_rn_state(grid=(4, 2))
    baseline = {k: v for k, v in state.items() if not k.startswith(("prompt_learner.", "text_encoder."))}
    torch.save(baseline, tmp_path / "RN50_120.pth")
    model = load_official_checkpoint(tmp_path / "RN50_120.pth", method="clipreid", image_size=(64, 32))
    assert model.preprocessing.normalization == "imagenet"
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official_rn_feature(state, x), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="image_size"):
        load_official_checkpoint(tmp_path / "RN50_120.pth", method="clipreid")  # 256×128 needs 16×8 positions
    torch.save({"image_encoder.conv1.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a CLIP-ReID checkpoint"):
        load_official_checkpoint(tmp_path / "bad.pth", method="clipreid")


def test_missing_openai_weights_fail_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ViT-B-16.pt"):
        load_clip("ViT-B-16", pretrained=True)
    with pytest.raises(FileNotFoundError, match="RN50.pt"):
        load_clip("RN50", pretrained=True)
    with pytest.raises(ValueError, match="unknown CLIP backbone"):
        load_clip("ViT-L-14")


def test_bench_times_both_clip_reid_stages(capsys):
    from reidlab.bench import train as bench

    argv = ["--method", "clip_reid", "--no-write", "--paths", "fast", "--modes", "eager", "--iters", "1", "--warmup",
            "0", "--image-size", "32", "16", "--batch-p", "2", "--device", "cpu"]  # fmt: skip
    for stage in ("stage1", "stage2"):
        assert bench.main([*argv, "--stage", stage]) == 0
    out = capsys.readouterr().out
    assert "clip_reid (stage1)" in out and "clip_reid (stage2)" in out
