"""Bulk import benchmark: ``Collection.add_table`` against LanceDB's ``tbl.add`` on the same data.

    python -m benchmarks import                    # 1,000,000 x 384 (the issue's setting)
    python -m benchmarks import --n 20000 --out /tmp/x   # a smoke run

Every (system, source) pair runs in its own process, so peak RSS (ru_maxrss) is that import's
alone. Sources: a Parquet file (streamed) and a Polars DataFrame already in memory (its size is
part of that process's RSS, for both systems). Neither system builds an ANN index during the
import (lakevec's background indexer is off: ``LAKEVEC_AUTO_INDEX=0``; LanceDB's add does not
index). Writes benchmarks/results/<date>-<machine>-import.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import synthetic  # noqa: E402

PAIRS = [("lakevec", "parquet"), ("lakevec", "polars"), ("lancedb", "parquet"), ("lancedb", "polars")]


def make_parquet(path: Path, n: int, dim: int, seed: int = 0) -> None:
    """The harness's uniform unit vectors plus a document and three typed metadata columns, in
    64k-row groups."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = synthetic("uniform", n, seed, dim)
    rng = np.random.default_rng(seed + 1)
    writer = None
    for start in range(0, n, 65536):
        m = min(65536, n - start)
        emb = vectors[start : start + m]
        idx = np.arange(start, start + m)
        table = pa.table(
            {
                "id": pa.array(np.char.add("doc-", idx.astype(str))),
                "document": pa.array(np.char.add("document number ", idx.astype(str))),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
                "category": pa.array(np.char.add("c", (idx % 10).astype(str))),
                "year": pa.array(rng.integers(2000, 2025, m)),
                "score": pa.array(rng.random(m)),
            }
        )
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def child(system: str, source: str, path: str, workdir: str) -> dict:
    """One import in this process; returns its figures. Imports happen before the clock starts."""
    import polars as pl
    import pyarrow.parquet as pq

    if system == "lakevec":
        os.environ["LAKEVEC_AUTO_INDEX"] = "0"
        import lakevec
    else:
        import lancedb
    data = pl.read_parquet(path) if source == "polars" else path
    start = time.perf_counter()
    if system == "lakevec":
        client = lakevec.PersistentClient(workdir)
        collection = client.create_collection("bench", embedding_function=None)
        rows = collection.add_table(data)
        count = collection.count()
    else:
        db = lancedb.connect(workdir)
        if source == "parquet":
            parquet = pq.ParquetFile(path)
            table = db.create_table("bench", schema=parquet.schema_arrow)
            table.add(parquet.iter_batches(batch_size=65536))
        else:
            table = db.create_table("bench", schema=data.to_arrow().schema)
            table.add(data)
        count = rows = table.count_rows()
    seconds = time.perf_counter() - start
    return {
        "system": system,
        "source": source,
        "rows": rows,
        "count": count,
        "seconds": round(seconds, 2),
        "rows_per_s": round(rows / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--systems", default="lakevec,lancedb")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the fastest of each is reported")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--child", nargs=4, metavar=("SYSTEM", "SOURCE", "PATH", "WORKDIR"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return {}

    systems = args.systems.split(",")
    result = header("import", argv, n=args.n, dim=args.dim, repeat=args.repeat, all_runs=[])
    tmp = Path(tempfile.mkdtemp(prefix="lakevec-import-"))
    try:
        data = tmp / "input.parquet"
        make_parquet(data, args.n, args.dim)
        result["input_bytes"] = data.stat().st_size
        # Rounds interleave the systems; the disk is synced before every run so no import pays
        # for the write-back of the input or of the previous run.
        for _ in range(args.repeat):
            for system, source in PAIRS:
                if system not in systems:
                    continue
                workdir = tmp / f"{system}-{source}"
                os.sync()
                out = subprocess.run(
                    [sys.executable, __file__, "--child", system, source, str(data), str(workdir)],
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    raise RuntimeError(f"{system}/{source} import failed:\n{out.stderr[-3000:]}")
                run = json.loads(out.stdout.strip().splitlines()[-1])
                run["disk_bytes"] = dir_bytes(workdir)
                result["all_runs"].append(run)
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    best: dict[tuple[str, str], dict] = {}
    for run in result["all_runs"]:  # the fastest of each pair's repetitions
        key = (run["system"], run["source"])
        if key not in best or run["seconds"] < best[key]["seconds"]:
            best[key] = run
    for key, run in best.items():
        run["median_seconds"] = round(
            float(np.median([r["seconds"] for r in result["all_runs"] if (r["system"], r["source"]) == key])),
            2,
        )
    result["runs"] = list(best.values())
    by = best
    lines = [
        *heading(f"Import {args.n:,} x {args.dim} rows", result),
        "| system | source | rows/s | seconds | median seconds | peak RSS (MB) | on disk (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['system']} | {r['source']} | {r['rows_per_s']:,} | {r['seconds']} | {r['median_seconds']} "
            f"| {r['peak_rss_mb']:,} "
            f"| {r['disk_bytes'] / 1e6:,.0f} |"
        )
    ratios = []
    for source in ("parquet", "polars"):
        ours, theirs = by.get(("lakevec", source)), by.get(("lancedb", source))
        if ours and theirs:
            ratio = ours["rows_per_s"] / theirs["rows_per_s"]
            result[f"ratio_{source}"] = round(ratio, 2)
            ratios.append(f"{source}: lakevec/LanceDB rows/s = {ratio:.2f}x")
    if ratios:
        lines += ["", "; ".join(ratios)]
    lines += [
        "",
        f"Input Parquet: {result['input_bytes'] / 1e6:,.0f} MB. No ANN index is built by either import. "
        f"Fastest of {args.repeat} interleaved rounds per row (every run is in the JSON); peak RSS of that run.",
    ]
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
