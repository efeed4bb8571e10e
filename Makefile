# facelab: two commands on a fresh machine (`make run`, `make test`); each bootstraps .venv
# from requirements-lock.txt when it is missing or the lock changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
LOCK_HASH := $(shell cat requirements-lock.txt pyproject.toml 2>/dev/null | sha256sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(LOCK_HASH)
PYTEST_ARGS ?=

.PHONY: venv lock assets run book book-screenshots test test-unit test-learning test-long lab gpu-check bench clean

UV_VERSION := 0.13.9
UV := .tools/bin/uv

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION)

## The venv is exactly the lock: every package (setuptools and wheel included) pinned with its hashes.
## uv installs it (a fresh venv in ~1 minute, pip took ~5); `make venv PIP_ONLY=1` uses pip instead.
$(STAMP): requirements-lock.txt pyproject.toml $(if $(PIP_ONLY),,$(UV))
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
ifdef PIP_ONLY
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps --require-hashes -r requirements-lock.txt
else
	$(UV) pip install -q --python $(VPY) --no-deps --require-hashes -r requirements-lock.txt
endif
	@# whatever the lock does not list (left from an older lock) is uninstalled
	$(VPY) scripts/venv_sync.py requirements-lock.txt --fix
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(VPY) -m facelab kernel >/dev/null
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(STAMP)

## Re-resolve the lock from pyproject.toml (+ requirements/extra.in, requirements/overrides.txt) with
## uv, keeping today's versions (the current lock as constraints) and writing every file's hash.
## Drop the constraint to move versions forward on purpose.
lock: $(UV)
	$(UV) pip compile pyproject.toml requirements/extra.in --extra dev \
	  --override requirements/overrides.txt --constraint requirements-lock.txt --generate-hashes \
	  --python-version 3.11.14 --python-platform x86_64-manylinux_2_28 --index-url https://pypi.org/simple \
	  --no-header -o requirements-lock.txt

assets: venv
	$(VPY) -m facelab assets

## The main job: every notebook in profile auto (smoke on CPU), executed copies in runs/,
## figures in figures/<notebook>/, the summary in figures/RESULTS.md.
run: venv
	-$(VPY) -m facelab assets
	$(VPY) -m facelab run all --profile auto

## The whole test suite (fail fast): unit tests; then every notebook executed once with papermill in
## the smoke profile (runs/<notebook>/smoke/); the book built from those copies; then the tests that
## read them (marker `executed`: every check printed True; the book in Chromium).
test: venv
	-$(VPY) -m facelab assets
	$(VPY) -m facelab kernel >/dev/null
	$(VPY) -m pytest -x -m "not long and not executed" $(PYTEST_ARGS) tests
	$(VPY) -m facelab run all --profile smoke --fail-fast
	$(VPY) -m facelab book --profiles smoke
	FACELAB_REQUIRE_EXECUTED=1 $(VPY) -m pytest -x -m "executed and not long" $(PYTEST_ARGS) tests

## The executed notebooks under runs/ (smoke; a demo or paper run replaces its smoke copy) as a
## static site: build/book/html/index.html (Sphinx + myst-nb, stored outputs, no network).
book: venv
	$(VPY) -m facelab book

## Refresh the tracked screenshots in figures/book/ (README) on purpose: the browser test writes
## them to the ignored build/book/screenshots/ otherwise. Needs `make test`'s executed runs and book.
book-screenshots: venv
	FACELAB_BOOK_SHOTS=figures/book FACELAB_REQUIRE_EXECUTED=1 $(VPY) -m pytest -q tests/test_book_browser.py

## The tests that assert learning, on the portable CPU kernels (ATEN_CPU_CAPABILITY=default): their
## thresholds must hold on any x86-64 vector unit (scripts/learning_sweep.sh measures them).
test-learning: venv
	ATEN_CPU_CAPABILITY=default $(VPY) -m pytest -m "learning and not long" $(PYTEST_ARGS) tests

## Unit tests alone: the `executed` tests need `make test`'s notebook runs and book first.
test-unit: venv
	$(VPY) -m pytest -x -m "not long and not executed" $(PYTEST_ARGS) tests

## Tests of many CPU-minutes (e.g. realism of synth against real FER2013; needs FACELAB_DATA).
test-long: venv
	$(VPY) -m pytest -m long $(PYTEST_ARGS) tests

lab: venv
	$(VPY) -m jupyter lab --ip 127.0.0.1 --no-browser --notebook-dir notebooks

## On a lent GPU machine (see scripts/gpu_check.sh): demo profiles with a time cap + CUDA tests.
gpu-check:
	bash scripts/gpu_check.sh

bench: venv
	$(VPY) bench/run.py

clean:
	rm -rf runs build/book .pytest_cache bench/results.json
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
	find figures -mindepth 1 -maxdepth 1 -type d -not -name book -exec rm -rf {} +
	rm -f figures/RESULTS.md
