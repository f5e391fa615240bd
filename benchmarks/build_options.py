"""Ways to build the HNSW index of a large collection faster, measured on the index alone (raw
usearch, int8 as lakevec builds it, vectors scaled as lakevec scales them): one graph at
ef_construction 100 (lakevec's default, Chroma's) with its rows added in row order or cluster by
cluster (``insertion_order``, what lakevec's indexer does), one graph at ef_construction 48 or
64, two or four tiers searched as one usearch ``Indexes`` (what parallel tier builds give), and
one graph of fewer neighbours per node (connectivity 12 or 8 instead of 16).

    python -m benchmarks build_options                          # clustered-1m, every option
    python -m benchmarks build_options --options 3,4            # options 3 and 4 only
    python -m benchmarks build_options --dataset clustered-10k --out /tmp/x   # a smoke run

Recall@10 is after a float32 re-rank of the 80 candidates each search returns (lakevec's int8
re-rank pool); QPS is single queries on one thread, after a warm pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from usearch.index import Index, Indexes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import header, heading, write  # noqa: E402
from benchmarks.harness.datasets import CACHE, K, load  # noqa: E402
from lakevec.write.index import insertion_order  # noqa: E402

POOL = 80
OPTIONS = (  # (label, ef_construction, tiers, connectivity, in cluster order)
    ("one graph, ef_construction 100, row order", 100, 1, 16, False),
    ("one graph, ef_construction 48", 48, 1, 16, False),
    ("one graph, ef_construction 64", 64, 1, 16, False),
    ("2 tiers, ef_construction 100", 100, 2, 16, False),
    ("4 tiers, ef_construction 100", 100, 4, 16, False),
    ("one graph, connectivity 12, ef_construction 100", 100, 1, 12, False),
    ("one graph, connectivity 8, ef_construction 100", 100, 1, 8, False),
    ("one graph, ef_construction 100, in cluster order (lakevec's)", 100, 1, 16, True),
)


def build(
    vectors: np.ndarray, first: int, last: int, efc: int, m: int = 16, ordered: bool = False
) -> tuple[Index, float]:
    index = Index(
        ndim=vectors.shape[1],
        metric="l2sq",
        dtype="i8",
        connectivity=m,
        expansion_add=efc,
        expansion_search=100,
    )
    start = time.perf_counter()  # the order is part of the build
    keys = first + (insertion_order(vectors[first:last]) if ordered else np.arange(last - first))
    for a in range(0, len(keys), 16_384):
        index.add(keys[a : a + 16_384], vectors[keys[a : a + 16_384]], threads=0)
    return index, time.perf_counter() - start


def measure(search, ds, probes: np.ndarray) -> tuple[float, float]:
    for w in probes:  # warm
        search(w)
    start = time.perf_counter()
    found = [search(w) for w in probes]
    qps = len(probes) / (time.perf_counter() - start)
    recall = []
    for keys, v, truth in zip(found, ds.queries, ds.truth["unfiltered"]):
        d = ((ds.vectors[keys] - v) ** 2).sum(1)
        best = keys[np.argsort(d)[:K]]
        recall.append(len(set(best.tolist()) & set(truth.tolist())) / K)
    return float(np.mean(recall)), qps


def main(argv: list[str] | None = None) -> dict:
    from lakevec.lake.quantize import INT8, index_scale, quantized

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks build_options", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="clustered-1m")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--options", help="comma-separated option numbers to run (1-based; default all)")
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    ds = load(args.dataset, queries=args.queries, cache=Path(args.cache))
    scale = index_scale("l2", ds.vectors[:100_000])
    rows, probes = quantized("l2", ds.vectors, scale, INT8), quantized("l2", ds.queries, scale, INT8)
    result = header("build_options", argv, dataset=args.dataset, rows=ds.n)
    result["options"] = []
    chosen = [OPTIONS[int(i) - 1] for i in args.options.split(",")] if args.options else OPTIONS
    for label, efc, tiers, m, ordered in chosen:
        size = -(-ds.n // tiers)
        parts, seconds = [], 0.0
        for t in range(tiers):
            index, s = build(rows, t * size, min(ds.n, (t + 1) * size), efc, m, ordered)
            parts.append(index)
            seconds += s
        if tiers == 1:
            one = parts[0]

            def search(w, one=one):
                return one.search(w, POOL, threads=1).keys
        else:
            together = Indexes(indexes=parts)

            def search(w, together=together):
                return together.search(w, POOL, threads=1).keys

        recall, qps = measure(search, ds, probes)
        mb = sum(len(p.save()) for p in parts) / 1e6  # the saved file(s): what the disk holds
        result["options"].append(
            {"option": label, "build_s": seconds, "recall": recall, "qps": qps, "mb": mb}
        )
        print(
            f"{label}: build {seconds:.0f} s, recall@10 {recall:.3f}, {qps:,.0f} QPS, {mb:,.0f} MB",
            flush=True,
        )
        del parts, search
    lines = heading(f"Index build options, {args.dataset}", result)
    lines += [
        "| option | build s | recall@10 (ef 100) | QPS (raw usearch) | index MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for o in result["options"]:
        lines.append(
            f"| {o['option']} | {o['build_s']:.0f} | {o['recall']:.3f} | {o['qps']:,.0f} | {o['mb']:,.0f} |"
        )
    write(result, args.out, "\n".join(lines) + "\n")
    return result


if __name__ == "__main__":
    main()
