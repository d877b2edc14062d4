# Every target uses one virtual environment (.venv), created on first use, and installs into it
# only the extras it needs, each behind its own stamp: demo the `demo` extra (what the demo
# imports, not the test tools); test, lint and bench the `test` and `examples` extras; package
# the `package` extra (build, twine).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
PACKAGE_STAMP := $(VENV)/.installed-package
export KERAS_BACKEND := jax

.PHONY: demo test test-all lint bench bench-smoke venv package clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test,examples]"
	touch $@

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[demo]"
	touch $@

$(PACKAGE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[package]"
	touch $@

venv: $(STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/python examples/demo.py

# The sdist and the wheel in dist/, checked by twine. Stale build/ output would leak into the
# wheel, hence the clean start; no build isolation, so no download (setuptools comes with the
# package extra).
package: $(PACKAGE_STAMP)
	rm -rf build dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/twine check --strict dist/*

# --dist loadgroup: the tests of one catalogue loss run on one worker (tests/conftest.py), which
# compiles that loss's programs once.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -m "not slow" -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

lint: $(STAMP)
	$(BIN)/ruff check losses_jax tests examples benchmarks
	$(BIN)/ruff format --check losses_jax tests examples benchmarks
	$(BIN)/pyright losses_jax

# The site, into docs/_build/html: warnings are errors, every cross-reference and internal link
# must resolve. Generated pages (catalogue, migration tables, API, benchmarks, examples) are
# written from the package into docs/_generated/ by docs/conf.py at each build.
DOCS_HTML ?= docs/_build/html
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	touch $@

docs: $(DOCS_STAMP)
	$(BIN)/python -m sphinx -E -W --keep-going -n -j 2 -q -b html docs $(DOCS_HTML)
	$(BIN)/python docs/check_links.py $(DOCS_HTML)

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

bench-smoke: $(STAMP)
	$(BIN)/python -m benchmarks.run --tiny --out $(VENV)/bench-smoke

clean:
	rm -rf $(VENV) demo_output .pytest_cache .hypothesis build dist
