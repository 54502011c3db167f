# Two entry points (see README): `make run` (default workflow) and `make test` (test suite).
# Both create or reuse the virtualenv $(VENV) and install the project from pyproject.toml.
PYTHON ?= python3.11
VENV ?= .venv
CORES ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run readme report test lint format-check clean-venv

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11+ is required; set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --cores $(CORES) all

# the README's results section from the last run's outputs (paper/README_results.md), and the run's
# tables that are committed beside it copied into docs/results (teacher, search, efficiency, cost and its
# per-job rows, the searched-vs-random study, task adaptivity and the scorecard)
RUN_TABLES := $(foreach t,teacher search efficiency cost,results/tables/$(t).csv results/tables/$(t).md) \
	results/tables/cost_jobs.csv \
	$(foreach t,searched_vs_random task_adaptivity scorecard,paper/tables/$(t).csv paper/tables/$(t).md)
# Only the table, figure and README rules may run: a stage output is never recomputed (a config that
# differs from the run's, e.g. no ADABERT_GLUE_DIR, changes no result), and a missing one is an error.
REPORT_RULES := teacher_table search_table task_adaptivity searched_vs_random cost_table figures main_table \
	efficiency_summary efficiency_table ablation_table transfer_table seed_table repeatability_table scorecard \
	readme_section
readme: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --cores 1 --rerun-triggers mtime --allowed-rules $(REPORT_RULES) \
		-- paper/README_results.md $(RUN_TABLES)
	$(BIN)/python -m adabert readme --readme README.md --section paper/README_results.md
	mkdir -p docs/results && cp $(RUN_TABLES) docs/results/

# the HTML report of the last run (figures and tables with their captions)
report: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --report paper/report.html

test: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python -m pytest -q

lint: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" snakemake --lint
	PATH="$(abspath $(BIN)):$$PATH" snakefmt --check Snakefile workflow/rules

clean-venv:
	rm -rf $(VENV)
