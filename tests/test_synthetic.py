"""The synthetic worlds: real layouts read by the real parsers, determinism, attributes, occlusion, IR."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidlab.data import list_datasets, load_dataset
from reidlab.data.synthetic import WORLDS, ensure, generate, is_complete, plan_world, world_dir
from reidlab.data.synthetic.__main__ import main as cli_main
from reidlab.data.synthetic.attributes import PALETTES, describe, sample_identities
from reidlab.data.synthetic.generator import GENERATOR_VERSION, MARKER
from reidlab.data.synthetic.occlusion import CAR, PERSON
from reidlab.data.synthetic.render import Shots, WorldContext, render_shots
from reidlab.data.synthetic.scene import CameraStyle, make_cameras


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> Path:
    """Every synthetic world generated once at mini size (single process)."""
    out = tmp_path_factory.mktemp("synthetic")
    for name in WORLDS:
        generate(name, "mini", out=out, progress=False, workers=1)
    return out


def _manifest(world: Path) -> list[dict]:
    with open(world / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _tree_hash(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _ids(samples) -> set[int]:
    return {s.pid for s in samples}


# ----------------------------------------------------------------------------- registration and counts
def test_worlds_are_registered_dataset_names():
    assert set(WORLDS) <= set(list_datasets())


def test_full_plans_reproduce_the_real_counts():
    expected = {
        "synth_market": {"train": 12936, "query": 3368, "gallery": 13120, "distractor": 2793, "junk": 3819},
        "synth_duke": {"train": 16522, "query": 2228, "gallery": 17661},
        "synth_msmt": {"train": 30248, "val": 2373, "query": 11659, "gallery": 82161},
        "synth_occluded_duke": {"train": 15618, "query": 2210, "gallery": 17661},
        "synth_randperson": {"train": 132145},
        "synth_occluded_reid": {"query": 1000, "gallery": 1000},
        "synth_sysu": {"train": 22258 + 11909, "gallery": 7813, "query": 3803},
        "synth_regdb": {"visible": 4120, "thermal": 4120},
        "synth_cuhk03_np": {"train": 7365 + 7368, "query": 2 * 1400, "gallery": 5332 + 5328},
    }
    identities = {"synth_market": (751, 750), "synth_duke": (702, 702 + 408), "synth_occluded_duke": (702, 1110),
                  "synth_msmt": (1041, 3060), "synth_cuhk03_np": (767, 700)}
    for name, counts in expected.items():
        plan = plan_world(name, "full").plan
        assert dict(Counter(plan.split)) == counts, name
        assert len(set(plan.paths)) == len(plan.paths), f"{name}: duplicate file names"
        if name in identities:
            split = np.array(plan.split)
            train_ids = set(plan.pid[split == "train"].tolist()) | set(plan.pid[split == "val"].tolist())
            gallery_ids = set(plan.pid[split == "gallery"].tolist())
            assert (len(train_ids), len(gallery_ids)) == identities[name], name


def test_every_world_is_read_by_its_real_parser(worlds):
    m = WORLDS["synth_market"].sizes["mini"]
    ds = load_dataset("synth_market", root=worlds, size="mini")
    assert ds.name == "synth_market" and ds.options["stands_for"] == "market1501"
    assert (len(ds.train), ds.num_train_pids, ds.num_train_cams) == (m.train_images, m.train_ids, 6)
    assert sorted({s.pid for s in ds.train}) == list(range(m.train_ids))
    assert (len(ds.query), len(_ids(ds.query))) == (m.query_images, m.query_ids)
    assert len(ds.gallery) == m.gallery_images + m.distractor_images
    assert 0 in _ids(ds.gallery) and ds.dropped == {"gallery": m.junk_images}
    assert not ds.skipped
    # every query has a gallery match in another camera
    gallery = {(s.pid, s.camid) for s in ds.gallery}
    assert all(any(p == q.pid and c != q.camid for p, c in gallery) for q in ds.query)

    d = WORLDS["synth_duke"].sizes["mini"]
    ds = load_dataset("synth_duke", root=worlds, size="mini")
    assert (len(ds.train), ds.num_train_pids, ds.num_train_cams) == (d.train_images, d.train_ids, 8)
    assert (len(ds.query), len(ds.gallery), len(_ids(ds.gallery))) == (
        d.query_images, d.gallery_images, d.query_ids + d.gallery_only_ids)

    s = WORLDS["synth_msmt"].sizes["mini"]
    ds = load_dataset("synth_msmt", root=worlds, size="mini")
    assert (len(ds.train), ds.num_train_pids) == (s.train_images + s.val_images, s.train_ids)
    assert (len(ds.query), len(ds.gallery), len(_ids(ds.query))) == (s.query_images, s.gallery_images, s.test_ids)
    assert len(load_dataset("synth_msmt", root=worlds, size="mini", with_val=False).train) == s.train_images

    c = WORLDS["synth_cuhk03_np"].sizes["mini"]
    for subset in ("detected", "labeled"):
        ds = load_dataset("synth_cuhk03_np", root=worlds, size="mini", subset=subset)
        sub = getattr(c, subset)
        assert (len(ds.train), len(ds.query), len(ds.gallery)) == (sub.train_images, sub.query_images,
                                                                   sub.gallery_images)
        assert ds.num_train_cams == 2 and all(s.path.endswith(".png") for s in ds.query)
        assert Counter(Counter(q.pid for q in ds.query).values()) == {2: sub.query_ids}

    r = WORLDS["synth_randperson"].sizes["mini"]
    ds = load_dataset("synth_randperson", root=worlds, size="mini")
    assert (len(ds.train), ds.num_train_pids) == (r.images, r.ids) and not ds.query
    assert ds.num_train_cams <= 19

    o = WORLDS["synth_occluded_duke"].sizes["mini"]
    ds = load_dataset("synth_occluded_duke", root=worlds, size="mini")
    assert (len(ds.train), len(ds.query), len(_ids(ds.query)), len(_ids(ds.gallery))) == (
        o.train_images, o.query_images, o.query_ids, o.query_ids + o.gallery_only_ids)

    ds = load_dataset("synth_occluded_reid", root=worlds, size="mini")
    n = WORLDS["synth_occluded_reid"].sizes["mini"].ids
    assert (len(ds.query), len(ds.gallery), not ds.train) == (5 * n, 5 * n, True)
    assert {s.camid for s in ds.query} == {0} and {s.camid for s in ds.gallery} == {2}

    y = WORLDS["synth_sysu"].sizes["mini"]
    ds = load_dataset("synth_sysu", root=worlds, size="mini", trial=3)
    assert (len(ds.train), ds.num_train_pids) == (y.train_rgb + y.train_ir, y.train_ids + y.val_ids)
    assert len(ds.query) == y.test_ir and {s.modality for s in ds.query} == {"ir"}
    assert {s.camid for s in ds.query} <= {2, 5} and {s.camid for s in ds.gallery} <= {0, 1, 3, 4}
    assert Counter((s.pid, s.camid) for s in ds.gallery).most_common(1)[0][1] == 1  # single-shot

    g = WORLDS["synth_regdb"].sizes["mini"]
    ds = load_dataset("synth_regdb", root=worlds, size="mini", trial=2, direction="thermal_to_visible")
    assert ds.num_train_pids == g.ids // 2 and len(ds.train) == g.ids // 2 * 20
    assert len(ds.query) == len(ds.gallery) == g.ids // 2 * 10
    assert {s.modality for s in ds.query} == {"ir"} and {s.modality for s in ds.gallery} == {"rgb"}


# ----------------------------------------------------------------------------- determinism and ensure
def test_same_seed_gives_byte_identical_files(worlds, tmp_path):
    # Occluded-REID mini: small, and it exercises occluders (incl. other pedestrians) and TIFF writing
    again = generate("synth_occluded_reid", "mini", out=tmp_path, progress=False, workers=1)
    assert _tree_hash(again) == _tree_hash(world_dir("synth_occluded_reid", "mini", worlds))
    other = generate("synth_occluded_reid", "mini", out=tmp_path, seed=1, progress=False, workers=1)
    assert other.name == "synth_occluded_reid_mini_seed1"
    first, second = _tree_hash(again), _tree_hash(other)
    shared = set(first) & set(second)
    assert sum(first[k] != second[k] for k in shared) > 0.9 * len(shared)


def test_ensure_keeps_complete_worlds_and_regenerates_stale_ones(tmp_path):
    path = ensure("synth_occluded_reid", "mini", out=tmp_path, progress=False)
    assert is_complete(path, "synth_occluded_reid", "mini")
    marker = path / MARKER
    stamp = marker.stat().st_mtime_ns
    assert ensure("synth_occluded_reid", "mini", out=tmp_path, progress=False) == path
    assert marker.stat().st_mtime_ns == stamp  # untouched
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "version": GENERATOR_VERSION + "-old"}))
    assert not is_complete(path, "synth_occluded_reid", "mini")
    ensure("synth_occluded_reid", "mini", out=tmp_path, progress=False)
    assert is_complete(path, "synth_occluded_reid", "mini")
    marker.unlink()  # a half-written world (no marker) is regenerated as well
    ensure("synth_occluded_reid", "mini", out=tmp_path, progress=False)
    assert is_complete(path, "synth_occluded_reid", "mini")
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


_KILLED_MID_WRITE = """
import os, sys
from reidlab.data.synthetic import generator

def die(world, root, **kwargs):
    (root / "half_written.jpg").write_bytes(b"x")
    os._exit(3)  # like SIGKILL: no finally block runs

generator.render_world = die
generator.generate("synth_occluded_reid", "mini", out=sys.argv[1], progress=False)
"""


def _leftover(parent: Path, name: str) -> Path:
    path = parent / name
    (path / "bounding_box_test").mkdir(parents=True)
    (path / "bounding_box_test" / "0001_c1_0.jpg").write_bytes(b"x")
    return path


def test_a_killed_generation_is_cleaned_up_at_the_next_start(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KILLED_MID_WRITE, str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    killed = [p for p in tmp_path.iterdir() if p.name.startswith(".synth_occluded_reid_mini.tmp-")]
    assert len(killed) == 1 and (killed[0] / "half_written.jpg").is_file()
    other_world = _leftover(tmp_path, ".synth_regdb_mini_seed2.old-77-0123abcd")  # nobody writes it: removed too
    not_ours = [_leftover(tmp_path, name) for name in (
        ".synth_occluded_reid_mini.tmp-backup",  # not our pattern
        ".my_dataset.tmp-1-0123abcd",  # not one of our world folders
        ".synth_nothing_mini.tmp-1-0123abcd",  # not a known world
    )]
    path = ensure("synth_occluded_reid", "mini", out=tmp_path, progress=False)
    assert is_complete(path, "synth_occluded_reid", "mini")
    assert not killed[0].exists() and not other_world.exists()
    assert all(p.is_dir() for p in not_ours)


def test_a_live_writers_temporary_folder_is_kept(tmp_path):
    fcntl = pytest.importorskip("fcntl")
    from reidlab.data.synthetic.generator import remove_leftovers

    live = _leftover(tmp_path, ".synth_regdb_mini.tmp-4242-0123abcd")
    with open(tmp_path / ".synth_regdb_mini.lock", "a+") as writer:  # what generate() holds while writing
        fcntl.flock(writer, fcntl.LOCK_EX)
        assert remove_leftovers(tmp_path) == [] and live.is_dir()
        assert remove_leftovers(tmp_path, holding="synth_regdb_mini") == [live]  # the caller holds that lock
    live = _leftover(tmp_path, ".synth_regdb_mini.tmp-4242-0123abcd")
    assert remove_leftovers(tmp_path) == [live]  # the writer is gone: its folder is a leftover


def test_without_file_locks_only_long_idle_leftovers_are_removed(tmp_path, monkeypatch):
    import os
    import time

    from reidlab.data.synthetic import generator

    monkeypatch.setattr(generator, "_flock", lambda handle, blocking: "unavailable")
    recent = _leftover(tmp_path, ".synth_market_mini.tmp-1-0123abcd")
    idle = _leftover(tmp_path, ".synth_market_full.old-2-4567cdef")
    old = time.time() - generator.STALE_AFTER_S - 60
    for path in (idle, idle / "bounding_box_test"):
        os.utime(path, (old, old))
    assert generator.remove_leftovers(tmp_path) == [idle] and recent.is_dir()


def test_cli_generates_and_reports_up_to_date(tmp_path, capsys):
    assert cli_main(["--world", "synth_regdb", "--size", "mini", "--out", str(tmp_path), "--quiet"]) == 0
    assert cli_main(["--world", "synth_regdb", "--size", "mini", "--out", str(tmp_path)]) == 0
    assert "up to date" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli_main(["--world", "synth_nothing"])


def test_a_world_folder_is_read_directly_but_only_as_its_own_world(worlds):
    market = world_dir("synth_market", "mini", worlds)
    assert json.loads((market / MARKER).read_text())["world"] == "synth_market"
    direct = load_dataset("synth_market", root=market, size="full")  # the folder's own size wins
    assert len(direct.train) == WORLDS["synth_market"].sizes["mini"].train_images
    assert direct.options["size"] == "mini"
    with pytest.raises(ValueError, match="synth_market"):
        load_dataset("synth_duke", root=market)


def test_a_world_folder_from_another_generator_version_is_a_clear_error(tmp_path):
    old = tmp_path / "synth_market_mini"
    old.mkdir()
    (old / MARKER).write_text(json.dumps({"version": "1.4", "preset": "synth_market", "size": "mini", "seed": 0,
                                          "complete": True}))
    assert not is_complete(old, "synth_market", "mini")  # ensure() regenerates it in place
    with pytest.raises(ValueError, match=r"generator version '1\.4'.*--world synth_market --size mini"):
        load_dataset("synth_market", root=old)


def test_difficulty_card_takes_worlds(worlds, tmp_path):
    from reidlab.data.synthetic.difficulty import difficulty_card

    card = difficulty_card(worlds=("synth_occluded_reid",), size="mini", pairs=(), root=worlds, out_dir=tmp_path,
                           resnet=False, image_size=(64, 32))
    assert set(card["test"]) == {"synth_occluded_reid"} and len(card) == 2
    assert (tmp_path / "difficulty_card_mini.csv").is_file() and (tmp_path / "difficulty_card_mini.md").is_file()


def test_unknown_world_and_size_are_clear_errors():
    with pytest.raises(ValueError, match="unknown synthetic world 'synth_nothing'"):
        plan_world("synth_nothing")
    with pytest.raises(ValueError, match="unknown size"):
        plan_world("synth_market", "huge")


# ----------------------------------------------------------------------------- attributes and text
def test_attribute_and_description_files_match_the_identities(worlds):
    for name in ("synth_market", "synth_msmt", "synth_sysu", "synth_regdb"):
        world = world_dir(name, "mini", worlds)
        doc = json.loads((world / "attributes.json").read_text())
        lines = [json.loads(x) for x in (world / "descriptions.jsonl").read_text().splitlines()]
        assert doc["world"] == name and set(doc["identities"]) == {x["key"] for x in lines}
        ds = load_dataset(name, root=worlds, size="mini")
        if name == "synth_msmt":  # train and test pids both start at 0: keys carry the folder
            keys = {f"train/{s.original_pid}" for s in ds.train} | {f"test/{s.pid}" for s in ds.query + ds.gallery}
        else:
            keys = {str(s.original_pid) for s in ds.train} | {str(s.pid) for s in ds.query + ds.gallery if s.pid > 0}
        assert keys == set(doc["identities"]), name
        for line in lines:
            rec = doc["identities"][line["key"]]
            assert line["description"] == rec["description"] == describe(rec)
            assert rec["gender"] in line["description"] and rec["upper"]["colour"] in line["description"]
            assert (rec["backpack"] is not None) == ("backpack" in line["description"])


def test_description_sentence():
    rec = {"gender": "woman", "build": "average", "hair": {"colour": "brown", "length": "long"}, "hat": None,
           "upper": {"type": "t-shirt", "colour": "red", "pattern": "striped", "pattern_colour": "white"},
           "lower": {"type": "trousers", "colour": "blue"}, "shoes": {"colour": "white"},
           "backpack": {"colour": "black"}, "handbag": None}
    assert describe(rec) == ("a woman with long brown hair in a red and white striped t-shirt, blue trousers and "
                             "white shoes, carrying a black backpack")


def test_palettes_differ_between_domains():
    rng = np.random.default_rng(0)
    market = sample_identities(rng, 3000, PALETTES["market"])
    duke = sample_identities(rng, 3000, PALETTES["duke"])
    shorts = 1  # index of "shorts" in LOWER_TYPES
    assert (market.lower_type == shorts).mean() > 3 * (duke.lower_type == shorts).mean()
    # palettes are small: many identities share their upper colour
    assert np.bincount(market.upper_colour).max() > 0.1 * len(market)


# ----------------------------------------------------------------------------- occlusion and infrared
def test_occlusion_only_where_the_world_has_it(worlds):
    occ = _manifest(world_dir("synth_occluded_duke", "mini", worlds))
    query = [r for r in occ if r["split"] == "query"]
    assert all(r["occluder"] != "none" for r in query)
    hidden = np.array([float(r["hidden"]) for r in query])
    assert 0.1 < hidden.min() and hidden.max() < 0.75 and 0.25 < hidden.mean() < 0.5
    train = [r for r in occ if r["split"] == "train"]
    assert sum(r["occluder"] != "none" for r in train) < 0.25 * len(train)
    reid = _manifest(world_dir("synth_occluded_reid", "mini", worlds))
    assert all((r["occluder"] != "none") == r["path"].startswith("occluded_body_images") for r in reid)
    market = _manifest(world_dir("synth_market", "mini", worlds))
    assert all(r["occluder"] == "none" for r in market)


def _tiny_world(kind: int, thermal: bool = False) -> np.ndarray:
    rng = np.random.default_rng(3)
    ids = sample_identities(rng, 4, PALETTES["market"])
    cams = make_cameras(rng, CameraStyle(), 1, infrared=(0,) if thermal else ())
    ctx = WorldContext(ids, cams, 128, 64)
    n = 2
    shots = Shots(ident=np.array([0, 1]), cam=np.zeros(n, np.int64), theta=np.zeros(n, np.float32),
                  phase=np.zeros(n, np.float32), amp=np.full(n, 0.5, np.float32), scale=np.ones(n, np.float32),
                  aspect=np.full(n, 1.2, np.float32), dx=np.zeros(n, np.float32), dy=np.zeros(n, np.float32),
                  bg=np.zeros(n, np.int64), gain=np.ones(n, np.float32), blur=np.ones(n, np.float32),
                  occ_kind=np.full(n, kind), occ_target=np.full(n, 0.4, np.float32),
                  occ_shift=np.full(n, 0.5, np.float32), occ_colour=np.full((n, 3), 0.9, np.float32),
                  occ_ident=np.array([2, 3]))
    images, hidden = render_shots(ctx, shots, thermal, seed=0)
    return images, hidden


def test_occluders_change_the_occluded_rows_only():
    clean, hidden0 = _tiny_world(0)
    car, hidden = _tiny_world(CAR)
    assert (hidden0 == 0).all() and np.allclose(hidden, 0.4, atol=0.12)
    diff = np.abs(car.astype(int) - clean.astype(int)).mean(axis=(0, 2, 3))  # per row
    assert diff[:40].mean() < 3 and diff[-20:].mean() > 20  # the car covers the lower body, not the head
    person, hidden_p = _tiny_world(PERSON)
    assert np.allclose(hidden_p, 0.4, atol=0.15) and np.abs(person.astype(int) - clean.astype(int)).mean() > 5


def test_infrared_images_are_grey_and_rgb_ones_are_not(worlds):
    world = world_dir("synth_sysu", "mini", worlds)
    rows = _manifest(world)
    for modality in ("ir", "rgb"):
        paths = [r["path"] for r in rows if r["modality"] == modality][:20]
        spread = [np.ptp(np.asarray(Image.open(world / p).convert("RGB"), dtype=int), axis=2).mean() for p in paths]
        if modality == "ir":
            assert max(spread) < 4, "thermal images should have (nearly) equal channels"
        else:
            assert np.mean(spread) > 15
    assert {r["path"].split("/")[0] for r in rows if r["modality"] == "ir"} == {"cam3", "cam6"}
    thermal, _ = _tiny_world(0, thermal=True)
    assert (thermal[..., 0] == thermal[..., 1]).all() and (thermal[..., 1] == thermal[..., 2]).all()


def test_views_follow_the_cameras(worlds):
    rows = _manifest(world_dir("synth_market", "mini", worlds))
    views = np.array([int(r["view_deg"]) for r in rows if r["split"] == "train"])
    side = np.abs(np.abs(views) - 90) < 45
    assert 0.15 < side.mean() < 0.85  # both front/back and sideways walks occur
    assert math.isclose(len(views), WORLDS["synth_market"].sizes["mini"].train_images)


def test_renderer_runs_on_a_batch_and_is_deterministic():
    a, _ = _tiny_world(0)
    b, _ = _tiny_world(0)
    assert a.shape == (2, 128, 64, 3) and a.dtype == np.uint8 and (a == b).all()
    assert torch.get_num_threads() >= 1


def test_bench_synth_times_the_named_worlds(capsys):
    from reidlab.bench import synth as bench

    assert bench.main(["--worlds", "synth_occluded_reid", "--size", "mini", "--workers", "1", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "| world | size |" in out and "| synth_occluded_reid | mini | 300 " in out
