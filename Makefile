# The two commands of the README: `make demo` runs Crop AI on the embedded defaults,
# `make test` runs the test suite. Both create the virtual environment when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The CPU build of PyTorch; installed first so that no dependency pulls a CUDA build.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: venv demo test test-unit lint web clean-venv

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

venv: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/cropai demo

test: $(INSTALLED)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(INSTALLED)
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

# The gates CI runs before the tests: lint rules, the formatter, types, and the import
# contracts of docs/architecture.md (pyproject.toml [tool.importlinter]).
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The web viewer's map library, from the npm registry into api/web/vendor (committed: running
# Crop AI needs neither Node.js nor the network). Run after changing web/package.json.
web:
	cd web && npm ci --no-audit --no-fund && npm run build

clean-venv:
	rm -rf $(VENV)
