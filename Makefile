# reidlab — two commands do all the set-up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.reidlab-installed
PROFILE ?= smoke

.PHONY: demo test lint unit notebooks bench-eval bench-train bench-synth clean-runs help

help:
	@echo "make demo   - set up .venv, generate the synthetic world, run every notebook (profile $(PROFILE))"
	@echo "make test   - set up .venv, ruff check, pytest (unit tests + every notebook under papermill)"

# The virtual environment is (re)built when missing or older than pyproject.toml.
$(STAMP): pyproject.toml
	@echo "==> setting up $(VENV) (first install of torch takes a few minutes and several GB)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@$(PY) -c "import torch, torchvision, timm, open_clip, pytorch_grad_cam, papermill; print('==> environment ready: torch', torch.__version__, '| torchvision', torchvision.__version__, '| timm', timm.__version__)"
	@touch $(STAMP)

demo: $(STAMP)
	@echo "==> generating the built-in synthetic world if missing"
	@$(PY) -m reidlab.notebooks prepare --profile $(PROFILE)
	@echo "==> executing every notebook headless (profile $(PROFILE))"
	@$(PY) -m reidlab.notebooks run --profile $(PROFILE)

lint: $(STAMP)
	@echo "==> ruff check"
	@$(PY) -m ruff check .

# pytest exit code 5 (no tests collected) must fail loudly, never pass silently.
test: lint
	@echo "==> pytest (unit tests, then every notebook under papermill, profile smoke)"
	@$(PY) -m pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests" >&2; exit 1; fi; exit $$rc

unit: $(STAMP)
	@$(PY) -m pytest -m "not notebooks"

notebooks: $(STAMP)
	@$(PY) -m reidlab.notebooks run --profile $(PROFILE)

bench-eval: $(STAMP)
	@$(PY) -m reidlab.bench eval

bench-train: $(STAMP)
	@$(PY) -m reidlab.bench train

bench-synth: $(STAMP)
	@$(PY) -m reidlab.bench synth

clean-runs:
	rm -rf runs
