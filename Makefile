# Each target sets up its own virtual environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KERAS_BACKEND := jax

.PHONY: demo test test-all lint bench bench-smoke venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,examples]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

lint: $(STAMP)
	$(BIN)/ruff check losses_jax tests examples benchmarks
	$(BIN)/ruff format --check losses_jax tests examples benchmarks
	$(BIN)/pyright losses_jax

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --tiny --out $(VENV)/bench-smoke

clean:
	rm -rf $(VENV) demo_output .pytest_cache .hypothesis
