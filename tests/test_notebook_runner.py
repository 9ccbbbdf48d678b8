"""The headless runner: parameters, hygiene checks and failure reports."""

import json

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


def test_parse_parameters_literals_and_strings():
    assert runner.parse_parameters(["epochs=2", "size=(64, 32)", "dataset=synth_duke", "flag=True"]) == {
        "epochs": 2,
        "size": (64, 32),
        "dataset": "synth_duke",
        "flag": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        runner.parse_parameters(["epochs"])


def test_unknown_keys_go_to_overrides(tmp_path):
    nb = _write_notebook(tmp_path / "01_x.ipynb", 'profile = "smoke"\noverrides = {"a": 1}\nn = 3', "pass")
    injected = runner.build_parameters(nb, "full", {"n": 5, "epochs": 2})
    assert injected == {"profile": "full", "n": 5, "overrides": {"a": 1, "epochs": 2}}
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


@pytest.mark.slow
def test_run_reports_failing_cell_and_injects_parameters(tmp_path):
    ok = _write_notebook(tmp_path / "00_ok.ipynb", 'profile = "smoke"\nn = 1', "assert n == 7, n\nprint(profile)")
    bad_params = 'profile = "smoke"\noverrides = {}'
    bad = _write_notebook(tmp_path / "01_bad.ipynb", bad_params, "raise KeyError('no such column')")
    runs = runner.run_all([ok, bad], profile="full", parameters={}, output_dir=tmp_path / "out")
    assert runs[0].status == "failed" and "AssertionError" in runs[0].error  # n was not overridden
    runs = runner.run_all([ok, bad], profile="full", parameters={"n": 7}, output_dir=tmp_path / "out")
    assert [r.status for r in runs] == ["ok", "failed"]
    executed = nbformat.read(runs[0].output, as_version=4)
    assert "full" in "".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    assert "01_bad.ipynb" in runs[1].error and "cell" in runs[1].error and "no such column" in runs[1].error
    assert runs[1].output.name == "01_bad.failed.ipynb" and runs[1].output.exists()
    assert "status" in runner.summary_table(runs)
