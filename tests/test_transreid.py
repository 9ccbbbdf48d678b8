"""TransReID: the ReID ViT (patch grids, position-embedding resize, SIE, weight files), JPM, the test feature,
official checkpoints reproduced by an independent reference, and a tiny end-to-end run."""

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from vit_reference import official_transreid_state, reference_shuffle, reference_transreid

from reidlab.models import create_model, load_official_checkpoint
from reidlab.models.jpm import shift_and_shuffle
from reidlab.models.transreid_official import infer_stride, infer_vit_size
from reidlab.models.vit import VIT_SIZES, ReIDViT, ViTSize, cls_attention_logits, patch_grid
from reidlab.models.vit_weights import infer_grid, resize_pos_embed
from reidlab.weights import WeightMismatchError

TINY = ViTSize(32, 2, 2)  # 32 wide, 2 blocks, 2 heads: fast


def tiny_vit(**kwargs) -> ReIDViT:
    return ReIDViT(size=kwargs.pop("size", TINY), **{"image_size": (64, 32), "drop_path_rate": 0.0, **kwargs})


@pytest.mark.parametrize("stride,grid", [(16, (16, 8)), (12, (21, 10)), (11, (22, 11))])
def test_patch_grids_of_the_seed_strides(stride, grid):
    assert patch_grid((256, 128), 16, stride) == grid
    vit = tiny_vit(image_size=(256, 128), stride=stride)
    assert vit.grid_size == grid
    assert vit.pos_embed.shape == (1, 1 + grid[0] * grid[1], TINY.embed_dim)
    tokens, _ = vit.forward_tokens(torch.randn(1, 3, 256, 128))
    assert tokens.shape == (1, 1 + grid[0] * grid[1], TINY.embed_dim)
    with pytest.raises(ValueError, match="stride must be in"):
        patch_grid((256, 128), 16, 17)


def test_position_embedding_resize_keeps_the_cls_vector_and_resizes_the_grid_bilinearly():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    out = resize_pos_embed(pos, (21, 10))
    assert out.shape == (1, 1 + 210, 8)
    assert torch.equal(out[:, 0], pos[:, 0])
    grid = pos[0, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(21, 10), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    assert torch.allclose(out[0, 1:], expected.reshape(210, 8))
    assert torch.equal(resize_pos_embed(pos, (14, 14)), pos)
    assert infer_grid(196) == (14, 14) and infer_grid(32) == (8, 4)  # 224² files and the lab's 128×64 files
    with pytest.raises(ValueError, match="pass file_grid"):
        infer_grid(30)
    assert resize_pos_embed(torch.randn(1, 31, 4), (3, 2), file_grid=(6, 5)).shape == (1, 7, 4)


def _write_timm_vit(path, *, img_size, embed_dim=192, depth=6, heads=3, head=False, extra=None):
    vit = VisionTransformer(img_size=img_size, patch_size=16, embed_dim=embed_dim, depth=depth, num_heads=heads,
                            mlp_ratio=4, qkv_bias=True, num_classes=10 if head else 0)  # fmt: skip
    state = {**vit.state_dict(), **(extra or {})}
    torch.save(state, path)
    return state


def test_the_lab_tiny_vit_loads_a_timm_layout_file_through_reidlab_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    state = _write_timm_vit(tmp_path / "vit_tiny_d6_patch16.pth", img_size=(128, 64))  # pos_embed (1, 1 + 8·4, 192)
    assert state["pos_embed"].shape == (1, 33, 192)
    model = create_model("transreid_vit_tiny_d6_patch16", num_classes=5, pretrained=True, image_size=(128, 64),
                         stride=12, sie_cameras=3)  # fmt: skip
    vit = model.vit
    assert vit.grid_size == (10, 5)
    assert torch.equal(vit.blocks[3].mlp.fc1.weight, state["blocks.3.mlp.fc1.weight"])
    assert torch.equal(vit.pos_embed[:, 0], state["pos_embed"][:, 0])
    assert torch.allclose(vit.pos_embed, resize_pos_embed(state["pos_embed"], (10, 5)))
    assert vit.pretrained_weights["file"].endswith("vit_tiny_d6_patch16.pth")
    assert vit.pretrained_weights["fraction_loaded"] > 0.99  # everything but the SIE table
    # JPM's local branch is a copy of the loaded last block
    jpm = create_model("transreid_vit_tiny_d6_patch16", num_classes=5, pretrained=True, image_size=(128, 64),
                       jpm=True)  # fmt: skip
    assert torch.equal(jpm.jpm.block.attn.qkv.weight, state["blocks.5.attn.qkv.weight"])
    # the lab's own weights: fp16 safetensors in <weights>/lab/, taken by pretrained="lab" (and by "auto" without a
    # release file)
    from safetensors.torch import save_file

    (tmp_path / "lab").mkdir()
    lab_file = tmp_path / "lab" / "vit_tiny_d6_patch16.safetensors"
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(lab_file))
    (tmp_path / "vit_tiny_d6_patch16.pth").unlink()
    for pretrained in ("lab", "auto"):
        dpm = create_model("dpm_vit_tiny_d6_patch16", num_classes=5, pretrained=pretrained, image_size=(128, 64))
        assert dpm.vit.pretrained_weights["source"] == "lab"
        assert torch.equal(dpm.vit.blocks[0].attn.qkv.weight, state["blocks.0.attn.qkv.weight"].half().float())


def test_imagenet_files_skip_heads_and_distillation_and_refuse_another_size(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path))
    size = {"embed_dim": 32, "depth": 2, "heads": 2}
    state = _write_timm_vit(tmp_path / "deit.pth", img_size=224, head=True, **size,
                            extra={"dist_token": torch.zeros(1, 1, 32), "head_dist.weight": torch.zeros(10, 32)})
    state["pos_embed"] = torch.cat([state["pos_embed"][:, :1], torch.zeros(1, 1, 32), state["pos_embed"][:, 1:]], 1)
    torch.save({"model": state}, tmp_path / "deit.pth")  # DeiT files: {"model": ...}, [CLS, DIST, grid] positions
    from reidlab.models.vit_weights import load_vit_weights

    vit = tiny_vit(image_size=(256, 128), stride=16)
    record = load_vit_weights(vit, tmp_path / "deit.pth")
    assert record["tensors_loaded"] == record["tensors_total"]
    expected = resize_pos_embed(torch.cat([state["pos_embed"][:, :1], state["pos_embed"][:, 2:]], 1), (16, 8))
    assert torch.allclose(vit.pos_embed, expected)
    deeper = tiny_vit(size=ViTSize(32, 3, 2))
    with pytest.raises(WeightMismatchError, match=r"(?s)refusing a file of another ViT size.*missing keys.*blocks\.2"):
        load_vit_weights(deeper, tmp_path / "deit.pth")
    with pytest.raises(FileNotFoundError, match="vit_base_patch16_224"):
        create_model("transreid_vit_base_patch16", pretrained=True)


def test_sie_changes_the_output_only_through_the_camera():
    torch.manual_seed(0)
    vit = tiny_vit(sie_cameras=4, sie_coef=3.0).eval()
    images = torch.randn(2, 3, 64, 32)
    a = vit.embed(images, torch.tensor([0, 1]))
    b = vit.embed(images, torch.tensor([2, 1]))
    shift = 3.0 * (vit.sie_embed[0] - vit.sie_embed[2])  # the same vector on every token of image 0
    assert torch.allclose(a[0] - b[0], shift.expand_as(a[0]), atol=1e-6)
    assert torch.equal(a[1], b[1])
    assert not torch.allclose(vit(images, torch.tensor([0, 1])), vit(images, torch.tensor([2, 1])))
    with pytest.raises(ValueError, match="pass camids"):
        vit(images)
    with pytest.raises(ValueError, match=r"SIE ids must be in \[0, 3\]"):
        vit(images, torch.tensor([0, 4]))
    plain = tiny_vit().eval()
    assert plain.sie_embed is None and torch.equal(plain(images), plain(images, torch.tensor([0, 1])))


def test_cls_attention_logits_are_the_blocks_pre_softmax_scores():
    torch.manual_seed(0)
    vit = tiny_vit().eval()
    block = vit.blocks[-1]
    tokens = torch.randn(2, 1 + 9, TINY.embed_dim)
    captured = {}
    handle = block.attn.qkv.register_forward_hook(lambda m, i, out: captured.setdefault("qkv", out))
    block(tokens)
    handle.remove()
    q, k, _ = captured["qkv"].reshape(2, 10, 3, 2, 16).permute(2, 0, 3, 1, 4)
    expected = (q @ k.transpose(-2, -1) * 16**-0.5)[:, :, 0, 1:]
    assert torch.allclose(cls_attention_logits(block, tokens), expected, atol=1e-5)


def test_jpm_rearrangement_matches_the_official_index_bookkeeping():
    for n in (8, 9, 50):
        tokens = torch.randn(2, 1 + n, 3)
        assert torch.equal(shift_and_shuffle(tokens[:, 1:], 5, 2), reference_shuffle(tokens, 5, 2))


def test_jpm_shapes_and_the_test_feature():
    torch.manual_seed(0)
    model = create_model("transreid_vit", backbone=TINY.as_dict(), num_classes=6, pretrained=False,
                         image_size=(64, 32), stride=12, jpm=True, sie_cameras=2)  # fmt: skip
    images, cams = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 0, 1])
    out = model.train()(images, cams)
    assert out["logits"].shape == (4, 6) and out["features"].shape == (4, 32)
    assert [t.shape for t in out["part_logits"]] == [(4, 6)] * 4
    assert [t.shape for t in out["part_features"]] == [(4, 32)] * 4
    model.eval()
    feat = model(images, cams)
    assert feat.shape == (4, 32 * 5) == (4, model.output_dim)
    tokens, _ = model.vit.forward_tokens(images, cams, depth=1)
    parts = model.jpm(tokens)
    assert torch.allclose(feat[:, 32:64], parts[0] / 4, atol=1e-6)
    model.neck_feat = "after"
    after = model(images, cams)
    assert torch.allclose(after[:, 64:96], model.jpm.necks[1].bn(parts[1]) / 4, atol=1e-6)


def test_vit_sizes_are_registered():
    assert set(VIT_SIZES) >= {"vit_base_patch16_224", "vit_small_patch16_224", "deit_small_patch16_224",
                              "vit_tiny_d6_patch16"}  # fmt: skip
    tiny = create_model("transreid_vit_tiny_d6_patch16", pretrained=False, image_size=(128, 64))
    assert (tiny.embed_dim, len(tiny.vit.blocks), tiny.vit.blocks[0].attn.num_heads) == (192, 6, 3)
    small = VIT_SIZES["vit_small_patch16_224"]
    vit = ReIDViT(size=ViTSize(small.embed_dim, 1, small.num_heads, small.mlp_ratio, small.qkv_bias, small.qk_scale),
                  image_size=(32, 32))  # fmt: skip
    assert vit.blocks[0].attn.scale == 768**-0.5 and not vit.blocks[0].attn.fused_attn
    assert vit.blocks[0].attn.qkv.bias is None and vit.blocks[0].mlp.fc1.out_features == 2304


@pytest.mark.parametrize("jpm,stride", [(True, 11), (False, 12)])
def test_transreid_official_checkpoint_reproduces_the_official_test_feature(tmp_path, jpm, stride):
    grid = patch_grid((256, 128), 16, stride)
    state = official_transreid_state(d=48, depth=3, num_patches=grid[0] * grid[1], cameras=6, classes=7, jpm=jpm)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "transreid.pth")  # a DDP-trained file
    model = load_official_checkpoint(tmp_path / "transreid.pth", method="transreid", num_heads=3)
    assert model.vit.stride == stride and model.vit.sie_embed.shape == (6, 1, 48) and model.neck.num_classes == 7
    assert (model.jpm is not None) == jpm
    assert model.preprocessing.normalization == "half" and model.preprocessing.interpolation == "bilinear"
    images = torch.randn(2, 3, 256, 128, generator=torch.Generator().manual_seed(1))
    cams = torch.tensor([0, 5])
    with torch.no_grad():
        got = model(images, camids=cams)
        expected = reference_transreid(state, images, cams, stride=stride, heads=3, jpm=jpm)
    assert got.shape == expected.shape == (2, 48 * (5 if jpm else 1))
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()


def test_transreid_official_checkpoint_errors_and_inference(tmp_path):
    state = official_transreid_state(d=48, depth=2, num_patches=210, cameras=0, classes=3, jpm=False)
    torch.save({**state, "base.extra": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="does not have: vit.extra"):
        load_official_checkpoint(tmp_path / "extra.pth", method="transreid", num_heads=3)
    torch.save(state, tmp_path / "ok.pth")
    with pytest.raises(ValueError, match="head count is not stored: pass num_heads"):
        load_official_checkpoint(tmp_path / "ok.pth", method="transreid")
    with pytest.raises(ValueError, match="no stride"):
        load_official_checkpoint(tmp_path / "ok.pth", method="transreid", num_heads=3, image_size=(384, 128))
    assert infer_stride(242, (256, 128), path=tmp_path) == 11 and infer_stride(128, (256, 128), path=tmp_path) == 16
    tiny = official_transreid_state(d=192, depth=6, num_patches=32, cameras=0, classes=2, jpm=False)
    assert infer_vit_size(tiny, path=tmp_path)[0] == "vit_tiny_d6_patch16"


@pytest.fixture
def fake(tmp_path, monkeypatch):
    from reid_fakes import fake_dataset

    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    return fake_dataset(tmp_path / "data", num_ids=6, per_id=4)


SMALL = dict(image_size=(64, 64), stride=16, batch_p=3, batch_k=2, epochs=1, max_iters_per_epoch=2, pretrained=False,
             progress=False, fast_data=False, dataset="fake", checkpoint_every=0, eval_batch_size=16)  # fmt: skip


def test_a_tiny_transreid_run_end_to_end(fake):
    from reidlab.methods import run

    result = run("transreid", data=fake, **SMALL)
    assert result.run_dir.name == "fake-smoke" and result.record["distance"] == "cosine"
    assert result.model.output_dim == 192 * 5 and {"id", "triplet", "loss"} <= set(result.history.columns)
    assert result.metrics["protocol"] == "market" and 0 <= result.metrics["mAP"] <= 100
    assert result.record["pretrained"] == []  # random initialisation, recorded as such


def test_attention_pictures_of_reid_vits_pass_the_cameras(tmp_path):
    from reidlab.preprocessing import Preprocessing, attach_preprocessing
    from reidlab.viz import head_attention_maps, head_overlap, plot_head_attention, plot_reid_vit_attention

    torch.manual_seed(0)
    models = {name: attach_preprocessing(create_model("transreid_vit", backbone=TINY.as_dict(), pretrained=False,
                                                      image_size=(64, 32), stride=12, sie_cameras=2, jpm=jpm),
                                         Preprocessing((64, 32), "half", "bilinear"))
              for name, jpm in (("plain", False), ("jpm", True))}  # fmt: skip
    images, cams = torch.randn(2, 3, 64, 32), torch.tensor([0, 1])
    maps = head_attention_maps(models["jpm"], images, cams)
    assert maps.shape == (2, 2, 5, 2) and torch.allclose(maps.sum((2, 3)), torch.ones(2, 2))
    overlap = head_overlap(models["plain"], images, cams)
    assert overlap["correlation"].shape == overlap["orth"].shape == (2,)
    assert (-1 <= overlap["correlation"]).all() and (overlap["correlation"] <= 1).all()
    plot_head_attention(models, images, cams, titles=["a", "b"], save=tmp_path / "heads.png")
    plot_reid_vit_attention(models, images, cams, save=tmp_path / "rollout.png")
    assert (tmp_path / "heads.png").is_file() and (tmp_path / "rollout.png").is_file()
