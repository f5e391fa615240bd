"""Filtered search at every selectivity, on real and synthetic embeddings: lakevec against exact
search over the same rows (numpy, the matching rows gathered beforehand, as a user would keep
them), with recall against that exact answer.

    python -m benchmarks filtered                                  # text-50000, clustered-1m
    python -m benchmarks filtered --datasets text-10k --queries 50 --out /tmp/x   # a smoke run

Two kinds of filter per selectivity ``s`` %:

* ``uniform``: ``sel < s`` where ``sel`` is a random number per row (unrelated to the vectors);
* ``correlated``: ``near < s`` where ``near`` is the row's percentile along one fixed random
  direction, so the matching rows sit on one side of the space and a query on the other side
  has few of them nearby (the hard case for a graph search that filters its candidates).

``text-*`` is the news corpus's passages embedded with the default model (real embeddings);
``clustered-*`` is the harness's synthetic set. lakevec runs at its defaults (l2, M 16,
ef_construction 100, ef_search 100), single queries one after another, k = 10, after one warm
pass. Writes benchmarks/results/<date>-<machine>-filtered.{json,md}.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402
from benchmarks.harness.datasets import CACHE, K, load  # noqa: E402

SELECTIVITIES = (1, 10, 45, 90)


def near_percentile(x: np.ndarray, seed: int = 5) -> np.ndarray:
    """Each row's percentile (0-99) along a fixed random direction."""
    u = np.random.default_rng(seed).standard_normal(x.shape[1]).astype(np.float32)
    proj = x @ u
    return (np.argsort(np.argsort(proj, kind="stable"), kind="stable") * 100 // len(x)).astype(np.int64)


def workloads(sel: np.ndarray, near: np.ndarray) -> dict[str, tuple[dict | None, np.ndarray | None]]:
    out: dict[str, tuple[dict | None, np.ndarray | None]] = {"unfiltered": (None, None)}
    for s in SELECTIVITIES:
        out[f"uniform {s}%"] = ({"sel": {"$lt": s}}, sel < s)
        out[f"correlated {s}%"] = ({"near": {"$lt": s}}, near < s)
    return out


def exact_top(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Rows of ``x`` nearest each query by squared l2, k per query (-1 pads)."""
    norms = np.einsum("ij,ij->i", x, x)
    out = np.full((len(q), K), -1, dtype=np.int64)
    for i in range(0, len(q), 50):
        d = norms[None, :] - 2 * (q[i : i + 50] @ x.T)
        n = min(K, len(x))
        top = np.argpartition(d, n - 1, axis=1)[:, :n]
        order = np.argsort(np.take_along_axis(d, top, 1), axis=1)
        out[i : i + 50, :n] = np.take_along_axis(top, order, 1)
    return out


def exact_qps(x: np.ndarray, q: np.ndarray) -> float:
    """Single-query brute force over rows already gathered into one array (norms precomputed)."""
    norms = np.einsum("ij,ij->i", x, x)
    n = min(K, len(x))

    def one(v):
        d = norms - 2 * (x @ v)
        top = np.argpartition(d, n - 1)[:n]
        return top[np.argsort(d[top])]

    one(q[0])
    reps = max(10, min(len(q), int(2e9 / max(1, x.size))))  # about 2 s of work at most
    start = time.perf_counter()
    for v in q[:reps]:
        one(v)
    return reps / (time.perf_counter() - start)


def build(ds, near: np.ndarray, path: str):
    import lakevec

    col = lakevec.PersistentClient(path).create_collection("bench", embedding_function=None)
    table = pa.table(
        {
            "id": ds.ids,
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(ds.vectors.reshape(-1)), ds.vectors.shape[1]
            ),
            "sel": ds.sel,
            "near": near,
        }
    )
    start = time.perf_counter()
    col.add_table(table, documents=None)
    ingest = time.perf_counter() - start
    col.wait_for_index()
    return col, ingest, time.perf_counter() - start


def run(name: str, queries: int, keep: str | None, cache: Path) -> dict:
    ds = load(name, queries=queries, cache=cache)
    near = near_percentile(ds.vectors)
    path = keep or tempfile.mkdtemp(prefix="lakevec-filtered-")
    if Path(path).exists() and any(Path(path).iterdir()):
        import lakevec

        col = lakevec.PersistentClient(path).get_collection("bench", embedding_function=None)
        ingest = indexed = None
    else:
        col, ingest, indexed = build(ds, near, path)
    rows = []
    try:
        for label, (where, mask) in workloads(ds.sel, near).items():
            chosen = np.arange(ds.n) if mask is None else np.flatnonzero(mask)
            x = ds.vectors[chosen]
            truth = chosen[exact_top(x, ds.queries)] if len(chosen) else np.zeros((len(ds.queries), 0), int)

            def ask(v, where=where):
                res = col.query(query_embeddings=v[None], n_results=K, where=where, include=[])
                return [int(i[1:]) for i in res["ids"][0]]

            ask(ds.queries[0])
            for v in ds.queries:  # warm pass
                ask(v)
            start = time.perf_counter()
            got = [ask(v) for v in ds.queries]
            qps = len(ds.queries) / (time.perf_counter() - start)
            recall = [
                len(set(g) & set(t[t >= 0].tolist())) / max(1, min(K, len(chosen)))
                for g, t in zip(got, truth)
            ]
            brute = exact_qps(x, ds.queries) if len(chosen) else float("nan")
            rows.append(
                {
                    "workload": label,
                    "matching": int(len(chosen)),
                    "qps": qps,
                    "recall": float(np.mean(recall)),
                    "min_recall": float(np.min(recall)),
                    "exact_qps": brute,
                    "ratio": qps / brute,
                }
            )
            print(
                f"{name} {label}: {qps:,.0f} QPS recall {np.mean(recall):.3f} exact {brute:,.0f} QPS",
                flush=True,
            )
        disk = dir_bytes(path)
    finally:
        if keep is None:
            shutil.rmtree(path, ignore_errors=True)
    return {
        "dataset": name,
        "rows": ds.n,
        "ingest_s": ingest,
        "indexed_s": indexed,
        "disk_bytes": disk,
        "results": rows,
    }


def report(result: dict) -> str:
    lines = heading("Filtered search: lakevec vs exact over the matching rows", result)
    for d in result["datasets"]:
        lines += [f"## {d['dataset']} ({d['rows']:,} rows)", ""]
        if d["indexed_s"] is not None:
            lines += [
                f"add_table {d['ingest_s']:.1f} s, fully indexed {d['indexed_s']:.1f} s, "
                f"disk {d['disk_bytes'] / 1e6:,.0f} MB.",
                "",
            ]
        lines += [
            "| workload | matching rows | lakevec QPS | recall@10 | min recall | exact QPS | lakevec / exact |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in d["results"]:
            lines.append(
                f"| {r['workload']} | {r['matching']:,} | {r['qps']:,.0f} | {r['recall']:.3f} | "
                f"{r['min_recall']:.2f} | {r['exact_qps']:,.0f} | {r['ratio']:.2f}x |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks filtered", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--datasets", default="text-50000,clustered-1m")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--keep", help="build each collection under DIR/<dataset> and reuse it on the next run"
    )
    parser.add_argument("--cache", default=str(CACHE), help="where datasets are built and kept")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    result = header("filtered", argv, k=K, queries=args.queries)
    result["datasets"] = [
        run(name, args.queries, None if args.keep is None else str(Path(args.keep, name)), Path(args.cache))
        for name in args.datasets.split(",")
    ]
    write(result, args.out, report(result))
    return result


if __name__ == "__main__":
    main()
