# reidlab — two commands do all the set-up: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.reidlab-installed
# The tested versions of every package .venv holds (pins only, no hashes); `make lock` refreshes it.
LOCK := requirements-lock.txt
PROFILE ?= smoke

.PHONY: demo test lint unit notebooks lab-weights bench-eval bench-train bench-synth clean-runs help lock

help:
	@echo "make demo   - set up .venv, generate the synthetic world, run every notebook (profile $(PROFILE))"
	@echo "make test   - set up .venv, ruff check, pytest (unit tests + every notebook under papermill)"
	@echo "make lab-weights - make the lab's ResNet-18 (not shipped; about 12 min on 2 CPU cores) for the ResNet methods"
	@echo "make lock   - re-resolve pyproject.toml's ranges in a scratch venv and rewrite $(LOCK)"

# Fails when the environment holds a package that the lock does not pin, or pins at another version
# (a dependency added to pyproject.toml without `make lock`, or a leftover of an older lock).
define CHECK_LOCK
import re, subprocess, sys
canon = lambda name: re.sub(r"[-_.]+", "-", name).lower()
lock = {}
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if line and not line.startswith("-"):
        name, _, version = line.partition("==")
        lock[canon(name)] = version.strip()
freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--all", "--exclude-editable", "--exclude", "reidlab"],
                        check=True, capture_output=True, text=True).stdout.splitlines()
bad = []
for entry in freeze:
    name, _, version = entry.partition("==")
    if canon(name) not in lock:
        bad.append(f"{entry}: installed, not in {sys.argv[1]}")
    elif version != lock[canon(name)]:
        bad.append(f"{entry}: installed, {sys.argv[1]} pins {lock[canon(name)]}")
if bad:
    sys.exit("ERROR: the environment differs from " + sys.argv[1] + ":\n  " + "\n  ".join(bad)
             + "\nA dependency added to pyproject.toml needs `make lock`; a leftover of an older lock needs"
             + " `rm -rf .venv && make`.")
print(f"==> {len(freeze)} packages, all at the versions pinned in {sys.argv[1]}")
endef
export CHECK_LOCK

# The virtual environment is (re)installed when missing or older than pyproject.toml or the lock file;
# it gets exactly the locked versions (the lock is a pip constraints file).
$(STAMP): pyproject.toml $(LOCK)
	@echo "==> setting up $(VENV) from $(LOCK) (first install of torch takes a few minutes and several GB)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet -c $(LOCK) --upgrade pip
	@$(PY) -m pip install --quiet -c $(LOCK) -e '.[dev]'
	@$(PY) -c "$$CHECK_LOCK" $(LOCK)
	@$(PY) -c "import torch, torchvision, timm, open_clip, pytorch_grad_cam, papermill; print('==> environment ready: torch', torch.__version__, '| torchvision', torchvision.__version__, '| timm', timm.__version__)"
	@touch $(STAMP)

# Refresh the lock on purpose: resolve pyproject.toml's loose ranges afresh in a scratch venv (newest
# releases that fit), freeze it (--all: pip and setuptools too; torch needs setuptools at run time)
# without reidlab itself, and refuse local builds (+cu130) and URL pins, which PyPI cannot resolve.
# Then `make test` installs the new set into .venv; commit $(LOCK) once it passes.
lock:
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "==> resolving pyproject.toml's ranges in a scratch venv ($$tmp/venv; several GB, a few minutes)"; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/python" -m pip install --quiet --upgrade pip; \
	"$$tmp/venv/bin/python" -m pip install --quiet -e '.[dev]'; \
	{ if [ -f $(LOCK) ]; then sed -n '/^#/p;/^#/!q' $(LOCK); fi; \
	  "$$tmp/venv/bin/python" -m pip freeze --all --exclude-editable --exclude reidlab; } > "$$tmp/lock"; \
	if grep -nE '^[^#].*( @ |\+)' "$$tmp/lock"; then \
	  echo "ERROR: the lines above are local builds or URLs, which PyPI cannot resolve; install plain PyPI releases" >&2; exit 1; fi; \
	mv "$$tmp/lock" $(LOCK); \
	echo "==> wrote $(LOCK) ($$(grep -c '==' $(LOCK)) pins); see \`git diff $(LOCK)\`, then run make test and commit it"

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

# The lab's ResNet-18 (22 MB, so not in git); the ViT and CLIP lab weights are shipped. Kept if it exists.
lab-weights: $(STAMP)
	@f=$${REIDLAB_WEIGHTS:-data/weights}/lab/resnet18.safetensors; if [ -f "$$f" ]; then echo "==> $$f exists"; \
	  else $(PY) -m reidlab.pretrain --model resnet18; fi

bench-eval: $(STAMP)
	@$(PY) -m reidlab.bench eval

bench-train: $(STAMP)
	@$(PY) -m reidlab.bench train

bench-synth: $(STAMP)
	@$(PY) -m reidlab.bench synth

clean-runs:
	rm -rf runs
