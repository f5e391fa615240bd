"""One benchmark harness: lakevec against Chroma, LanceDB, raw usearch and exact numpy search.

    python -m benchmarks harness            # quick: a few minutes (what `make bench` runs)
    python -m benchmarks harness --full     # 10k / 100k / 1M, uniform and text, S3 cold open

Every (dataset, system) pair runs in a fresh process on the same cached data, so peak RSS and
imports belong to one system. Writes ``benchmarks/results/<date>-<machine>.{json,md}`` and PNG
plots beside them.
"""
