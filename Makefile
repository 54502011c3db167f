# Two entry points (see README): `make run` (default workflow) and `make test` (test suite).
# Both create or reuse the virtualenv $(VENV) and install the project from pyproject.toml.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format-check clean-venv

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11+ is required; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --cores $(CORES) all

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q

lint: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --lint
	PATH="$(abspath $(BIN)):$$PATH" snakefmt --check Snakefile workflow/rules

clean-venv:
	rm -rf $(VENV)
