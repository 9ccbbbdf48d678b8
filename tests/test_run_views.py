"""Notebook 09's logic: every finished run of every method found, one ranked for the figures, the others loaded by the
browser when picked, and a Grad-CAM pair per method (BoT and DPM runs written by the test, no training)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from matplotlib import pyplot as plt
from reid_fakes import write_market_layout

from reidlab.data import ReIDDataset, load_dataset
from reidlab.engine.checkpoint import save_model
from reidlab.engine.runs import RunInfo, run_folder, write_run_record
from reidlab.engine.stages import plain
from reidlab.methods import build_model, get_preset
from reidlab.viz import (
    RetrievalView,
    attention_groups,
    build_browser,
    choose_run,
    is_reid_vit,
    load_run_view,
    load_runs,
    main_runs,
    plot_cam_pairs,
    run_pair,
    run_views,
    runs_by_method,
    runs_table,
)
from reidlab.viz.run_views import browser_views, evaluation_split


def write_run(runs_root, method, preset, dataset, finished="2024-01-01 00:00:00", name=None):
    """A finished run folder as ``reidlab.methods.run`` leaves it (untrained weights: no training here)."""
    model, _ = build_model(method, preset, dataset)
    folder = run_folder(method, preset.dataset, preset.profile, name, root=runs_root)
    folder.mkdir(parents=True)
    save_model(folder / "model.pt", model)
    write_run_record(folder, {"method": method, "dataset": preset.dataset, "profile": preset.profile, "name": name,
                              "status": "finished", "preset": plain(preset.as_dict()), "finished": finished,
                              "metrics": {"R1": 12.5, "mAP": 10.0}})  # fmt: skip
    return folder


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A Market-layout fake dataset and finished smoke runs on it: BoT, a newer named BoT variant, DPM (SIE)."""
    root = tmp_path_factory.mktemp("lab")
    data_root = write_market_layout(root, num_ids=6, per_id=4, size=(32, 16)).parent
    dataset = load_dataset("market1501", root=data_root)
    runs_root = root / "runs"
    common = {"dataset": "market1501", "data_root": str(data_root), "pretrained": False, "num_workers": 0}
    bot = get_preset("bot", "smoke", **common, image_size=(32, 16))
    dpm = get_preset("dpm", "smoke", **common)
    write_run(runs_root, "bot", bot, dataset, finished="2024-01-02 00:00:00")
    write_run(runs_root, "bot", bot, dataset, finished="2024-01-03 00:00:00", name="dg")
    write_run(runs_root, "dpm", dpm, dataset)
    return runs_root, dataset


def test_every_method_is_listed_with_its_runs_or_what_trains_it(lab):
    runs_root, _ = lab
    runs = runs_by_method("smoke", root=runs_root)
    assert list(runs)[:3] == ["bot", "mudeep_v2", "ivreid"] and "clip_prompts" in runs
    assert [len(runs[m]) for m in ("bot", "dpm", "transreid", "clip_reid")] == [2, 1, 0, 0]
    # the method's own run before a newer named variant
    assert [i.path.name for i in runs["bot"]] == ["market1501-smoke", "market1501-smoke-dg"]
    assert [i.record["method"] for i in main_runs(runs)] == ["bot", "dpm"]
    table = runs_table(runs, "smoke")
    assert table["run"].tolist()[:2] == ["market1501-smoke", "market1501-smoke-dg"] and table["mAP"][0] == 10.0
    table = table.drop_duplicates("method").set_index("method")
    assert "notebooks/04_transreid_dpm.ipynb" in table.loc["transreid", "note"]
    assert choose_run(runs, "auto").record["method"] == "bot"
    assert choose_run(runs, "dpm").path.parent.name == "dpm"
    assert choose_run(runs, "transreid") is None
    with pytest.raises(ValueError, match="method: expected 'auto' or one of"):
        choose_run(runs, "nope")
    assert runs_by_method("full", root=runs_root)["bot"] == []


def test_a_run_ranks_its_test_split_with_its_methods_distance(lab):
    runs_root, dataset = lab
    runs = runs_by_method("smoke", root=runs_root)
    view = load_run_view(runs["dpm"][0])
    assert view.distmat.shape == (len(dataset.query), len(dataset.gallery)) and view.note == ""
    assert "mask" in view.features["query"]  # DPM ranks with the query-mask-weighted distance
    assert view.result.num_valid_queries == int(view.metrics.valid.sum())
    assert np.isclose(np.mean(view.metrics.ap[view.metrics.valid]), view.result.mAP, atol=1e-3)
    shown = view.success_and_failure()
    assert {label for label, *_ in shown} <= {"success", "failure"} and shown
    for label, qi, gi, correct in shown:
        assert correct == (label == "success") and view.metrics.rank1[qi] == correct
        assert (dataset.gallery[gi].pid == dataset.query[qi].pid) == correct
    retrieval = view.retrieval_view()
    assert isinstance(retrieval, RetrievalView) and retrieval.can_explain and retrieval.mean == (0.485, 0.456, 0.406)


def test_the_browser_loads_another_run_when_it_is_picked(lab):
    runs_root, _ = lab
    runs = runs_by_method("smoke", root=runs_root)
    first = load_run_view(runs["bot"][0])
    views = browser_views(runs, {first.label: first})
    dpm_label = "dpm · market1501-smoke"
    assert list(views) == [first.label, "bot · market1501-smoke-dg", dpm_label] and callable(views[dpm_label])
    browser = build_browser(views, topk=3)
    assert callable(browser.views[dpm_label])  # not loaded before it is picked
    fig = browser.select(model=dpm_label, query=int(np.flatnonzero(first.metrics.valid)[0]), cam=True)
    assert isinstance(browser.views[dpm_label], RetrievalView)
    assert len(fig.axes) == 4 and "gradcam" in fig._suptitle.get_text()  # SIE cameras reach the CAM
    plt.close("all")


def test_one_gradcam_pair_per_method(lab, tmp_path):
    runs_root, _ = lab
    runs = runs_by_method("smoke", root=runs_root)
    loaded = load_runs([runs["bot"][0], runs["dpm"][0]])
    assert [is_reid_vit(run.model) for run in loaded] == [False, True]
    assert attention_groups(loaded) == [[loaded[1]]]
    assert loaded[0].dataset is loaded[1].dataset  # one dataset load for both runs
    rows = [run_pair(run) for run in loaded]
    assert [row.query.shape[1:] for row in rows] == [(32, 16), (128, 64)]  # each run's own input size
    fig = plot_cam_pairs(rows, save=tmp_path / "every_method.png")
    assert len(fig.axes) == 9 and fig.axes[4].get_ylabel().startswith("dpm\nvit")
    images, camids, titles = loaded[1].inputs(2)
    assert images.shape == (2, 3, 128, 64) and camids.tolist() == [s.camid for s in loaded[1].dataset.query[:2]]
    plt.close(fig)


def test_a_training_only_source_is_shown_on_the_profiles_world(monkeypatch, lab):
    _, dataset = lab
    source = ReIDDataset(name="synth_randperson", root="/nowhere", train=dataset.train)
    monkeypatch.setattr(run_views, "load_method_dataset", lambda p: source if p.dataset == "src" else dataset)
    preset = get_preset("bot", "smoke", dataset="src")
    shown, note = evaluation_split(preset)
    assert shown is dataset and "training-only" in note and "synth_market" in note


def test_a_run_folder_can_be_named_directly(lab):
    runs_root, _ = lab
    info = choose_run({}, run=runs_root / "bot" / "market1501-smoke")
    assert isinstance(info, RunInfo) and info.record["method"] == "bot"
    with pytest.raises(FileNotFoundError, match="run.json"):
        choose_run({}, run=runs_root / "no_such_run")
