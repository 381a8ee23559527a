# Two commands do all the set-up themselves on a fresh clone: `make demo`, `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint docs lab clean

# (Re)install only when pyproject.toml changed since the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# keras-hub without tensorflow-text (and the full tensorflow it pulls in): see pyproject's dev extra
	$(BIN)/python -m pip install --quiet --no-deps "keras-hub==0.32.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/costlab run zoo:attention --latency-ms 20 --memory-mib 64 --out runs/demo

# COSTLAB_SMOKE: notebooks run every step at small sizes; the baseline: the example CI cost
# tests (tests/test_example_ci.py) hold zoo:attention to the stored run in data/sample_run
test: $(STAMP)
	COSTLAB_SMOKE=1 $(BIN)/python -m pytest --costlab-baseline data/sample_run

# the unit tier alone: no TensorFlow, under 2 minutes
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -p no:nbmake -o addopts="-ra --durations=5"

lab: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[notebooks]"
	$(BIN)/jupyter lab notebooks/

# ruff, then the layers contract (.importlinter): each stage imports only those below it
lint: $(STAMP)
	$(BIN)/ruff check costlab tests benchmarks
	$(BIN)/lint-imports

# the docs site (mkdocs.yml), strict: a warning fails the build; offline (no plugins fetch)
docs: $(STAMP)
	$(BIN)/python docs/_generate.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf runs .pytest_cache .hypothesis
