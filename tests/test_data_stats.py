"""Statistics tables, published-number checks and the data-preparation plots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from reidlab.data import ReIDDataset, Sample, stats


@pytest.fixture
def tiny(tmp_path) -> ReIDDataset:
    rng = np.random.default_rng(0)

    def sample(pid, cam, i, modality="rgb"):
        path = tmp_path / f"{pid}_{cam}_{i}.png"
        Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(path)
        return Sample(str(path), pid, cam, modality)

    train = [sample(0, 0, 0), sample(0, 1, 1), sample(0, 2, 2, "ir"), sample(1, 0, 3), sample(1, 0, 4)]
    query = [sample(5, 0, 5)]
    gallery = [sample(5, 1, 6), sample(6, 2, 7, "ir")]
    return ReIDDataset("tiny", str(tmp_path), train, query, gallery, options={"trial": 0})


def test_statistics_table_counts(tiny):
    table = stats.statistics_table([tiny])
    row = table.loc["tiny"]
    assert (row["train_ids"], row["train_images"], row["query_images"], row["gallery_ids"]) == (2, 5, 1, 2)
    assert row["cameras"] == 3 and row["ir_images"] == 2 and row["options"] == "trial=0"
    assert list(stats.statistics_table({"renamed": tiny}).index) == ["renamed"]


def test_compare_with_published(tiny, monkeypatch):
    unknown = stats.compare_with_published(tiny)
    assert unknown["published"].isna().all() and unknown["match"].isna().all()
    monkeypatch.setitem(stats.published_statistics, "tiny",
                        {"train": (2, 5), "query": (1, 1), "gallery": (2, 3), "cameras": 3})
    table = stats.compare_with_published(tiny)
    assert bool(table.loc[("train", "images"), "match"]) and bool(table.loc[("all", "cameras"), "match"])
    assert not bool(table.loc[("gallery", "images"), "match"])  # 2 measured vs 3 published
    assert isinstance(table, pd.DataFrame)


def test_published_key_follows_options():
    for options, key in (({"subset": "labeled"}, "cuhk03_np/labeled"), ({}, "cuhk03_np/detected")):
        assert stats.published_key(ReIDDataset("cuhk03_np", "/x", options=options)) == key
    assert stats.published_key(ReIDDataset("msmt17", "/x", options={"with_val": False})) == "msmt17/without_val"
    assert stats.published_statistics["market1501"]["gallery"] == (751, 15913)


def test_plots_return_figures_and_save(tiny, tmp_path):
    for fig, name in (
        (stats.plot_images_per_identity(tiny, save=tmp_path / "ids.png"), "ids.png"),
        (stats.plot_images_per_camera(tiny, save=tmp_path / "cams.png"), "cams.png"),
        (stats.identity_montage(tiny, save=tmp_path / "montage.png"), "montage.png"),
    ):
        assert isinstance(fig, Figure) and (tmp_path / name).stat().st_size > 0
    montage = stats.identity_montage(tiny, pid=None)
    assert "identity 0" in montage._suptitle.get_text()  # identity seen by most cameras
    assert len(montage.axes) == 3  # three cameras x one image each
    with pytest.raises(ValueError, match="identity 9"):
        stats.identity_montage(tiny, pid=9)
    empty = ReIDDataset("empty_eval", "/x", train=tiny.train, empty_by_design=("query", "gallery"))
    assert isinstance(stats.plot_images_per_camera(empty), Figure)
    with pytest.raises(ValueError, match="split 'query' is empty"):
        stats.identity_montage(empty, split="query")
    import matplotlib.pyplot as plt

    plt.close("all")
