"""The headless runner: parameters, hygiene checks and failure reports."""

import io
import json
import time

import nbformat
import pytest

from reidlab import notebooks as runner


def _write_notebook(path, params_src, body_src, tag=True):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(params_src)
    if tag:
        params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body_src)]
    nbformat.write(nb, path)
    return path


def test_parse_parameters_keeps_the_text_for_each_notebook_to_read():
    assert runner.parse_parameters(["epochs=2", "size=(64, 32)", "dataset = synth_duke"]) == {
        "epochs": "2",
        "size": "(64, 32)",
        "dataset": "synth_duke",
    }
    with pytest.raises(ValueError, match="key=value"):
        runner.parse_parameters(["epochs"])


def test_unknown_keys_go_to_overrides(tmp_path):
    nb = _write_notebook(tmp_path / "01_x.ipynb", 'profile = "smoke"\noverrides = {"a": 1}\nn = 3', "pass")
    injected = runner.build_parameters(nb, "full", {"n": "5", "epochs": "2", "size": "(64, 32)", "d": "synth_duke"})
    assert injected == {"profile": "full", "n": 5,
                        "overrides": {"a": 1, "epochs": 2, "size": (64, 32), "d": "synth_duke"}}
    assert runner.build_parameters(nb, "full", {"n": 5, "epochs": 2})["overrides"] == {"a": 1, "epochs": 2}
    strict = _write_notebook(tmp_path / "02_y.ipynb", 'profile = "smoke"', "pass")
    with pytest.raises(ValueError, match="not declared"):
        runner.build_parameters(strict, "smoke", {"epochs": 2})


def test_hygiene_flags_outputs_and_missing_parameters(tmp_path):
    clean = _write_notebook(tmp_path / "00_clean.ipynb", 'profile = "smoke"', "x = 1")
    assert runner.hygiene_problems(clean) == []
    untagged = _write_notebook(tmp_path / "01_untagged.ipynb", 'profile = "smoke"', "x = 1", tag=False)
    assert any("parameters" in p for p in runner.hygiene_problems(untagged))
    data = json.loads(clean.read_text())
    data["cells"][1]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "1"}]
    dirty = tmp_path / "02_dirty.ipynb"
    dirty.write_text(json.dumps(data))
    assert any("outputs" in p for p in runner.hygiene_problems(dirty))


def test_list_notebooks_only_filter(tmp_path):
    for name in ("00_a.ipynb", "01_b.ipynb", "09_c.ipynb", "notes.ipynb"):
        _write_notebook(tmp_path / name, 'profile = "smoke"', "pass")
    assert [p.name for p in runner.list_notebooks(folder=tmp_path)] == ["00_a.ipynb", "01_b.ipynb", "09_c.ipynb"]
    assert [p.name for p in runner.list_notebooks(["09", "00"], folder=tmp_path)] == ["00_a.ipynb", "09_c.ipynb"]
    with pytest.raises(ValueError, match="no notebook"):
        runner.list_notebooks(["05"], folder=tmp_path)


# ----------------------------------------------------------------------------- D2: --only by whole number or name
def _folder_of_notebooks(folder, names=("00_a", "01_b", "02_c", "09_d", "10_e")):
    for name in names:
        _write_notebook(folder / f"{name}.ipynb", 'profile = "smoke"\noverrides = {}\nepochs = 3', "pass")
    return folder


def test_only_matches_whole_numbers_and_names_not_prefixes(tmp_path):
    folder = _folder_of_notebooks(tmp_path)

    def only(*tokens):
        return [p.stem for p in runner.list_notebooks(tokens, folder=folder)]

    assert only("0") == only("00") == ["00_a"]  # not every notebook whose name starts with 0
    assert only("2") == only("02") == only("02_c") == only("02_c.ipynb") == ["02_c"]
    assert only("1") == ["01_b"] and only("10") == ["10_e"]
    assert only("09", "0", "00") == ["00_a", "09_d"]  # notebook order, no duplicates
    for token in ("05", "0_a", "02_"):
        with pytest.raises(ValueError, match=f"--only {token}: no notebook"):
            only(token)


def test_run_says_which_notebooks_will_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", _folder_of_notebooks(tmp_path))
    chosen = []
    monkeypatch.setattr(runner, "run_all", lambda notebooks, **kw: chosen.extend(notebooks) or [])
    assert runner.main(["run", "--only", "0", "2"]) == 0
    assert [p.stem for p in chosen] == ["00_a", "02_c"]
    assert "executing 2 notebook(s) with profile 'smoke': 00_a, 02_c" in capsys.readouterr().out


# ----------------------------------------------------------------------------- D1: broken notebooks are named
def test_a_notebook_that_is_not_json_is_named_with_what_is_wrong(tmp_path, monkeypatch, capsys):
    broken = tmp_path / "03_broken.ipynb"
    broken.write_text('{"cells": [\n  {"cell_type": "code",,}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"03_broken\.ipynb: not a notebook: invalid JSON at line 2, column"):
        runner.build_parameters(broken, "smoke", {})
    assert any("03_broken.ipynb: not a notebook" in p for p in runner.hygiene_problems(broken))
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", tmp_path)
    assert runner.main(["run"]) == 2
    assert "03_broken.ipynb: not a notebook: invalid JSON" in capsys.readouterr().err


def test_a_syntax_error_in_the_parameters_cell_is_named(tmp_path):
    typo = _write_notebook(tmp_path / "04_typo.ipynb", 'profile = "smoke"\nepochs = = 3', "pass")
    expected = r"04_typo\.ipynb: syntax error in the parameters cell \(cell 0\), line 2"
    with pytest.raises(ValueError, match=expected) as err:
        runner.build_parameters(typo, "smoke", {})
    assert "epochs = = 3" in str(err.value)


# ----------------------------------------------------------------------------- D5: declared parameters are typed
_TYPED = 'profile = "smoke"\noverrides = {}\nflag = False\nepochs = 3\nlr = 0.1\nname = "x"\nsize = None\nids = [1, 2]'


def test_declared_parameters_are_read_as_their_default_type(tmp_path):
    nb = _write_notebook(tmp_path / "05_typed.ipynb", _TYPED, "pass")
    text = {"flag": "YES", "epochs": "5", "lr": "2", "name": "42", "size": "(1, 2)", "ids": "(3,)", "lr_x": "1e-3"}
    assert runner.build_parameters(nb, "full", text) == {
        "profile": "full", "flag": True, "epochs": 5, "lr": 2.0, "name": "42", "size": (1, 2), "ids": [3],
        "overrides": {"lr_x": 1e-3},
    }
    for value, expected in (("true", True), ("1", True), ("No", False), ("0", False), ("FALSE", False)):
        assert runner.build_parameters(nb, "smoke", {"flag": value})["flag"] is expected
    assert runner.build_parameters(nb, "smoke", {"size": "mini"})["size"] == "mini"  # None default: else the string
    assert runner.build_parameters(nb, "smoke", {"epochs": 7, "lr": 1})["lr"] == 1.0  # Python values (API)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("epochs", "2.5", "an int"), ("epochs", "abc", "an int"), ("epochs", "True", "an int"),
     ("flag", "maybe", "a bool"), ("lr", "fast", "a float"), ("ids", "5", "a list"), ("name", 3, "a str"),
     ("flag", 1, "a bool")],
)
def test_a_declared_parameter_of_the_wrong_type_fails_naming_it(tmp_path, key, value, expected):
    nb = _write_notebook(tmp_path / "05_typed.ipynb", _TYPED, "pass")
    with pytest.raises(ValueError, match=rf"05_typed\.ipynb: parameter '{key}' expects {expected}") as err:
        runner.build_parameters(nb, "smoke", {key: value})
    assert repr(value) in str(err.value)


def test_run_stops_before_executing_when_a_value_does_not_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner, "NOTEBOOKS_DIR", _folder_of_notebooks(tmp_path, ("00_a",)))
    monkeypatch.setattr(runner, "run_all", lambda *a, **kw: pytest.fail("nothing may run"))
    assert runner.main(["run", "-p", "epochs=2.5"]) == 2
    assert "00_a.ipynb: parameter 'epochs' expects an int like its default 3, got '2.5'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- D4: the executing cell is shown
def _progress_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# title"), nbformat.v4.new_code_cell("n = 1"),
                nbformat.v4.new_code_cell("   "), nbformat.v4.new_code_cell("\n# train\nfit(model)\nmore()")]
    return nb


def test_cell_progress_writes_one_line_per_cell_off_a_terminal():
    stream = io.StringIO()
    progress = runner.CellProgress("02_c", stream=stream)
    assert not progress.live  # a StringIO is not a terminal
    nb = _progress_notebook()
    progress.notebook_start(notebook=nb)
    progress.cell_execute(cell=nb.cells[1], cell_index=1)
    progress.cell_execute(cell=nb.cells[3], cell_index=3)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in stream.getvalue()
    assert lines[0].split() == ["02_c", "cell", "1/2", "at", "0:00", "n", "=", "1"]
    assert "cell 2/2" in lines[1] and lines[1].endswith("# train")  # first non-blank line of the source


def test_cell_progress_rewrites_one_line_on_a_terminal_and_keeps_the_clock_ticking():
    stream = io.StringIO()
    progress = runner.CellProgress("02_c", stream=stream, live=True, refresh=0.02)
    nb = _progress_notebook()
    progress.notebook_start(notebook=nb)
    progress.cell_execute(cell=nb.cells[3], cell_index=3)
    time.sleep(0.2)
    progress.close()
    out = stream.getvalue()
    assert "\n" not in out and out.count("\r") >= 4  # redrawn while the cell runs
    assert "cell 1/2  0:00 in cell, 0:00 in notebook  # train" in out
    assert out.endswith("\r")  # the line is cleared for what follows


@pytest.mark.slow
def test_run_reports_failing_cell_and_injects_parameters(tmp_path, capfd):
    ok = _write_notebook(tmp_path / "00_ok.ipynb", 'profile = "smoke"\nn = 1', "assert n == 7, n\nprint(profile)")
    bad_params = 'profile = "smoke"\noverrides = {}'
    bad = _write_notebook(tmp_path / "01_bad.ipynb", bad_params, "raise KeyError('no such column')")
    runs = runner.run_all([ok], profile="full", parameters={}, output_dir=tmp_path / "out", progress=False)
    assert runs[0].status == "failed" and "AssertionError" in runs[0].error  # n was not overridden
    shown = io.StringIO()
    runs = runner.run_all([ok, bad], profile="full", parameters={"n": "7"}, output_dir=tmp_path / "out",
                          progress=shown)
    assert [r.status for r in runs] == ["ok", "failed"]
    # D4: each notebook's start and end, and each cell as it starts (parameters, injected parameters, body)
    lines = shown.getvalue().splitlines()
    assert lines[0] == "[1/2] 00_ok.ipynb" and "notebook 01_bad.ipynb failed in cell 2 (execution count 3)" in lines
    assert [ln.split()[2] for ln in lines if " cell " in ln and ln.startswith("  00_ok")] == ["1/3", "2/3", "3/3"]
    assert any(ln.startswith("  00_ok  cell 3/3") and ln.endswith("assert n == 7, n") for ln in lines)
    assert any(ln.startswith("[1/2] 00_ok.ipynb: ok in 0:0") for ln in lines)
    # D3: the kernel talks over IPC sockets in a private folder: no TCP warning, no socket files left behind
    assert "without encryption" not in capfd.readouterr().err
    assert not [p.name for p in tmp_path.rglob("kernel*")]
    executed = nbformat.read(runs[0].output, as_version=4)
    assert "full" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "01_bad.ipynb" in runs[1].error and "cell" in runs[1].error and "no such column" in runs[1].error
    assert runs[1].output.name == "01_bad.failed.ipynb" and runs[1].output.exists()
    assert "status" in runner.summary_table(runs)
