"""Every numbered notebook: committed clean, and executed headless under the smoke profile."""

import pytest

from reidlab import notebooks as runner

NOTEBOOKS = runner.list_notebooks()


def test_there_are_notebooks():
    assert any(p.name.startswith("00_quickstart") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_clean(path):
    assert runner.hygiene_problems(path) == []


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_under_smoke_profile(path):
    run = runner.run_notebook(path, profile="smoke")
    assert run.status == "ok", run.error
