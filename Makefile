# Haengbok — every target builds the virtual environment it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint fmt bench clean-data

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP) ## Start everything on an embedded PostgreSQL with demo data
	$(BIN)/haengbok up

test: $(STAMP) ## Run the whole test suite on a real PostgreSQL (embedded unless DATABASE_URL)
	$(BIN)/pytest

test-fast: $(STAMP) ## Run the suite without the process-killing fault tests
	$(BIN)/pytest -m "not fault"

lint: $(STAMP) ## ruff, mypy (strict on platform code), import-linter contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Benchmarks (figures go to bench-results/)
	$(BIN)/python -m tests.bench

clean-data: ## Delete the embedded PostgreSQL data folders
	rm -rf .pgdata .pgdata-test
