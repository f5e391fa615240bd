"""`lakevec run` against `chroma run`, both driven by the official chromadb HttpClient.

    python -m benchmarks server                        # 50,000 x 384 (the issue's setting)
    python -m benchmarks server --n 2000 --queries 50 --out /tmp/x   # a smoke run

Both servers run in this run, on the same machine, each in its own process on 127.0.0.1, each
over an empty directory. The same clustered vectors are added in batches of 1,000 through
``chromadb.HttpClient`` (which sends base64 embeddings to any server that advertises it); then
single queries (n_results=10) run from 1 and from 8 concurrent clients (threads, one HttpClient
each). lakevec's server indexes in the background; the query phase starts once it has indexed every
row (Chroma indexes as part of every add), so both answer queries from an HNSW index.
Writes benchmarks/results/<date>-<machine>-server.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import free_port, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import synthetic  # noqa: E402

BATCH = 1000


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_up(port: int, proc: subprocess.Popen) -> None:
    import httpx

    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).raise_for_status()
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def run_system(port: int, data: np.ndarray, queries: np.ndarray, root: Path | None) -> dict:
    import chromadb

    client = chromadb.HttpClient(host="127.0.0.1", port=port)
    col = client.create_collection("bench", embedding_function=None, configuration={"hnsw": {"space": "l2"}})
    times = []
    start_all = time.perf_counter()
    for s in range(0, len(data), BATCH):
        t = time.perf_counter()
        col.add(
            ids=[f"id{i}" for i in range(s, min(s + BATCH, len(data)))],
            embeddings=data[s : s + BATCH],
            metadatas=[{"g": int(i % 10)} for i in range(s, min(s + BATCH, len(data)))],
        )
        times.append(time.perf_counter() - t)
    add_s = time.perf_counter() - start_all
    if root is not None:  # lakevec: let the server's background indexing finish before queries
        wait_indexed(root)
    out = {
        "add_vectors_per_s": round(len(data) / add_s),
        "add_batch_ms_median": round(float(np.median(times)) * 1000, 2),
    }
    for threads in (1, 8):
        out[f"qps_{threads}_clients"] = round(query_qps(port, queries, threads), 1)
    return out


def wait_indexed(root: Path, timeout: float = 300) -> None:
    """Watch the collection's manifest until the server's background indexer has nothing left
    to fold (folding here with ``wait_for_index`` would build the same index a second time, in
    a second process, while the server builds it)."""
    import lakevec
    from lakevec.maintenance.indexer import background_fold_rows

    engine = lakevec.PersistentClient(str(root)).get_collection("bench", embedding_function=None)._engine
    deadline = time.monotonic() + timeout
    while True:
        manifest = engine.snapshot().manifest
        tail = sum(e.live_rows for e in manifest.fragments if e.index is None)
        if tail < background_fold_rows(manifest):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server did not index the collection in {timeout} s")
        time.sleep(0.1)


def query_qps(port: int, queries: np.ndarray, threads: int) -> float:
    import chromadb

    cols = [
        chromadb.HttpClient(host="127.0.0.1", port=port).get_collection("bench", embedding_function=None)
        for _ in range(threads)
    ]
    for col in cols:  # warm: every connection open, the server's index and rows in memory
        for i in range(0, min(50, len(queries)), threads):
            col.query(query_embeddings=queries[i : i + 1], n_results=10)
    parts = np.array_split(np.arange(len(queries)), threads)

    def worker(col, idx) -> None:
        for i in idx:
            col.query(query_embeddings=queries[i : i + 1], n_results=10)

    pool = [threading.Thread(target=worker, args=(c, p)) for c, p in zip(cols, parts)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return len(queries) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="lakevec run --workers")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    result = header(
        "server",
        argv,
        n=args.n,
        dim=args.dim,
        batch=BATCH,
        queries=args.queries,
        workers=args.workers,
    )
    vectors = synthetic("clustered", args.n + args.queries, 0, args.dim)
    data, queries = vectors[: args.n], vectors[args.n :]
    tmp = Path(tempfile.mkdtemp(prefix="lakevec-server-"))
    bin_dir = Path(sys.executable).parent
    try:
        for system in ("lakevec", "chroma"):
            port = free_port()
            root = tmp / system
            if system == "lakevec":
                cmd = [sys.executable, "-m", "lakevec", "run", "--path", str(root), "--port", str(port)]
                cmd += ["--workers", str(args.workers)]
            else:
                chroma = shutil.which("chroma", path=str(bin_dir)) or "chroma"
                cmd = [chroma, "run", "--path", str(root), "--port", str(port)]
            proc = start(cmd)
            try:
                wait_up(port, proc)
                result[system] = run_system(port, data, queries, root if system == "lakevec" else None)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    lv, ch = result["lakevec"], result["chroma"]
    result["ratios"] = {
        "add": round(lv["add_vectors_per_s"] / ch["add_vectors_per_s"], 2),
        "qps_1": round(lv["qps_1_clients"] / ch["qps_1_clients"], 2),
        "qps_8": round(lv["qps_8_clients"] / ch["qps_8_clients"], 2),
    }
    r = result["ratios"]
    lines = [
        *heading(
            f"HTTP server: lakevec run ({args.workers} worker process(es)) vs chroma run, {args.n:,} x {args.dim}",
            result,
        ),
        "| measure | lakevec | Chroma | lakevec / Chroma |",
        "|---|---:|---:|---:|",
        f"| add vectors/s (batches of {BATCH:,}) | {lv['add_vectors_per_s']:,} | {ch['add_vectors_per_s']:,} | {r['add']}x |",
        f"| add batch median ms | {lv['add_batch_ms_median']} | {ch['add_batch_ms_median']} | |",
        f"| query QPS, 1 client | {lv['qps_1_clients']} | {ch['qps_1_clients']} | {r['qps_1']}x |",
        f"| query QPS, 8 clients | {lv['qps_8_clients']} | {ch['qps_8_clients']} | {r['qps_8']}x |",
        "",
        "Both through chromadb.HttpClient over 127.0.0.1; single queries with n_results=10.",
    ]
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    main()
