"""Reproduction plans: every table lists and dry-runs on a fresh clone; a real run resumes and writes the table."""

import json

import pytest

from reidlab.reproduce import TABLES, Cell, Table, plan_table
from reidlab.reproduce import __main__ as cli
from reidlab.reproduce import run as runner


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_table_lists_and_dry_runs(name, capsys, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("REIDLAB_DATA", str(tmp_path / "data"))  # a fresh clone: no real data, no weights
    assert cli.main(["--list", name]) == 0
    listed = capsys.readouterr().out
    assert all(cell.row in listed for cell in TABLES[name].cells)
    assert cli.main(["--dry-run", name]) == 0
    out = capsys.readouterr().out
    assert "missing, and where it goes:" in out
    for cell in TABLES[name].cells:
        assert f"data {cell.source}: {cell.source}: no dataset found under {tmp_path / 'data'}" in out
        for weights in cell.weights:
            assert f"weights {weights}: no pretrained weights for '{weights}'" in out


@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("profile", ["smoke", "full"])
def test_every_cell_names_a_registered_method_and_valid_preset_fields(name, profile):
    for planned in plan_table(TABLES[name], profile):
        method = [r for r in planned.requirements if r.kind == "method"]
        assert len(method) == 1 and method[0].ok, (planned.cell.row, method[0].detail)


def test_unknown_tables_are_refused(capsys):
    assert cli.main(["seventeen"]) == 2
    assert "unknown table 'seventeen'" in capsys.readouterr().err


def test_a_smoke_reproduction_runs_resumes_and_writes_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("REIDLAB_FIGURES", str(tmp_path / "figures"))
    table = Table("tiny", "BoT on two synthetic domains", "a test", (
        Cell("BoT", "bot", "market1501", "market1501", {"R1": 90.0, "mAP": 80.0}),
        Cell("BoT DG", "bot", "market1501", "dukemtmc", {"R1": 40.0, "mAP": 20.0}),
    ))  # fmt: skip
    monkeypatch.setitem(TABLES, "tiny", table)
    planned = plan_table(table, "smoke")
    assert [(p.source, p.target) for p in planned] == [("synth_market", "synth_market"), ("synth_market", "synth_duke")]
    assert all(p.ready for p in planned)
    tiny = dict(epochs=1, max_iters_per_epoch=2, pretrained=False, progress=False)
    frame = runner.reproduce("tiny", "smoke", device="cpu", **tiny)
    assert list(frame["status"]) == ["done", "done"] and frame["ours mAP"].notna().all()
    assert frame["Δ mAP"].tolist() == [round(v - p, 2) for v, p in zip(frame["ours mAP"], frame["paper mAP"],
                                                                       strict=True)]
    progress = json.loads(runner.progress_file(table, "smoke").read_text())
    assert set(progress) == {c.key for c in table.cells}
    assert (tmp_path / "figures" / "reproduce_tiny_smoke.md").is_file()
    assert (tmp_path / "figures" / "reproduce_tiny_smoke.png").is_file()
    calls = []
    monkeypatch.setattr(runner, "run_cell", lambda *a, **k: calls.append(a) or {})
    again = runner.reproduce("tiny", "smoke", device="cpu", **tiny)
    assert calls == [] and again["ours mAP"].tolist() == frame["ours mAP"].tolist()  # finished cells are not redone


def test_cross_modality_cells_follow_their_protocols(tmp_path, monkeypatch):
    """SYSU-MM01: one model, the 10 galleries of the cell's mode / shot; RegDB: one model per trial."""
    monkeypatch.setenv("REIDLAB_RUNS", str(tmp_path / "runs"))
    table = Table("tiny_ir", "IV-ReID on the synthetic infrared worlds", "a test", (
        Cell("SYSU", "ivreid", "sysu_mm01", "sysu_mm01", {"R1": 46.3, "mAP": 44.2}, protocol="sysu",
             target_options={"mode": "indoor", "shot": 1}),
        Cell("RegDB", "ivreid", "regdb", "regdb", {"R1": 46.8, "mAP": 43.7}, protocol="regdb", models=2,
             target_options={"direction": "thermal_to_visible"}),
    ))  # fmt: skip
    sysu, regdb = plan_table(table, "smoke")
    tiny = dict(epochs=1, max_iters_per_epoch=1, pretrained=False, progress=False)
    out = runner.run_cell(sysu, device="cpu", **tiny)
    assert out["evaluations"] == 10 and out["models"] == 1 and out["protocol"] == "sysu"
    assert 0 <= out["mAP"] <= 100 and "mAP_std" in out
    out = runner.run_cell(regdb, device="cpu", **tiny)
    assert out["evaluations"] == 2 and out["models"] == 2 and out["protocol"] == "regdb"
    folders = sorted(p.name for p in (tmp_path / "runs" / "ivreid").iterdir())
    assert [f for f in folders if f.startswith("synth_regdb")] == [
        f"synth_regdb-smoke-{regdb.cell.key}-trial1", f"synth_regdb-smoke-{regdb.cell.key}-trial2"]
