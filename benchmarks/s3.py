"""An S3-hosted collection against the same collection on local disk.

    python -m benchmarks s3                      # 200,000 x 384 (the issue's setting)
    python -m benchmarks s3 --n 5000 --out /tmp/x   # a smoke run

moto's S3 server runs in its own process on 127.0.0.1. The collection is built and indexed once
on local disk, then its files are uploaded to a bucket, so both copies are the same. Each
measurement runs in a fresh process: cold = open the client, get the collection and answer one
query with an empty cache directory; warm = the p50 of 200 further queries in that process, next
to the same queries on the local copy. HTTP requests and bytes are counted by the server
(``benchmarks/moto_ranges.py``'s request log), whichever client lakevec reads through. Writes benchmarks/results/<date>-<machine>-s3.{json,md}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import REQUEST_LOG, dir_bytes, free_port, header, heading, logged_requests, write  # noqa: E402
from benchmarks.harness.datasets import synthetic  # noqa: E402

BUCKET = "lakevec-bench"
QUERIES = 200
COLD_RUNS = 3
SETTLE_S = 5  # after the build freed gigabytes, the VM's kernel works in the background for a while


@contextlib.contextmanager
def moto_s3():
    """moto's S3 server in its own process on a free 127.0.0.1 port, serving ranged GETs as
    S3 does (``benchmarks/moto_ranges.py``), with ``BUCKET`` created: yields the environment
    that points boto at it and an s3fs filesystem."""
    import boto3
    import s3fs

    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-requests-", suffix=".log", delete=False)
    log.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.moto_ranges", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
        env=dict(os.environ, **{REQUEST_LOG: log.name}),
    )
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        **{REQUEST_LOG: log.name},  # children count their requests in the server's log
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        for attempt in range(100):  # the server takes a moment to start
            try:
                s3.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if attempt == 99:
                    raise
                time.sleep(0.1)
        fs = s3fs.S3FileSystem(
            key="bench",
            secret="bench",
            endpoint_url=endpoint,
            skip_instance_cache=True,
            client_kwargs={"region_name": "us-east-1"},
        )
        yield env, fs
    finally:
        server.terminate()
        server.wait(timeout=30)
        os.unlink(log.name)


def upload(fs, local: Path, prefix: str) -> None:
    for file in (f for f in local.rglob("*") if f.is_file()):
        fs.pipe_file(f"{prefix}/{file.relative_to(local).as_posix()}", file.read_bytes())


def child(root: str, dim: int, cache_dir: str) -> dict:
    """Cold open + first query, then warm queries; runs in its own process."""
    start = time.perf_counter()
    import lakevec

    client = lakevec.PersistentClient(root, cache_dir=cache_dir)
    log = os.environ.get(REQUEST_LOG)
    seen = logged_requests(log) if log else (0, 0)

    def counted() -> tuple[int, int]:  # requests and bytes since the start, by the server
        now = logged_requests(log) if log else (0, 0)
        return now[0] - seen[0], now[1] - seen[1]

    col = client.get_collection("bench", embedding_function=None)
    queries = np.random.default_rng(7).standard_normal((QUERIES + 1, dim)).astype(np.float32)
    col.query(query_embeddings=queries[:1], n_results=10)
    cold = time.perf_counter() - start
    cold_requests, cold_bytes = counted()
    times = []
    for q in queries[1:]:
        t = time.perf_counter()
        col.query(query_embeddings=q[None], n_results=10)
        times.append(time.perf_counter() - t)
    requests, moved = counted()
    return {
        "cold_open_first_query_s": round(cold, 3),
        "cold_requests": cold_requests,
        "cold_mb": round(cold_bytes / 1e6, 1),
        "warm_p50_ms": round(float(np.median(times)) * 1000, 3),
        "warm_p99_ms": round(float(np.percentile(times, 99)) * 1000, 3),
        "warm_requests_per_query": round((requests - cold_requests) / QUERIES, 2),
        "warm_bytes_per_query": round((moved - cold_bytes) / QUERIES),
    }


def build(local: str, n: int, dim: int) -> None:
    """The collection, built and indexed on local disk (in its own process)."""
    import pyarrow as pa

    import lakevec

    os.environ["LAKEVEC_AUTO_INDEX"] = "0"  # inline indexing only
    col = lakevec.PersistentClient(local).create_collection(
        "bench", embedding_function=None, configuration={"hnsw": {"space": "l2"}}
    )
    emb = synthetic("uniform", n, 0, dim)
    rng = np.random.default_rng(1)
    col.add_table(
        pa.table(
            {
                "id": [f"id{i}" for i in range(n)],
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
                "group": rng.integers(0, 100, n),
            }
        )
    )
    col.wait_for_index()


def run_child(root: str, dim: int, cache_dir: str, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", root, str(dim), cache_dir],
        capture_output=True,
        text=True,
        env=env,
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "DIM", "CACHE_DIR"))
    parser.add_argument("--build", nargs=3, metavar=("DIR", "N", "DIM"))
    parser.add_argument("--cold-runs", type=int, default=COLD_RUNS)
    parser.add_argument("--keep", help="build the local collection here, or reuse the one built there")
    parser.add_argument(
        "--settle", type=float, default=SETTLE_S, help="seconds of quiet before each cold run"
    )
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.child[2])))
        return {}
    if args.build:
        build(args.build[0], int(args.build[1]), int(args.build[2]))
        return {}

    result = header("s3", argv, n=args.n, dim=args.dim, queries=QUERIES)
    tmp = Path(tempfile.mkdtemp(prefix="lakevec-s3-"))
    try:
        with moto_s3() as (env, fs):
            local = Path(args.keep) if args.keep else tmp / "local"
            if not local.exists():
                # built in a process of its own, so nothing the build leaves in this one
                # (gigabytes of memory, threads) sits beside the timed runs
                subprocess.run(
                    [sys.executable, __file__, "--build", str(local), str(args.n), str(args.dim)],
                    check=True,
                    env=env,
                )
            start = time.perf_counter()
            upload(fs, local, f"{BUCKET}/root")
            result["upload_s"] = round(time.perf_counter() - start, 2)
            result["collection_mb"] = round(dir_bytes(local) / 1e6, 1)

            # moto serves an object's first GET after its upload slower than later ones (measured: a
            # whole cold open 2.2 s on the first read, 1.55 s after); real S3 has no such state, so the
            # server's copies are read once here, through another client, before anything is timed
            start = time.perf_counter()
            for file in (f for f in local.rglob("*") if f.is_file()):
                fs.cat_file(f"{BUCKET}/root/{file.relative_to(local).as_posix()}")
            result["server_warm_read_s"] = round(time.perf_counter() - start, 2)
            os.sync()  # no cold run pays for the write-back of the upload or of the build
            result["local"] = run_child(str(local), args.dim, str(tmp / "unused-cache"), env)
            # cold runs repeat with a new, empty cache each time: the figure is noisy on a shared VM
            colds = []
            for i in range(args.cold_runs):
                os.sync()
                time.sleep(args.settle)
                colds.append(run_child(f"s3://{BUCKET}/root", args.dim, str(tmp / f"cache{i}"), env))
            result["s3_cold_runs_s"] = [c["cold_open_first_query_s"] for c in colds]
            result["s3_cold"] = min(colds, key=lambda c: c["cold_open_first_query_s"])
            result["s3_cold_median_s"] = float(np.median(result["s3_cold_runs_s"]))
            shutil.copytree(tmp / f"cache{args.cold_runs - 1}", tmp / "cache")
            # a second process with the cache filled by the first: cold process, warm cache
            result["s3_cached"] = run_child(f"s3://{BUCKET}/root", args.dim, str(tmp / "cache"), env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    local, cold, cached = result["local"], result["s3_cold"], result["s3_cached"]
    ratio = cold["warm_p50_ms"] / local["warm_p50_ms"]
    result["warm_ratio_s3_to_local"] = round(ratio, 2)
    lines = [
        *heading(f"S3 (moto on 127.0.0.1) vs local disk, {args.n:,} x {args.dim}", result),
        "| root | open + first query s | requests | MB fetched | warm p50 ms | warm p99 ms | requests/query | bytes/query |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in (("local disk", local), ("S3, empty cache (best)", cold), ("S3, cache filled", cached)):
        lines.append(
            f"| {name} | {r['cold_open_first_query_s']} | {r['cold_requests']} | {r['cold_mb']} "
            f"| {r['warm_p50_ms']} | {r['warm_p99_ms']} | {r['warm_requests_per_query']} "
            f"| {r['warm_bytes_per_query']} |"
        )
    lines += [
        "",
        f"Warm S3 / local p50 = {ratio:.2f}x. Cold open + first query over {args.cold_runs} runs, each "
        f"with an empty cache: {result['s3_cold_runs_s']} s (median {result['s3_cold_median_s']:.2f} s). "
        f"Collection: {result['collection_mb']} MB on disk "
        f"(uploaded in {result['upload_s']} s). Requests on local disk are not counted (0). "
        "Open + first query includes importing lakevec in the fresh process.",
    ]
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
