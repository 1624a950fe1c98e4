# sea-dist developer entry points. `make run` and `make test` are the README's two commands.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# Exact, tested versions (CPU torch). With a CUDA torch already installed: make install CONSTRAINTS=
CONSTRAINTS ?= constraints.txt
CONFIG ?= jobs/configs/default.yaml
PYTEST_ARGS ?=

.PHONY: install run demo-model lint typecheck pytest test test-fast clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(if $(CONSTRAINTS),-c $(CONSTRAINTS)) -e '.[all,dev]'
	touch $@

install: $(VENV)/.installed

demo-model: install
	$(VENV)/bin/sea-dist demo-model

run: install
	$(VENV)/bin/sea-dist run $(CONFIG)

lint: install
	$(VENV)/bin/ruff check sea_dist jobs tests benchmarks
	$(VENV)/bin/ruff format --check sea_dist jobs tests benchmarks

typecheck: install
	$(VENV)/bin/mypy sea_dist jobs

pytest: install
	$(VENV)/bin/pytest -q -m "" $(PYTEST_ARGS)

# The fast tier only (unit tests; no Ray/Dask services, no demo model, no reliability suite).
test-fast: install
	$(VENV)/bin/pytest -q

test: lint typecheck pytest

clean:
	rm -rf sea-runs .pytest_cache .mypy_cache .ruff_cache
