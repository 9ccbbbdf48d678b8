"""The methods layer: imports flow one way, typed settings, the method registry, runs and run folders."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reid_fakes import fake_dataset

import reidlab.methods as methods
from reidlab.engine import RunFolderError, find_runs, load_trained_model, run_folder, with_sample_fields
from reidlab.engine.runs import locked
from reidlab.methods import get_preset, run
from reidlab.settings import SettingError

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "reidlab"


def _import_graph() -> dict[str, set[str]]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            graph[mod].update(n for n in names if n in modules and n != mod)
    return graph


def test_no_import_cycle_inside_reidlab():
    graph = _import_graph()
    state: dict[str, int] = {}
    cycles = []

    def visit(node, trail):
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_layers_import_one_way():
    """models, losses and data never import engine, methods, entry points or viz; engine never imports methods."""
    graph = _import_graph()
    upper = {"engine": ("reidlab.methods", "reidlab.viz", "reidlab.train", "reidlab.notebooks", "reidlab.bench"),
             "models": ("reidlab.engine", "reidlab.methods", "reidlab.data", "reidlab.profiles", "reidlab.viz"),
             "data": ("reidlab.engine", "reidlab.methods", "reidlab.models", "reidlab.viz")}  # fmt: skip
    bad = [
        f"{mod} imports {dep}"
        for mod, deps in graph.items()
        for layer, forbidden in upper.items()
        if mod.startswith(f"reidlab.{layer}")
        for dep in deps
        if dep.startswith(forbidden)
    ]
    assert not bad, bad


def test_importing_models_pulls_in_no_engine_data_or_pandas():
    code = "import sys, reidlab.models; print(sorted(m for m in sys.modules if m.startswith(('reidlab', 'pandas'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = out.stdout
    for unwanted in ("reidlab.engine", "reidlab.data", "reidlab.methods", "'pandas", "reidlab.profiles"):
        assert unwanted not in loaded, unwanted


def test_overrides_are_typed_and_checked():
    preset = get_preset("bot", "smoke", flip_tta="false", amp="FALSE", fast_data="no", epochs="3", lr="1e-3",
                        image_size="(128, 64)", triplet_margin="None", pretrained="false")  # fmt: skip
    assert preset.flip_tta is False and preset.amp is False and preset.fast_data is False
    assert preset.epochs == 3 and preset.lr == 1e-3 and preset.image_size == (128, 64)
    assert preset.triplet_margin is None and preset.pretrained is False
    assert get_preset("bot", "smoke", pretrained="auto").pretrained == "auto"
    bad = {"epochs": "abc", "lr": "1e-3x", "image_size": 64, "flip_tta": "maybe", "checkpoint_every": -1,
           "max_iters_per_epoch": 0, "erasing_p": 1.5, "neck_feat": "middle"}  # fmt: skip
    for field, value in bad.items():
        with pytest.raises(SettingError, match=rf"BoTPreset\.{field} = "):
            get_preset("bot", "smoke", **{field: value})
    with pytest.raises(SettingError, match=r"BoTPreset\.epochs = 2.5: expected an integer"):
        get_preset("bot", "smoke", epochs=2.5)


def test_registry_errors_name_what_was_expected():
    with pytest.raises(ValueError, match=r"unknown method 'dpm_x'; registered methods: \['bot'"):
        methods.get_method("dpm_x")
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        get_preset("bot", "tiny")
    with pytest.raises(SettingError, match=r"unknown BoTPreset field\(s\) \['lr_max'\]"):
        get_preset("bot", "smoke", lr_max=1.0)
    with pytest.raises(TypeError, match="expects a BoTPreset"):
        run("bot", preset=object())
    assert methods.get_preset("bot", "full").model == "bot_resnet50"


SMALL = dict(image_size=(32, 16), batch_p=4, batch_k=2, epochs=2, max_iters_per_epoch=2, pretrained=False,
             progress=False, fast_data=False, dataset="fake", checkpoint_every=1)  # fmt: skip


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    return fake_dataset(tmp_path / "data", num_ids=8, per_id=4)


def test_run_writes_its_folder_and_record_and_is_found(fake, tmp_path):
    result = run("bot", data=fake, **SMALL)
    folder = tmp_path / "runs" / "bot" / "fake-smoke"
    assert result.run_dir == folder == run_folder("bot", "fake", "smoke")
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished" and record["stages"] == ["train"] and record["epochs"] == 2
    assert {"protocol", "ap", "flip_tta", "distance", "mAP", "R1", "mINP"} <= set(record["metrics"])
    assert record["pretrained"] == [] and record["preset"]["image_size"] == [32, 16]
    found = find_runs(method="bot", dataset="fake", image_size=(32, 16))
    assert [r.path for r in found] == [folder] and found[0].metrics == record["metrics"]
    assert find_runs(method="bot", dataset="fake", image_size=(64, 32)) == []
    model = load_trained_model(folder)
    assert model.preprocessing == result.model.preprocessing
    images = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        assert torch.allclose(model(images), result.model.eval()(images))


def test_a_run_folder_is_never_silently_overwritten(fake, tmp_path):
    first = run("bot", data=fake, **SMALL)
    weights = (first.run_dir / "model.pt").read_bytes()
    with pytest.raises(RunFolderError, match="already holds a run"):
        run("bot", data=fake, **SMALL)
    with pytest.raises(RunFolderError, match=r"other settings \(lr: 0.001 -> 0.01\)"):
        run("bot", data=fake, reuse=True, **{**SMALL, "lr": 0.01})
    reused = run("bot", data=fake, reuse=True, **SMALL)
    assert reused.reused and reused.metrics == first.metrics
    assert (first.run_dir / "model.pt").read_bytes() == weights
    (first.run_dir / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # an interrupted write
    again = run("bot", data=fake, overwrite=True, **SMALL)
    assert again.train is not None and not list(first.run_dir.glob(".*.tmp"))


def test_reuse_is_refused_when_the_pretrained_weights_would_now_be_others(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_WEIGHTS", str(tmp_path / "weights"))
    settings = {**SMALL, "pretrained": "auto"}
    first = run("bot", data=fake, **settings)  # random initialisation: no weight file anywhere
    assert first.record["initialisation"] == {"resnet18": {"pretrained": "auto", "weights": "random initialisation"}}
    assert run("bot", data=fake, reuse=True, **settings).reused  # nothing changed
    from safetensors.torch import save_file

    from reidlab.weights import lab_weight_file

    lab = lab_weight_file("resnet18")
    lab.parent.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in first.model.backbone.state_dict().items()}, str(lab))
    with pytest.raises(RunFolderError, match=r"resnet18: trained from random initialisation, now lab/resnet18"):
        run("bot", data=fake, reuse=True, **settings)
    again = run("bot", data=fake, overwrite=True, **settings)
    assert again.record["initialisation"]["resnet18"]["weights"].startswith("lab/resnet18.safetensors (")
    assert run("bot", data=fake, reuse=True, **settings).reused


def test_resume_needs_a_run_and_refuses_changed_settings(fake, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume: run folder .* does not exist"):
        run("bot", data=fake, resume=True, name="typo", **SMALL)
    run("bot", data=fake, stop_after=("train", 1), **SMALL)
    with pytest.raises(ValueError, match=r"changed settings.*lr: 0.001 -> 0.1"):
        run("bot", data=fake, resume=True, **{**SMALL, "lr": 0.1})
    done = run("bot", data=fake, resume=True, **{**SMALL, "log_every": 7})
    assert done.train.completed and list(done.history["epoch"]) == [1, 2]


def test_a_run_folder_of_another_method_is_refused(fake, tmp_path):
    folder = run_folder("bot", "fake", "smoke")
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"method": "dpm", "status": "finished"}))
    with pytest.raises(RunFolderError, match="holds a run of method 'dpm', not 'bot'"):
        run("bot", data=fake, reuse=True, **SMALL)


def test_a_second_process_cannot_write_a_locked_run_folder(tmp_path):
    code = ("import sys; from reidlab.engine.runs import locked\n"
            "with locked(sys.argv[1]): pass")  # fmt: skip
    with locked(tmp_path / "run"):
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                             cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode != 0 and "is in use by pid" in out.stderr
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                         cwd=REPO, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr  # released with the first holder


def test_batches_can_carry_sample_fields(fake):
    from reidlab.engine import build_train_loader

    loader = build_train_loader(fake.train, image_size=(32, 16), batch_p=2, batch_k=2)
    batch = next(iter(with_sample_fields(loader, fake.train, ["path", "camid"])))
    assert batch["path"] == [fake.train[i].path for i in batch["index"].tolist()]
    with pytest.raises(ValueError, match="not attributes of Sample"):
        with_sample_fields(loader, fake.train, ["caption"])


def test_bench_train_times_a_method_through_its_own_stage(capsys):
    from reidlab.bench import train as bench

    argv = ["--method", "bot", "--no-write", "--paths", "fast", "--modes", "eager", "--iters", "1", "--warmup", "0",
            "--image-size", "32", "16", "--batch-p", "2", "--batch-k", "2", "--device", "cpu"]  # fmt: skip
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "| bot | fast | eager | bot_resnet18 | 32×16 | 4 |" in out
    assert bench.main([*argv[:2], "--stage", "warmup", *argv[2:]]) == 1  # an unknown stage fails the case


def test_batches_can_carry_values_computed_per_sample(fake):
    from reidlab.engine import build_train_loader

    loader = build_train_loader(fake.train, image_size=(32, 16), batch_p=2, batch_k=2)
    captions = {s.pid: f"person {s.pid}" for s in fake.train}
    batch = next(iter(with_sample_fields(loader, fake.train, {"caption": lambda s: captions[s.pid]})))
    assert batch["caption"] == [f"person {p}" for p in batch["pid"].tolist()]
    with pytest.raises(ValueError, match="one value per sample"):
        with_sample_fields(loader, fake.train, {"caption": ["only one"]})
