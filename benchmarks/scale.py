"""Millions of rows on this machine: ingest, index and query a clustered set too large to hold
twice in memory, with the lakevec process's memory sampled throughout.

    python -m benchmarks scale                                 # 1M and 3M rows
    python -m benchmarks scale --rows 10000000                 # 10M (about 50 minutes here)
    python -m benchmarks scale --rows 20000 --out /tmp/x       # a smoke run

The rows are generated and written in chunks of 100,000 (the same rows as the harness's
``clustered`` sets), as Parquet files of 100,000 rows; the exact top 10 of each query is
computed over the files, chunk by chunk. Each size runs in its own process (``add_table`` of
the files, ``wait_for_index``, single queries), which samples ``/proc/self/status`` every 0.1 s:
peak anonymous memory (the heap: what the machine must hold) and peak resident file pages
(mapped fragment and index files: page cache the kernel can drop) are reported apart, with
``VmHWM``, the kernel's peak of their sum.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import CACHE, DIM, K, synthetic, synthetic_chunks  # noqa: E402
from lakevec.maintenance.indexer import GROUP_MAX_ROWS  # noqa: E402

CHUNK = 100_000
TARGET_ROWS = 10_000_000
MEMORY_FIELDS = ("VmRSS", "RssAnon", "RssFile", "VmHWM")


def parts(rows: int, cache: Path) -> Path:
    """The set as Parquet files of CHUNK rows (id, sel, embedding), written once."""
    folder = cache / f"clustered-{rows}-parts.parquet"  # a directory; the suffix tells add_table its format
    if folder.exists():
        return folder
    tmp = cache / f"clustered-{rows}-parts.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sel = np.random.default_rng(7)
    for start, x in synthetic_chunks("clustered", rows, seed=0, size=CHUNK):
        table = pa.table(
            {
                "id": [f"id{i}" for i in range(start, start + len(x))],
                "sel": sel.integers(0, 100, len(x)),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), DIM),
            }
        )
        pq.write_table(table, tmp / f"part-{start // CHUNK:05d}.parquet", row_group_size=16_384)
    tmp.rename(folder)
    return folder


def truth(folder: Path, queries: np.ndarray, cache: Path, rows: int) -> np.ndarray:
    """Exact top K row numbers of each query (squared l2), over the files chunk by chunk."""
    path = cache / f"clustered-{rows}-q{len(queries)}-scale-truth.npy"
    if path.exists():
        return np.load(path)
    best_d = np.full((len(queries), 0), np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for f in sorted(folder.glob("*.parquet")):
        start = int(f.stem.split("-")[1]) * CHUNK
        column = pq.read_table(f, columns=["embedding"]).column("embedding").combine_chunks()
        x = column.values.to_numpy().reshape(-1, DIM)
        d = (x**2).sum(1)[None, :] - 2 * (queries @ x.T)
        top = np.argpartition(d, K, axis=1)[:, :K]
        dist = np.concatenate([best_d, np.take_along_axis(d, top, 1)], axis=1)
        idx = np.concatenate([best_i, top + start], axis=1)
        order = np.argsort(dist, axis=1, kind="stable")[:, :K]
        best_d, best_i = np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
    np.save(path, best_i)
    return best_i


class Sampler:
    """Peaks of this process's memory fields, per phase, from /proc/self/status."""

    def __init__(self) -> None:
        self.phase = "start"
        self.peaks: dict[str, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def read() -> dict[str, float]:
        out = {}
        with open("/proc/self/status") as f:
            for line in f:
                name = line.split(":", 1)[0]
                if name in MEMORY_FIELDS:
                    out[name] = int(line.split()[1]) / 1024  # MiB
        return out

    def sample(self) -> None:
        peaks = self.peaks.setdefault(self.phase, {})
        for name, value in self.read().items():
            peaks[name] = max(peaks.get(name, 0.0), value)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        self._thread.join()
        self.sample()
        return self.peaks


def child(rows: int, folder: Path, root: Path, queries: np.ndarray, best: np.ndarray) -> dict:
    """One size in this process: ingest, index, query; the figures and the memory peaks."""
    os.environ["LAKEVEC_AUTO_INDEX"] = "0"  # index when asked, as a bulk load does
    import lakevec

    sampler = Sampler()
    sampler.phase = "ingest"
    collection = lakevec.PersistentClient(str(root)).create_collection("scale", embedding_function=None)
    start = time.perf_counter()
    collection.add_table(str(folder))
    ingest_s = time.perf_counter() - start
    sampler.phase = "index"
    start = time.perf_counter()
    collection.wait_for_index()
    index_s = time.perf_counter() - start
    sampler.phase = "query"
    for q in queries[:20]:
        collection.query(query_embeddings=q[None], n_results=K, include=[])
    start = time.perf_counter()
    found = [collection.query(query_embeddings=q[None], n_results=K, include=[])["ids"][0] for q in queries]
    qps = len(queries) / (time.perf_counter() - start)
    start = time.perf_counter()  # the same queries again: their graph and row pages are resident
    for q in queries:
        collection.query(query_embeddings=q[None], n_results=K, include=[])
    qps_again = len(queries) / (time.perf_counter() - start)
    hits = [len({int(i[2:]) for i in got} & set(t.tolist())) / K for got, t in zip(found, best)]
    peaks = sampler.stop()
    from lakevec.lake.fragments import VECTORS

    manifest = collection._engine.snapshot().manifest
    index_bytes = sum(f.stat().st_size for f in root.rglob("*.usearch"))
    return {
        "index_mb": index_bytes / 2**20,
        "vector_cache_mb": VECTORS._bytes / 2**20,
        "vector_cache_budget_mb": VECTORS.budget / 2**20,
        "rows": rows,
        "ingest_s": ingest_s,
        "index_s": index_s,
        "qps": qps,
        "qps_again": qps_again,
        "recall": float(np.mean(hits)),
        "min_recall": float(np.min(hits)),
        "indexes": len({f.index for f in manifest.fragments if f.index}),
        "disk_mb": dir_bytes(root) / 1e6,
        "raw_mb": rows * DIM * 4 / 1e6,
        "memory_mib": peaks,
    }


def run_size(rows: int, args: argparse.Namespace, work: Path) -> dict:
    cache = Path(args.cache)
    folder = parts(rows, cache)
    queries = synthetic("clustered", max(args.queries, 1000), seed=1)[: args.queries]
    truth(folder, queries, cache, rows)
    root = work / f"rows-{rows}"
    shutil.rmtree(root, ignore_errors=True)
    out = work / f"rows-{rows}.json"
    command = [sys.executable, "-m", "benchmarks.scale", "--child", str(rows), "--root", str(root)]
    command += ["--queries", str(args.queries), "--cache", str(cache), "--result", str(out)]
    command += ["--group-rows", str(args.group_rows)]
    subprocess.run(command, check=True, cwd=Path(__file__).resolve().parent.parent)
    figures = json.loads(out.read_text())
    shutil.rmtree(root, ignore_errors=True)
    return figures


def extrapolate(sizes: list[dict], group_rows: int = GROUP_MAX_ROWS) -> dict | None:
    """10M from the measured sizes. Peak anonymous memory is split into the index a fold
    builds in memory (at most ``group_rows`` rows; the others are memory-mapped files), the
    fragment vector cache (as measured at the largest size, at most its budget; an index build
    does not fill it) and the rest (a line through the two largest
    sizes); index build time grows as n log n."""
    if len(sizes) < 2 or sizes[-1]["rows"] >= TARGET_ROWS:
        return None
    a, b = sizes[-2], sizes[-1]

    def peak(s: dict, field: str) -> float:
        return max(p.get(field, 0.0) for p in s["memory_mib"].values())

    def building(s: dict) -> float:
        return s["index_mb"] / s["rows"] * min(s["rows"], group_rows)

    def rest(s: dict) -> float:
        return peak(s, "RssAnon") - building(s) - s["vector_cache_mb"]

    def line(get) -> float:
        slope = (get(b) - get(a)) / (b["rows"] - a["rows"])
        return get(b) + slope * (TARGET_ROWS - b["rows"])

    raw_mib = TARGET_ROWS * DIM * 4 / 2**20
    index_mib = b["index_mb"] / b["rows"] * min(TARGET_ROWS, group_rows)
    cache_mib = min(raw_mib, b["vector_cache_budget_mb"], b["vector_cache_mb"] * TARGET_ROWS / b["rows"])
    growth = TARGET_ROWS * math.log(TARGET_ROWS) / (b["rows"] * math.log(b["rows"]))
    return {
        "rows": TARGET_ROWS,
        "index_s": b["index_s"] * growth,
        "ingest_s": b["ingest_s"] * TARGET_ROWS / b["rows"],
        "index_mib": index_mib,
        "cache_mib": cache_mib,
        "rest_mib": line(rest),
        "anon_mib": index_mib + cache_mib + line(rest),
        "disk_mb": line(lambda s: s["disk_mb"]),
    }


def report(result: dict) -> str:
    lines = heading("Scale: millions of clustered rows on this machine", result)
    lines += [
        "| rows | ingest s | index s | indexes | QPS | QPS again | recall@10 | min recall | disk MB (× raw) | peak anon MiB | peak file MiB | VmHWM MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["sizes"]:
        mem = s["memory_mib"]
        anon = max(p.get("RssAnon", 0) for p in mem.values())
        file = max(p.get("RssFile", 0) for p in mem.values())
        hwm = max(p.get("VmHWM", 0) for p in mem.values())
        lines.append(
            f"| {s['rows']:,} | {s['ingest_s']:.1f} | {s['index_s']:.0f} | {s['indexes']} | {s['qps']:,.0f} | "
            f"{s['qps_again']:,.0f} | "
            f"{s['recall']:.3f} | {s['min_recall']:.1f} | {s['disk_mb']:,.0f} ({s['disk_mb'] / s['raw_mb']:.2f}×) | "
            f"{anon:,.0f} | {file:,.0f} | {hwm:,.0f} |"
        )
    lines += ["", "Peak memory by phase (MiB, anonymous / resident file pages):", ""]
    lines += ["| rows | ingest | index | query |", "|---:|---|---|---|"]
    for s in result["sizes"]:
        cells = []
        for phase in ("ingest", "index", "query"):
            p = s["memory_mib"].get(phase, {})
            cells.append(f"{p.get('RssAnon', 0):,.0f} / {p.get('RssFile', 0):,.0f}")
        lines.append(f"| {s['rows']:,} | " + " | ".join(cells) + " |")
    x = result.get("extrapolated")
    if x:
        lines += [
            "",
            f"**Extrapolated to {x['rows']:,} rows** (not measured; index build as n log n from the "
            "largest size, disk on a line through the two largest): "
            f"ingest {x['ingest_s']:,.0f} s, index {x['index_s']:,.0f} s, disk {x['disk_mb']:,.0f} MB; peak "
            f"anonymous memory {x['anon_mib']:,.0f} MiB = the index being built {x['index_mib']:,.0f} + the vector "
            f"cache {x['cache_mib']:,.0f} + the rest {x['rest_mib']:,.0f} (a line through "
            "the two largest sizes).",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1000000,3000000", help="comma-separated sizes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--work", default=None, help="where the collections go (a temporary directory)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument(
        "--group-rows",
        type=int,
        default=GROUP_MAX_ROWS,
        help="rows per index that wait_for_index builds (the indexer's GROUP_MAX_ROWS)",
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        from lakevec.maintenance import indexer

        indexer.GROUP_MAX_ROWS = args.group_rows
        cache = Path(args.cache)
        queries = synthetic("clustered", max(args.queries, 1000), seed=1)[: args.queries]
        best = np.load(cache / f"clustered-{args.child}-q{args.queries}-scale-truth.npy")
        figures = child(
            args.child, cache / f"clustered-{args.child}-parts.parquet", Path(args.root), queries, best
        )
        Path(args.result).write_text(json.dumps(figures))
        return figures
    work = Path(args.work or tempfile.mkdtemp(prefix="lakevec-scale-"))
    result = header("scale", argv, rows=args.rows, queries=args.queries)
    result["sizes"] = []
    for rows in sorted(int(r) for r in args.rows.split(",")):
        figures = run_size(rows, args, work)
        result["sizes"].append(figures)
        print(json.dumps({k: v for k, v in figures.items() if k != "memory_mib"}), flush=True)
    result["extrapolated"] = extrapolate(result["sizes"], args.group_rows)
    write(result, args.out, report(result))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()
