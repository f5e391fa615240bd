"""How small the index's copy of the vectors can get: int8 rows, int8 rows of the vectors
projected on their principal axes (``i8p``, lakevec's choice of axes: lake/quantize.py), and
sign bits (usearch ``b1`` under Hamming distance, each row's bits taken after subtracting the
mean row), one HNSW graph each (connectivity 16, ef_construction 100, rows
added in cluster order as lakevec's folds add them), with the float32 re-rank of a pool of
candidates. The index's size decides the collection's disk beside its float32 fragments.

    python -m benchmarks codes                                   # clustered-1m
    python -m benchmarks codes --dataset clustered-10k --out /tmp/x   # a smoke run
    python -m benchmarks codes --dataset text-50000 --codes i8,i8p    # real embeddings

Recall@10 is after the float32 re-rank of the pool; QPS is single queries on one thread, the
graph search and the re-rank (rows gathered from memory) together, after a warm pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import header, heading, write  # noqa: E402
from benchmarks.harness.datasets import CACHE, K, load  # noqa: E402

POOLS = {"i8": (80,), "i8p": (80, 160), "b1": (80, 160, 320, 640)}
EF = 100


def codes(kind: str, vectors: np.ndarray, mean: np.ndarray, scale: float, projection: Any) -> np.ndarray:
    from lakevec.lake.quantize import PROJECTED, quantized

    if kind == "b1":
        return np.packbits((vectors - mean) > 0, axis=1)
    if kind == "i8p":
        return quantized("l2", vectors, scale, PROJECTED, projection)
    return vectors * scale  # usearch rounds to int8; lakevec's own rounding is the same up to ±1


def build(kind: str, rows: np.ndarray, order: np.ndarray, dim: int) -> tuple[Any, float]:
    from usearch.index import Index

    index = Index(
        ndim=dim,
        metric="hamming" if kind == "b1" else "l2sq",
        dtype="i8" if kind == "i8p" else kind,
        connectivity=16,
        expansion_add=100,
        expansion_search=EF,
    )
    start = time.perf_counter()
    for a in range(0, len(order), 16_384):
        index.add(order[a : a + 16_384], rows[order[a : a + 16_384]], threads=0)
    return index, time.perf_counter() - start


def measure(index: Any, ds, probes: np.ndarray, pool: int) -> tuple[float, float]:
    def search(q: int) -> np.ndarray:
        keys = index.search(probes[q], max(pool, K), threads=1).keys.astype(np.int64)
        d = ((ds.vectors[keys] - ds.queries[q]) ** 2).sum(1)
        return keys[np.argsort(d)[:K]]

    for q in range(len(probes)):  # warm
        search(q)
    start = time.perf_counter()
    found = [search(q) for q in range(len(probes))]
    qps = len(probes) / (time.perf_counter() - start)
    truth = ds.truth["unfiltered"]
    recall = float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)]))
    return recall, qps


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks codes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="clustered-1m")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--codes", default="i8,i8p,b1", help="comma-separated: i8, i8p, b1")
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    # the dataset first: a text set embeds with onnxruntime, which crashes on import in a
    # process that imported usearch before pyarrow (onnxruntime 1.32, usearch 2.26)
    ds = load(args.dataset, queries=args.queries, cache=Path(args.cache))
    from lakevec.lake.quantize import choose_projection, index_scale
    from lakevec.write.index import SAMPLE_ROWS, insertion_order

    raw_mb = ds.vectors.nbytes / 1e6
    mean = ds.vectors.mean(axis=0)
    order = insertion_order(ds.vectors)
    sample = ds.vectors[:: max(1, ds.n // SAMPLE_ROWS)]
    result = header("codes", argv, dataset=args.dataset, rows=ds.n, raw_mb=raw_mb)
    result["codes"] = []
    for kind in args.codes.split(","):
        projection = choose_projection("l2", sample) if kind == "i8p" else None
        if kind == "i8p" and projection is None:
            print("i8p: no axes hold the variance; skipped", flush=True)
            continue
        scale = 1.0 / float(np.abs(ds.vectors).max())
        if projection is not None:
            scale = index_scale("l2", projection.apply(sample))
        rows = codes(kind, ds.vectors, mean, scale, projection)
        index, seconds = build(kind, rows, order, rows.shape[1] * (8 if kind == "b1" else 1))
        del rows
        mb = len(index.save()) / 1e6
        probes = codes(kind, ds.queries, mean, scale, projection)
        for pool in POOLS[kind]:
            recall, qps = measure(index, ds, probes, pool)
            result["codes"].append(
                {
                    "code": kind,
                    "axes": projection.dims if projection is not None else ds.vectors.shape[1],
                    "pool": pool,
                    "build_s": seconds,
                    "index_mb": mb,
                    "recall": recall,
                    "qps": qps,
                }
            )
            print(result["codes"][-1], flush=True)
        del index
    lines = heading(f"Index codes, {args.dataset}", result)
    lines += [
        f"Raw float32 vectors: {raw_mb:,.0f} MB. Fragments hold them at ~1.01x (ids and metadata "
        "included); the index adds the ratio below.",
        "",
        "| code | axes | re-rank pool | build s | index MB | index / raw | recall@10 (ef 100) | QPS (one thread) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in result["codes"]:
        lines.append(
            f"| {c['code']} | {c['axes']} | {c['pool']} | {c['build_s']:.0f} | {c['index_mb']:,.0f} | "
            f"{c['index_mb'] / raw_mb:.3f} | {c['recall']:.3f} | {c['qps']:,.0f} |"
        )
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
