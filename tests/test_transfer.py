"""The cross-domain matrix: runs found in the registry, rebuilt, evaluated per target and cached; the seeds'
numbers beside ours; methods ranked per setting with a reading written from the numbers."""

import json

import pandas as pd
import pytest

from reidlab.evaluation.method_ranking import describe_ranking, rank_methods
from reidlab.methods import load_run, run
from reidlab.methods import transfer as tr
from reidlab.reproduce.compare import beside_seeds

TINY = dict(epochs=1, max_iters_per_epoch=2, pretrained=False, progress=False)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    run("bot", dataset="synth_market", run_dir=root / "bot" / "synth_market-smoke", device="cpu", evaluate=False,
        **TINY)
    run("bot", dataset="synth_market", run_dir=root / "bot" / "synth_market-smoke-epochs1", device="cpu",
        evaluate=False, **TINY)
    return root


def test_matrix_runs_finds_the_runs_and_leaves_ablations_out(runs_root):
    found = tr.matrix_runs("smoke", root=runs_root)
    assert [i.path.name for i in found] == ["synth_market-smoke"]
    every = tr.matrix_runs("smoke", root=runs_root, include_ablations=True)
    assert sorted(tr.variant_label(i) for i in every) == ["", "epochs1"]
    assert tr.matrix_runs("smoke", root=runs_root, methods=["dpm"]) == []
    with pytest.raises(ValueError, match=r"methods: unknown \['nosuch'\]"):
        tr.matrix_runs("smoke", root=runs_root, methods=["bot", "nosuch"])


def test_transfer_matrix_evaluates_every_target_and_caches(runs_root, monkeypatch):
    found = tr.matrix_runs("smoke", root=runs_root)
    frame = tr.transfer_matrix(found, ["synth_duke"], device="cpu", progress=False)
    assert list(frame.columns) == list(tr.COLUMNS)
    assert frame[["source", "target", "setting"]].values.tolist() == [
        ["synth_market", "synth_market", "in-domain"], ["synth_market", "synth_duke", "cross-domain"]]
    assert frame["protocol"].eq("market").all() and frame["ap"].eq("standard").all()
    assert ((frame["mAP"] > 0) & (frame["mAP"] <= 100)).all()
    cache = found[0].path / "transfer" / "synth_duke-mini-noflip.json"
    assert json.loads(cache.read_text())["numbers"]["mAP"] == frame["mAP"].iloc[1]
    monkeypatch.setattr(tr, "evaluate_method", lambda *a, **k: pytest.fail("a cached cell was evaluated again"))
    again = tr.transfer_matrix(found, ["synth_duke"], device="cpu", progress=False)
    assert again["mAP"].tolist() == frame["mAP"].tolist()


def test_a_changed_model_file_invalidates_the_cache(runs_root):
    trained = load_run(tr.matrix_runs("smoke", root=runs_root)[0])
    first = tr.transfer_row(trained, "synth_duke", device="cpu")
    cache = trained.run_dir / "transfer" / "synth_duke-mini-noflip.json"
    saved = json.loads(cache.read_text())
    saved["model"], saved["numbers"]["mAP"] = [0, 0], -1.0  # as if written for another model file
    cache.write_text(json.dumps(saved))
    assert tr.transfer_row(trained, "synth_duke", device="cpu")["mAP"] == first["mAP"]


def test_load_run_refuses_a_folder_without_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run.json"):
        load_run(tmp_path)


def _row(method, source, target, mAP, variant="", setting="cross-domain"):
    return {"method": method, "variant": variant, "source": source, "target": target, "setting": setting,
            "protocol": "market", "ap": "standard", "flip_tta": False, "R1": mAP + 10, "mAP": mAP, "mINP": 1.0,
            "run": ""}


def test_the_seeds_numbers_sit_beside_the_matching_cells():
    frame = pd.DataFrame([_row("dmf", "synth_randperson", "synth_market", 30.0),
                          _row("clip_prompts", "synth_market", "synth_duke", 20.0, variant="coop"),
                          _row("bot", "synth_market", "synth_duke", 10.0)])
    out = beside_seeds(frame, "smoke")
    assert out.loc[0, "seed mAP"] == 52.0 and out.loc[0, "Δ mAP"] == -22.0
    assert "synthetic stand-ins" in out.loc[0, "seed note"] and "reconstruction" in out.loc[0, "seed note"]
    assert out.loc[1, "seed row"] == "multimodal_reid: CoOp" and out.loc[1, "seed mAP"] == 51.2
    assert out.loc[2, "seed mAP"] is None  # BoT's published rows are in-domain only


def test_ranking_and_its_reading_come_from_the_numbers():
    frame = pd.DataFrame([_row("bot", "a", "b", 30.0), _row("bot", "a", "c", 20.0), _row("dpm", "a", "b", 24.6),
                          _row("dpm", "a", "c", 25.0), _row("bot", "a", "a", 80.0, setting="in-domain")])
    ranking = rank_methods(frame)
    cross = ranking[ranking["setting"] == "cross-domain"]
    assert cross["method"].tolist() == ["bot", "dpm"] and cross["mean mAP"].tolist() == [25.0, 24.8]
    assert cross["rank"].tolist() == [1, 2] and cross["cells"].tolist() == [2, 2]
    text = describe_ranking(ranking)
    assert ("cross-domain: bot leads with 25.0 mean mAP over 2 cell(s), 0.2 points ahead of dpm (24.8) — within a "
            "point, so not a clear win") in text
    assert "in-domain: bot leads with 80.0 mean mAP over 1 cell(s)." in text
    with pytest.raises(ValueError, match="lacks column"):
        rank_methods(frame.drop(columns=["mAP"]))


def test_cross_modality_runs_are_scored_on_their_own_pair(tmp_path):
    run("ivreid", run_dir=tmp_path / "ivreid" / "synth_sysu-smoke", device="cpu", evaluate=False, **TINY)
    frame = tr.cross_modality_rows("smoke", root=tmp_path, device="cpu")
    assert len(frame) == 1 and frame.loc[0, "method"] == "ivreid" and frame.loc[0, "protocol"] == "sysu"
    assert frame.loc[0, "setting"] == "cross-modality" and "10 galleries" in frame.loc[0, "target"]
    assert 0 < frame.loc[0, "mAP"] <= 100
    assert (tmp_path / "ivreid" / "synth_sysu-smoke" / "transfer" / "sysu-all-single-noflip.json").is_file()
    assert tr.matrix_runs("smoke", root=tmp_path) == []  # not part of the single-modality matrix


def test_unseen_cameras_switch_sie_off_for_that_target_only():
    import torch

    from reidlab.models import create_model

    model = create_model("transreid_vit_tiny_d6_patch16", num_classes=0, pretrained=False, image_size=(64, 32),
                         sie_cameras=3, jpm=False).eval()  # fmt: skip
    images = torch.randn(2, 3, 64, 32)
    unseen = torch.tensor([1, 5])
    with pytest.raises(ValueError, match="SIE ids must be in"):
        model(images, unseen)
    table = model.vit.sie_embed
    with torch.no_grad(), tr.sie_for_target(model, 6) as note:
        agnostic = model(images, unseen)
        assert torch.equal(agnostic, model(images, torch.tensor([0, 2])))  # the camera no longer matters
    assert note == "SIE off: the target has 6 cameras, the model's table 3"
    assert model.vit.sie_embed is table  # restored
    with torch.no_grad(), tr.sie_for_target(model, 3) as note:
        assert note == "" and not torch.equal(model(images, torch.tensor([0, 0])), model(images, torch.tensor([2, 2])))
