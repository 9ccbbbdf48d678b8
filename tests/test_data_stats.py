"""Statistics tables and published-number checks (the plots are tested in test_viz.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
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


def test_reidlab_data_draws_nothing():
    """Plotting lives in reidlab.viz: no module of reidlab.data imports matplotlib, seaborn or reidlab.viz."""
    import ast
    from pathlib import Path

    import reidlab.data

    plotting = ("matplotlib", "seaborn", "reidlab.viz")
    offenders = []
    for path in sorted(Path(reidlab.data.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == p or n.startswith(p + ".") for n in names for p in plotting):
                offenders.append(f"{path.name}:{node.lineno}")
    assert not offenders, f"reidlab.data imports plotting code: {offenders}"
