# `make run` and `make test` create .venv on first use and install the project into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Compiled once at install, as `pip install .` compiles an installed package (the image's): an editable
# install compiles nothing, and where PYTHONDONTWRITEBYTECODE is set every process compiled them again.
PACKAGES := domain commands projections process_managers read_api infra bench

.PHONY: run test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(PACKAGES)
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/saga serve

test: $(STAMP) lint typecheck
	$(BIN)/pytest

# lint-imports checks the import contracts of pyproject.toml; without a cache, as it takes a fraction of a
# second and its cache directory would otherwise sit untracked in the work tree.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python bench/write_side.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
