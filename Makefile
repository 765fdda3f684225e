# Two commands do everything (each creates the environment on first use):
#   make run    the laptop sweep: stores, tables, figures, report under results/laptop/
#   make test   the test suite
# Other configs: make run CONFIG=config/paper-small.yaml

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rmtbench-installed
CONFIG ?= config/config.yaml
CORES ?= all
PYTEST_ARGS ?=

.PHONY: run test dry-run report env clean-results schema

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[workflow,data,test]"
	touch $(STAMP)

env: $(STAMP)

run: $(STAMP)
	$(PY) -m snakemake --profile profiles/default --configfile $(CONFIG) --cores $(CORES)
	$(PY) -m snakemake --profile profiles/default --configfile $(CONFIG) --report $$($(PY) -m rmtbench report-path $(CONFIG))
	@echo "results: $$($(PY) -m rmtbench report-path $(CONFIG) | xargs dirname)"

dry-run: $(STAMP)
	$(PY) -m snakemake --profile profiles/default --configfile $(CONFIG) -n

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

schema: $(STAMP)
	$(PY) -m rmtbench schema --out workflow/schemas/config.schema.yaml
	$(PY) -m rmtbench config-reference --out docs/config-reference.md

clean-results:
	rm -rf results .snakemake
