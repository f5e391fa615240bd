"""One entry point for every benchmark; each writes benchmarks/results/<date>-<machine>-<name>.{json,md}.

    python -m benchmarks harness [--full] [--s3] ...   lakevec vs Chroma, LanceDB, usearch, exact
    python -m benchmarks ingest                        add throughput and filtered get vs Chroma
    python -m benchmarks query                         single-query latency and recall vs Chroma
    python -m benchmarks import                        add_table from Parquet / Polars vs LanceDB
    python -m benchmarks embed                         the default embedder vs Chroma's runner
    python -m benchmarks s3                            an S3-hosted collection vs local disk
    python -m benchmarks server [--workers N]          lakevec run vs chroma run
    python -m benchmarks maintenance                   many small writes, compaction, vacuum
    python -m benchmarks hybrid                        BM25 and hybrid search vs bm25s, tantivy, LanceDB
    python -m benchmarks filtered                      filtered search on real and synthetic sets vs exact
    python -m benchmarks build_options                 index build options (ef_construction, tiers) at 1M
    python -m benchmarks ray                           1M rows through the Ray sink and index tasks vs one process
    python -m benchmarks scale [--rows N,M]            1M and 3M rows (or 10M): ingest, index, query, memory
    python -m benchmarks routed                        cold remote queries through index routes, with and without
    python -m benchmarks codes                         the index's copy of the vectors: int8 vs sign bits, and its size

``python -m benchmarks <name> --help`` lists a benchmark's options.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "harness": "benchmarks.harness.__main__",
    "ingest": "benchmarks.ingest",
    "query": "benchmarks.query",
    "import": "benchmarks.import_table",
    "embed": "benchmarks.embed",
    "s3": "benchmarks.s3",
    "server": "benchmarks.server",
    "maintenance": "benchmarks.maintenance",
    "hybrid": "benchmarks.hybrid",
    "filtered": "benchmarks.filtered",
    "build_options": "benchmarks.build_options",
    "ray": "benchmarks.ray_ingest",
    "scale": "benchmarks.scale",
    "routed": "benchmarks.routed",
    "codes": "benchmarks.codes",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
