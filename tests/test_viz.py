"""reidlab.viz: ranking grids, similarity Grad-CAM (CNN and ViT), attention maps, plots, headless browser."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt
from matplotlib.colors import to_rgba
from PIL import Image
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from reidlab.data.records import ReIDDataset, Sample
from reidlab.viz import (
    MATCH_COLOR,
    MISMATCH_COLOR,
    QUERY_COLOR,
    EmbeddingCAM,
    RetrievalView,
    attention_maps,
    attention_rollout,
    build_browser,
    camera_montage,
    collect_attentions,
    description_examples,
    distance_histograms,
    find_target_layer,
    identity_montage,
    infrared_examples,
    occlusion_examples,
    per_camera_accuracy,
    per_query_metrics,
    pick_queries,
    plot_attention_maps,
    plot_cmc,
    plot_distance_histograms,
    plot_embedding_map,
    plot_gradcam_pairs,
    plot_images_per_camera,
    plot_images_per_identity,
    plot_per_camera_accuracy,
    plot_ranking,
    vit_reshape_transform,
)
from reidlab.viz.figures import figure_path

H, W = 64, 32


# ----------------------------------------------------------------------------- tiny models (model contract)
class TinyCNN(nn.Module):
    """ResNet-shaped toy: eval mode returns the embedding (B, D), train mode a dict."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.layer4 = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.head = nn.Linear(16, dim, bias=False)

    def forward(self, images, camids=None):
        feats = self.layer4(self.layer1(images)).mean((2, 3))
        return {"features": feats, "logits": self.head(feats)} if self.training else self.head(feats)


class ColourNet(nn.Module):
    """Embedding = mean positive R, G, B response: the similarity to a red image lives where the red is."""

    def __init__(self):
        super().__init__()
        self.layer4 = nn.Sequential(nn.Conv2d(3, 3, 1))
        with torch.no_grad():
            self.layer4[0].weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.layer4[0].bias.zero_()

    def forward(self, images, camids=None):
        return {"embedding": torch.relu(self.layer4(images)).mean((2, 3))}


class TinyViTReID(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = VisionTransformer(
            img_size=(H, W), patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0
        )

    def forward(self, images, camids=None):
        return self.backbone(images)


def colour_image(red_rows=None, green_rows=None) -> torch.Tensor:
    img = torch.zeros(3, H, W)
    if red_rows is not None:
        img[0, red_rows[0] : red_rows[1], 4:28] = 1.0
    if green_rows is not None:
        img[1, green_rows[0] : green_rows[1], 4:28] = 1.0
    return img


def centre_row(cam_map: np.ndarray) -> float:
    weights = cam_map.sum(1)
    return float((weights * np.arange(len(weights))).sum() / weights.sum())


# ----------------------------------------------------------------------------- a tiny retrieval problem
@pytest.fixture()
def retrieval(tmp_path):
    """2 queries, 6 gallery images written as PNGs, and a distance matrix with a known ranking."""
    rng = np.random.default_rng(0)

    def sample(name, pid, camid):
        path = tmp_path / f"{name}.png"
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(path)
        return Sample(path=str(path), pid=pid, camid=camid)

    query = [sample("q0", 1, 0), sample("q1", 2, 0)]
    gallery = [
        sample("g0", 1, 1),
        sample("g1", 2, 1),
        sample("g2", 1, 0),  # same pid + same camera as q0: junk for q0
        sample("g3", 3, 2),
        sample("g4", 1, 2),
        sample("g5", 2, 0),  # junk for q1
    ]
    distmat = np.array(
        [
            [0.30, 0.10, 0.05, 0.50, 0.20, 0.60],  # q0 kept order: g1 (x), g4 (v), g0 (v), g3 (x), g5 (x)
            [0.10, 0.20, 0.30, 0.40, 0.50, 0.01],  # q1 kept order: g0 (x), g1 (v), g2 (x), g3 (x), g4 (x)
        ]
    )
    return distmat, query, gallery


def ranking_arrays(query, gallery):
    return (
        np.array([s.pid for s in query]),
        np.array([s.pid for s in gallery]),
        np.array([s.camid for s in query]),
        np.array([s.camid for s in gallery]),
    )


def naive_ap(dist_row, q_pid, q_cam, g_pids, g_cams):
    hits, precisions, rank = 0, [], 0
    for g in np.argsort(dist_row, kind="stable"):
        if g_pids[g] == q_pid and g_cams[g] == q_cam:
            continue
        rank += 1
        if g_pids[g] == q_pid:
            hits += 1
            precisions.append(hits / rank)
    return np.mean(precisions) if precisions else np.nan


# ----------------------------------------------------------------------------- per-query metrics
def test_per_query_ap_matches_a_naive_loop_and_picks_best_and_worst():
    rng = np.random.default_rng(1)
    q_pids, g_pids = rng.integers(0, 6, 25), rng.integers(0, 6, 80)
    q_cams, g_cams = rng.integers(0, 3, 25), rng.integers(0, 3, 80)
    dist = rng.random((25, 80))
    res = per_query_metrics(dist, q_pids, g_pids, q_cams, g_cams, chunk=7)
    expected = np.array([naive_ap(dist[i], q_pids[i], q_cams[i], g_pids, g_cams) for i in range(25)])
    np.testing.assert_allclose(res.ap, expected, equal_nan=True)
    worst, best = pick_queries(res, "worst", 3), pick_queries(res.ap, "best", 3)
    assert np.all(res.ap[worst] <= np.nanmin(res.ap[best]))
    assert res.ap[worst[0]] == np.nanmin(res.ap) and res.ap[best[0]] == np.nanmax(res.ap)
    with pytest.raises(ValueError, match="mode"):
        pick_queries(res, "median", 2)


def test_per_query_metrics_on_the_known_ranking(retrieval):
    distmat, query, gallery = retrieval
    res = per_query_metrics(distmat, *ranking_arrays(query, gallery))
    np.testing.assert_allclose(res.ap, [(1 / 2 + 2 / 3) / 2, 1 / 2])
    assert res.rank1.tolist() == [False, False]
    assert res.first_match.tolist() == [1, 1]
    assert res.failures.tolist() == [0, 1]


# ----------------------------------------------------------------------------- ranking grid
def border(ax):
    return ax.spines["left"].get_edgecolor()


def test_ranking_grid_panels_and_border_colours(retrieval, tmp_path):
    distmat, query, gallery = retrieval
    out = tmp_path / "out" / "ranking.png"
    fig = plot_ranking(distmat, query, gallery, [0, 1], topk=4, save=out)
    axes = fig.axes
    assert len(axes) == 2 * (1 + 4)
    rows = [axes[:5], axes[5:]]
    expected = [["match" if m else "mismatch" for m in row] for row in ([0, 1, 1, 0], [0, 1, 0, 0])]
    for row_axes, kinds in zip(rows, expected, strict=True):
        assert row_axes[0].get_gid() == "query"
        assert border(row_axes[0]) == to_rgba(QUERY_COLOR)
        assert [ax.get_gid() for ax in row_axes[1:]] == kinds
        for ax, kind in zip(row_axes[1:], kinds, strict=True):
            assert border(ax) == to_rgba(MATCH_COLOR if kind == "match" else MISMATCH_COLOR)
    # junk (same identity, same camera) never appears: q0's nearest image g2 is skipped
    assert "d=0.050" not in " ".join(ax.get_title() for ax in rows[0])
    assert "d=0.100" in rows[0][1].get_title()
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob("*.tmp"))
    plt.close(fig)


def test_ranking_grid_pads_short_rankings_and_checks_input(retrieval):
    distmat, query, gallery = retrieval
    fig = plot_ranking(distmat, query, gallery, [0], topk=7)  # only 5 kept entries
    assert len(fig.axes) == 8
    assert [ax.get_gid() for ax in fig.axes[6:]] == [None, None]
    plt.close(fig)
    with pytest.raises(IndexError):
        plot_ranking(distmat, query, gallery, [5])
    with pytest.raises(ValueError, match="input recipe"):
        plot_ranking(distmat, query, gallery, [0], cam=object())


def test_ranking_grid_with_gradcam_overlays(retrieval):
    distmat, query, gallery = retrieval
    torch.manual_seed(0)
    cam = EmbeddingCAM(TinyCNN())
    fig = plot_ranking(distmat, query, gallery, [0], topk=3, cam=cam, image_size=(H, W))
    assert len(fig.axes) == 4 and "gradcam" in fig._suptitle.get_text()
    plt.close(fig)


def test_save_names_go_to_the_figures_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("REIDLAB_FIGURES", str(tmp_path / "figs"))
    assert figure_path("cmc") == tmp_path / "figs" / "cmc.png"
    assert figure_path(tmp_path / "x" / "a.png") == tmp_path / "x" / "a.png"


# ----------------------------------------------------------------------------- Grad-CAM
@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "eigencam"])
def test_gradcam_map_has_image_size_and_is_not_constant(method):
    torch.manual_seed(0)
    model = TinyCNN()
    images = torch.randn(2, 3, H, W)
    cam = EmbeddingCAM(model, method=method)
    maps = cam(images, cam.embed(images).flip(0))
    assert maps.shape == (2, H, W)
    assert np.all(np.isfinite(maps)) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert maps[0].std() > 1e-3 and maps[1].std() > 1e-3
    assert model.training  # the caller's mode is restored


def test_gradcam_moves_with_the_reference_embedding():
    model = ColourNet()
    image = colour_image(red_rows=(4, 20), green_rows=(44, 60))  # red on top, green at the bottom
    cam = EmbeddingCAM(model)
    assert find_target_layer(model) is model.layer4[0]
    red_ref = cam.embed(colour_image(red_rows=(10, 50)))[0]
    green_ref = cam.embed(colour_image(green_rows=(10, 50)))[0]
    towards_red, towards_green = cam(image, red_ref)[0], cam(image, green_ref)[0]
    assert towards_red.shape == (H, W) and towards_red.std() > 0.1
    assert centre_row(towards_red) < 24 < 40 < centre_row(towards_green)
    # the pair view explains each image against the other one
    a_map, b_map, sim = cam.pair(image, colour_image(green_rows=(10, 50)))
    assert centre_row(a_map) > 40 and 0 < sim < 1


def test_gradcam_target_layer_choice_and_override():
    torch.manual_seed(0)
    cnn = TinyCNN()
    assert find_target_layer(cnn) is cnn.layer4[-1]
    assert EmbeddingCAM(cnn, target_layer="layer1.0").target_layer is cnn.layer1[0]

    class WithHook(TinyCNN):
        def gradcam_target_layer(self):
            return self.layer1[0]

    assert find_target_layer(WithHook()).__class__ is nn.Conv2d
    vit = TinyViTReID()
    assert find_target_layer(vit) is vit.backbone.blocks[-1].norm1
    with pytest.raises(ValueError, match="unknown CAM method"):
        EmbeddingCAM(cnn, method="nope")


def test_vit_reshape_puts_tokens_on_the_patch_grid():
    rows, cols, dim = 8, 4, 5
    patch_values = torch.arange(rows * cols, dtype=torch.float32)
    tokens = torch.cat([torch.full((1,), -1.0), patch_values])[None, :, None].expand(2, -1, dim)
    grid = vit_reshape_transform((rows, cols))(tokens)
    assert grid.shape == (2, dim, rows, cols)
    assert grid[0, 0, 1, 0] == cols and grid[1, 3, rows - 1, cols - 1] == rows * cols - 1  # row-major, CLS gone
    with pytest.raises(ValueError, match="patch grid"):
        vit_reshape_transform((rows, cols), num_prefix_tokens=2)(tokens)


def test_gradcam_on_a_tiny_vit():
    torch.manual_seed(0)
    model = TinyViTReID()
    images = torch.randn(2, 3, H, W)
    cam = EmbeddingCAM(model)
    refs = torch.randn(2, 32)
    maps = cam(images, refs)
    assert maps.shape == (2, H, W)
    assert maps[0].std() > 1e-3
    other = cam(images, -refs)
    assert np.abs(maps - other).mean() > 0.05


def test_gradcam_pair_figure_has_rows_and_a_colour_bar(tmp_path):
    torch.manual_seed(0)
    model = TinyCNN()
    q, g = torch.randn(2, 3, H, W), torch.randn(2, 3, H, W)
    fig = plot_gradcam_pairs(model, q, g, titles=[("q", "g")] * 2, save=tmp_path / "pairs.png")
    assert len(fig.axes) == 2 * 4 + 1
    assert fig.axes[-1].get_ylabel().startswith("relevance")
    assert (tmp_path / "pairs.png").is_file()
    plt.close(fig)


# ----------------------------------------------------------------------------- attention
def test_recorded_attention_equals_the_explicit_softmax():
    torch.manual_seed(0)
    model = TinyViTReID()
    images = torch.randn(2, 3, H, W)
    recorded = collect_attentions(model, images)
    assert len(recorded) == 2 and recorded[0].shape == (2, 2, 33, 33)
    explicit = []
    handles = []
    for block in model.backbone.blocks:
        block.attn.fused_attn = False
        handles.append(block.attn.attn_drop.register_forward_hook(lambda m, i, o: explicit.append(o)))
    with torch.no_grad():
        model.eval()(images)
    for h in handles:
        h.remove()
    for got, want in zip(recorded, explicit, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_attention_rollout_shape_and_normalisation():
    torch.manual_seed(0)
    attns = [torch.softmax(torch.randn(3, 2, 9, 9), dim=-1) for _ in range(4)]
    for discard in (0.0, 0.5):
        rollout = attention_rollout(attns, discard_ratio=discard)
        assert rollout.shape == (3, 9, 9)
        torch.testing.assert_close(rollout.sum(-1), torch.ones(3, 9))
        assert rollout.min() >= 0
    # identity attention leaves the identity
    eye = torch.eye(9).expand(3, 2, 9, 9)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(9).expand(3, 9, 9))

    model = TinyViTReID()
    maps = attention_maps(model, torch.randn(2, 3, H, W))
    for key in ("cls", "rollout"):
        assert maps[key].shape == (2, 8, 4)
        torch.testing.assert_close(maps[key].sum((1, 2)), torch.ones(2))
    fig = plot_attention_maps(model, torch.randn(2, 3, H, W), titles=["a", "b"])
    assert len(fig.axes) == 3 * 2 + 1
    plt.close(fig)


# ----------------------------------------------------------------------------- plots
def test_plots_return_figures_with_labels(retrieval, tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_FIGURES", str(tmp_path))
    distmat, query, gallery = retrieval
    arrays = ranking_arrays(query, gallery)
    edges, pos, neg = distance_histograms(distmat, *arrays, bins=10)
    assert pos.sum() == 2 + 1 and neg.sum() == 3 + 4  # junk pairs (same ID, same camera) left out
    fig = plot_cmc({"a": {"cmc": np.linspace(0.5, 1, 30), "mAP": 0.4}, "b": np.linspace(0.2, 0.9, 30)}, save="cmc")
    assert fig.axes[0].get_xlabel() == "rank" and (tmp_path / "cmc.png").is_file()
    assert "R1 50.0%" in fig.axes[0].get_legend().get_texts()[0].get_text()
    fig2 = plot_distance_histograms(distmat, *arrays, bins=10)
    assert fig2.axes[0].get_ylabel() == "density"
    table = per_camera_accuracy(distmat, *arrays)
    assert table["queries"].sum() == 2
    fig3 = plot_per_camera_accuracy(distmat, *arrays)
    assert fig3.axes[0].get_ylabel() == "accuracy (%)"
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(6), 5)
    feats = rng.normal(size=(30, 8)) + 4 * np.eye(8)[pids % 8]
    fig4 = plot_embedding_map(feats, pids, pids % 3, max_identities=4)
    assert len(fig4.axes) == 3  # two maps + identity colour bar
    assert "4 IDs" in fig4.axes[0].get_title()
    for f in (fig, fig2, fig3, fig4):
        plt.close(f)


# ----------------------------------------------------------------------------- browser
def test_browser_builds_headless_and_reacts(retrieval):
    import ipywidgets as widgets

    distmat, query, gallery = retrieval
    torch.manual_seed(0)
    views = {
        "tiny-cnn": RetrievalView(distmat=distmat, query=query, gallery=gallery, model=TinyCNN(), image_size=(H, W)),
        "no-model": RetrievalView(distmat=torch.as_tensor(distmat[:, ::-1].copy()), query=query, gallery=gallery),
    }
    browser = build_browser(views, topk=3)
    assert isinstance(browser, widgets.Widget)
    assert bytes(browser._image.value[:4]) == b"\x89PNG"
    assert "AP" in browser.status_text and "<" not in browser.status_text
    assert len(browser.figure.axes) == 4
    fig = browser.select(query=1, cam=True, method="gradcam++", topk=2)
    assert len(fig.axes) == 3 and "gradcam++" in fig._suptitle.get_text()
    fig = browser.select(model="no-model")
    assert browser._cam.disabled and not browser._cam.value
    with pytest.raises(ValueError, match="Grad-CAM unavailable"):
        browser.select(cam=True)
    browser.select(failures=True)
    assert [v for _, v in browser._query.options] == views["no-model"].metrics.failures.tolist()


def test_per_query_ap_agrees_with_the_evaluation_core():
    from reidlab.evaluation import evaluate_rank

    rng = np.random.default_rng(3)
    q_pids, g_pids = rng.integers(-1, 8, 30), rng.integers(-1, 8, 120)
    q_cams, g_cams = rng.integers(0, 4, 30), rng.integers(0, 4, 120)
    dist = rng.random((30, 120)).astype(np.float32)
    mine = per_query_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    core = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol="market")
    np.testing.assert_allclose(mine.ap, core.query_ap, equal_nan=True, rtol=1e-6)
    valid = mine.valid
    np.testing.assert_array_equal(mine.first_match[valid] + 1, core.first_match_rank[valid])
    assert pick_queries(core, "worst", 4).tolist() == pick_queries(mine, "worst", 4).tolist()


# ----------------------------------------------------------------------------- dataset pictures
@pytest.fixture()
def tiny_dataset(tmp_path) -> ReIDDataset:
    rng = np.random.default_rng(0)

    def sample(pid, cam, i, modality="rgb"):
        path = tmp_path / f"{pid}_{cam}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(path)
        return Sample(str(path), pid, cam, modality)

    train = [sample(0, 0, 0), sample(0, 1, 1), sample(0, 2, 2, "ir"), sample(1, 0, 3), sample(1, 0, 4)]
    query = [sample(5, 0, 5)]
    gallery = [sample(5, 1, 6), sample(6, 2, 7, "ir")]
    return ReIDDataset("tiny", str(tmp_path), train, query, gallery, options={"trial": 0})


def test_dataset_plots_return_figures_and_save(tiny_dataset, tmp_path):
    tiny = tiny_dataset
    for fig, name in (
        (plot_images_per_identity(tiny, save=tmp_path / "ids.png"), "ids.png"),
        (plot_images_per_camera(tiny, save=tmp_path / "cams.png"), "cams.png"),
        (identity_montage(tiny, save=tmp_path / "montage.png"), "montage.png"),
    ):
        assert isinstance(fig, plt.Figure) and (tmp_path / name).stat().st_size > 0
    montage = identity_montage(tiny, pid=None)
    assert "identity 0" in montage._suptitle.get_text()  # identity seen by most cameras
    assert len(montage.axes) == 3  # three cameras x one image each
    with pytest.raises(ValueError, match="identity 9"):
        identity_montage(tiny, pid=9)
    empty = ReIDDataset("empty_eval", "/x", train=tiny.train, empty_by_design=("query", "gallery"))
    assert isinstance(plot_images_per_camera(empty), plt.Figure)
    with pytest.raises(ValueError, match="split 'query' is empty"):
        identity_montage(empty, split="query")
    plt.close("all")


def test_synthetic_world_pictures(tmp_path):
    from reidlab.data import load_dataset
    from reidlab.data.synthetic import generate

    generate("synth_sysu", "mini", out=tmp_path, progress=False, workers=1)
    sysu = load_dataset("synth_sysu", root=tmp_path, size="mini")
    montage = camera_montage(sysu, num_ids=3, save=tmp_path / "cams.png")
    assert len(montage.axes) == 3 * 6 and (tmp_path / "cams.png").stat().st_size > 0
    infrared = infrared_examples(sysu, num=4)
    assert len(infrared.axes) == 2 * 4 and "rgb" in infrared.axes[0].get_title()
    described = description_examples(sysu, num=3)
    assert all(ax.get_xlabel() for ax in described.axes)  # each image carries its description
    with pytest.raises(ValueError, match="no occluded image"):
        occlusion_examples(sysu)
    plt.close("all")
