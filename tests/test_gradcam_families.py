"""Similarity Grad-CAM on the model of every method family: CNNs (BoT, MuDeep v2's streams, IV-ReID), ViTs (TransReID
with SIE and JPM, DPM, DMF) and CLIP image towers (ViT with and without IVLP prompts, ResNet), at their smoke sizes with
random weights."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from open_clip.modified_resnet import ModifiedResNet
from PIL import Image

from reidlab.data import ReIDDataset, Sample, build_test_transform
from reidlab.methods import build_model, get_preset
from reidlab.models.clip_image import ClipResNetEncoder
from reidlab.models.clip_reid import ClipReID
from reidlab.viz import CamPair, EmbeddingCAM, plot_cam_pairs, vit_reshape_transform
from reidlab.viz.ranking import ranking_cams

CAMERAS = 3


def fake_dataset() -> ReIDDataset:
    """Identities and cameras only (the models' class and SIE counts); no image is read."""
    train = [Sample(f"/nowhere/{pid:04d}_c{cam}.png", pid, cam) for pid in range(4) for cam in range(CAMERAS)]
    return ReIDDataset(name="fake", root="/nowhere", train=train, query=train[:2], gallery=train[2:])


def smoke_model(method: str) -> tuple[torch.nn.Module, tuple[int, int]]:
    """The method's smoke-preset model (random init) and its input size."""
    torch.manual_seed(0)
    preset = get_preset(method, "smoke", pretrained=False)
    model, _ = build_model(method, preset, fake_dataset())
    return model.eval(), tuple(preset.image_size)


def clip_resnet_model() -> tuple[torch.nn.Module, tuple[int, int]]:
    """A small open_clip ModifiedResNet tower (layers 1-1-1-1, width 16) as CLIP-ReID's RN encoder at 128x64.

    At initialisation its BN statistics are the identity, and every image gets nearly the same embedding (cosine
    1.0000 between noise images: nothing to explain); one pass in train mode sets them to the batch's, as any
    training would."""
    torch.manual_seed(0)
    visual = ModifiedResNet(layers=[1, 1, 1, 1], output_dim=32, heads=2, image_size=64, width=16)
    model = ClipReID(ClipResNetEncoder(visual, image_size=(128, 64)), num_classes=4)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # a cumulative average: one pass gives the batch's statistics
    with torch.no_grad():
        model.train()(images((128, 64), 0, 8))
    return model.eval(), (128, 64)


# method -> (family, expected target layers)
CASES = {
    "bot": ("cnn", lambda m: [m.backbone.layer4[-1]]),
    "mudeep_v2": ("multi_stream", lambda m: [s[-1] for s in m.streams]),
    "ivreid": ("cnn", lambda m: [m.backbone.layer4[-1]]),
    "transreid": ("vit", lambda m: [m.vit.blocks[-2]]),  # JPM reads the tokens before the last block
    "dpm": ("vit", lambda m: [m.vit.blocks[-1].norm1]),
    "dmf": ("vit", lambda m: [m.vit.blocks[-1].norm1]),
    "clip_reid": ("clip_vit", lambda m: [m.image_encoder.visual.transformer.resblocks[-1].ln_1]),
    "clip_prompts": ("clip_vit", lambda m: [m.image_encoder.visual.transformer.resblocks[-1].ln_1]),
    "clip_resnet": ("clip_resnet", lambda m: [m.image_encoder.visual.layer4[-1]]),
}


def build_case(name: str) -> tuple[torch.nn.Module, tuple[int, int]]:
    return clip_resnet_model() if name == "clip_resnet" else smoke_model(name)


def images(size: tuple[int, int], seed: int, n: int = 2) -> torch.Tensor:
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(CASES))
def test_similarity_cam_on_every_family(name):
    model, (h, w) = build_case(name)
    family, expected = CASES[name]
    model.train()  # the caller's mode must come back
    cam = EmbeddingCAM(model)
    assert cam.family.family == family
    assert list(cam.target_layers) == expected(model)
    gallery, camids = images((h, w), 1), [0, 1]
    query_a, query_b = cam.embed(images((h, w), 2), [2, 2]), cam.embed(images((h, w), 3), [1, 2])
    maps_a = cam(gallery, query_a, camids)
    maps_b = cam(gallery, query_b, camids)
    for maps in (maps_a, maps_b):
        assert maps.shape == (2, h, w)
        assert np.isfinite(maps).all() and maps.min() >= 0.0 and maps.max() <= 1.0 + 1e-6
        assert (maps.std(axis=(1, 2)) > 1e-2).all(), "a constant map explains nothing"
    assert np.abs(maps_a - maps_b).mean() > 0.02, "the map must depend on the query it is explained against"
    assert model.training


def test_sie_models_get_the_images_cameras():
    model, size = smoke_model("transreid")
    cam = EmbeddingCAM(model)
    batch = images(size, 4)
    with pytest.raises(ValueError, match="camids"):
        cam.embed(batch)
    reference = cam.embed(images(size, 5), [0, 0])
    assert not torch.allclose(cam.embed(batch, [0, 0]), cam.embed(batch, [2, 2]))  # SIE sees the camera
    assert np.abs(cam(batch, reference, [0, 0]) - cam(batch, reference, [2, 2])).mean() > 1e-3
    with pytest.raises(ValueError, match="camids: expected 1 or 2"):
        cam(batch, reference, [0, 1, 2])


def test_scorecam_runs_one_camera_per_call_on_sie_models():
    model, size = smoke_model("dpm")
    cam = EmbeddingCAM(model, method="scorecam")
    batch = images(size, 6)
    maps = cam(batch, cam.embed(images(size, 7), [1, 2]), [0, 2])  # different cameras: one image at a time
    assert maps.shape == (2, *size) and np.isfinite(maps).all() and (maps.std(axis=(1, 2)) > 1e-3).all()


def test_vit_reshape_drops_prompt_tokens_and_reads_sequence_first_layouts():
    rows, cols, dim, prompts = 4, 2, 3, 2
    patches = torch.arange(rows * cols, dtype=torch.float32)
    sequence = torch.cat([torch.tensor([-1.0]), patches, torch.full((prompts,), -2.0)])  # [CLS; patches; prompts]
    tokens = sequence[None, :, None].expand(2, -1, dim)
    grid = vit_reshape_transform((rows, cols), 1, num_suffix_tokens=prompts)(tokens)
    assert grid.shape == (2, dim, rows, cols) and grid[0, 0, 1, 0] == cols and grid.min() >= 0
    seq_first = vit_reshape_transform((rows, cols), 1, num_suffix_tokens=prompts, batch_first=False)
    assert torch.equal(seq_first(tokens.transpose(0, 1).contiguous()), grid)
    assert vit_reshape_transform((rows, cols))(grid) is grid  # maps pass through
    with pytest.raises(ValueError, match="suffix"):
        vit_reshape_transform((rows, cols), 1)(tokens)


def test_one_figure_holds_pairs_of_different_families(tmp_path):
    cnn, cnn_size = smoke_model("bot")
    vit, vit_size = smoke_model("dpm")
    rows = [
        CamPair(EmbeddingCAM(cnn), images(cnn_size, 8, 1)[0], images(cnn_size, 9, 1)[0], label="bot"),
        CamPair(EmbeddingCAM(vit, method="gradcam++"), images(vit_size, 8, 1)[0], images(vit_size, 9, 1)[0],
                camids=(0, 1), label="dpm", mean=(0.5,) * 3, std=(0.5,) * 3),
    ]  # fmt: skip
    fig = plot_cam_pairs(rows, save=tmp_path / "pairs.png")
    assert len(fig.axes) == 2 * 4 + 1 and (tmp_path / "pairs.png").is_file()
    assert fig.axes[4].get_ylabel().startswith("dpm") and "gradcam++" in fig._suptitle.get_text()
    plt.close(fig)


def test_ranking_overlays_pass_the_samples_cameras(tmp_path):
    model, (h, w) = smoke_model("dpm")
    rng = np.random.default_rng(0)
    samples = []
    for i, camid in enumerate((0, 1, 2)):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        samples.append(Sample(str(path), 1 + i % 2, camid))
    transform = build_test_transform((h, w))
    q_map, g_maps = ranking_cams(EmbeddingCAM(model), samples[0], samples[1:], transform=transform)
    assert q_map.shape == (h, w) and g_maps.shape == (2, h, w) and np.isfinite(g_maps).all()


def test_a_named_layer_serves_a_model_without_a_family():
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(3, 4)

        def forward(self, images):
            return self.proj(images.permute(0, 2, 3, 1)).mean((1, 2))

    model = Linear()
    with pytest.raises(ValueError, match="cannot choose a Grad-CAM target layer"):
        EmbeddingCAM(model)
    cam = EmbeddingCAM(model, target_layer="proj", reshape_transform=lambda x: x.permute(0, 3, 1, 2))
    assert cam.target_layers == (model.proj,) and cam.layer_names() == ["proj"]
    maps = cam(images((8, 4), 10), torch.randn(4))
    assert maps.shape == (2, 8, 4) and np.isfinite(maps).all()

