"""Benchmark data: seeded synthetic embeddings and a real embedded text corpus, with metadata
for filters and exact ground truth, all computed once and cached as Parquet / npz."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DIM = 384
K = 10
#: filtered workloads: ``sel`` is uniform in [0, 100), so ``sel < s`` keeps s % of the rows
SELECTIVITIES = (1, 10, 50)
CACHE = Path(os.environ.get("LAKEVEC_BENCH_CACHE") or Path(__file__).resolve().parent.parent / ".cache")
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


@dataclass
class Dataset:
    name: str
    vectors: np.ndarray  # (n, DIM) float32
    documents: list[str]
    sel: np.ndarray  # int64 in [0, 100)
    cat: np.ndarray  # "c0" .. "c9"
    queries: np.ndarray  # (nq, DIM) float32
    truth: dict[str, np.ndarray]  # workload -> (nq, K) row numbers

    @property
    def n(self) -> int:
        return len(self.vectors)

    @property
    def ids(self) -> list[str]:
        return [f"r{i}" for i in range(self.n)]


def synthetic(kind: str, n: int, seed: int, dim: int = DIM) -> np.ndarray:
    """``clustered``: 64 clusters in a 32-d latent space projected to ``dim`` plus noise, unit
    length (text embeddings have a low intrinsic dimension); ``uniform``: isotropic Gaussian."""
    out = np.empty((n, dim), dtype=np.float32)
    for s, chunk in synthetic_chunks(kind, n, seed, dim):
        out[s : s + len(chunk)] = chunk
    return out


def synthetic_chunks(
    kind: str, n: int, seed: int, dim: int = DIM, size: int = 100_000
) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`synthetic`'s rows as (start, rows) chunks of ``size``, for sets that do not fit
    in memory (chunks of the default size are the same rows :func:`synthetic` returns)."""
    rng = np.random.default_rng(seed)
    project = np.random.default_rng(99).standard_normal((32, dim)) / np.sqrt(32)
    centers = np.random.default_rng(98).standard_normal((64, 32)) * 1.5
    for s in range(0, n, size):  # chunks keep float64 temporaries small
        m = min(size, n - s)
        if kind == "uniform":
            x = rng.standard_normal((m, dim))
        else:
            x = (centers[rng.integers(0, 64, m)] + rng.standard_normal((m, 32))) @ project
            x += 0.05 * rng.standard_normal((m, dim))
        yield s, (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def text_corpus(limit: int) -> tuple[list[str], list[str]]:
    """Passages of 40 words from the news corpus that installs with the test extra, and the
    articles' titles as queries (other text than the passages, as a user's questions are)."""
    from lakevec.datasets import news_articles

    table = news_articles()
    passages: list[str] = []
    for text in table.column("text").to_pylist():  # one-time data preparation, not a benchmark
        words = re.split(r"\s+", text or "")
        passages += [" ".join(words[i : i + 40]) for i in range(0, len(words) - 20, 40)]
        if len(passages) >= limit:
            break
    return passages[:limit], table.column("title").to_pylist()


def embed(texts: list[str]) -> np.ndarray:
    from lakevec.utils.embedding_functions import DefaultEmbeddingFunction

    fn = DefaultEmbeddingFunction()
    return np.concatenate([fn.embed(texts[s : s + 512]) for s in range(0, len(texts), 512)]).astype(
        np.float32
    )


def ground_truth(x: np.ndarray, q: np.ndarray, sel: np.ndarray) -> dict[str, np.ndarray]:
    """Exact top-K by squared l2 for every workload, in row chunks (1M x 200 stays small)."""
    masks = {"unfiltered": None} | {f"filter {s}%": sel < s for s in SELECTIVITIES}
    best = {w: (np.full((len(q), 0), np.inf, np.float32), np.zeros((len(q), 0), np.int64)) for w in masks}
    for s in range(0, len(x), 100_000):
        chunk = x[s : s + 100_000]
        d = (chunk**2).sum(1)[None, :] - 2 * (q @ chunk.T)
        for w, mask in masks.items():
            dw = d if mask is None else np.where(mask[s : s + len(chunk)][None, :], d, np.inf)
            top = np.argpartition(dw, min(K, dw.shape[1] - 1), axis=1)[:, :K]
            dist = np.concatenate([best[w][0], np.take_along_axis(dw, top, 1)], axis=1)
            rows = np.concatenate([best[w][1], top + s], axis=1)
            order = np.argsort(dist, axis=1, kind="stable")[:, :K]
            best[w] = (np.take_along_axis(dist, order, 1), np.take_along_axis(rows, order, 1))
    # fewer than K rows pass a filter on tiny data: -1 marks the missing places
    return {w: np.where(np.isfinite(dist), rows, -1) for w, (dist, rows) in best.items()}


def load(name: str, queries: int = 200, cache: Path = CACHE) -> Dataset:
    """``clustered-100k``, ``uniform-10k``, ``text-10k`` …, built on first use and cached."""
    kind, size = name.split("-")
    n = SIZES.get(size) or int(size)
    cache.mkdir(parents=True, exist_ok=True)
    data_path, truth_path = cache / f"{name}.parquet", cache / f"{name}-q{queries}-truth.npz"
    if not data_path.exists():
        rng = np.random.default_rng(7)
        if kind == "text":
            docs, titles = text_corpus(n)
            x = embed(docs)
            q = embed([titles[i] for i in rng.choice(len(titles), max(queries, 1000), replace=False)])
        else:
            x = synthetic(kind, n, seed=0)
            q = synthetic(kind, max(queries, 1000), seed=1)
            docs = [f"synthetic document {i}" for i in range(n)]
        n = len(x)
        table = pa.table(
            {
                "document": docs,
                "sel": rng.integers(0, 100, n),
                "cat": np.char.add("c", rng.integers(0, 10, n).astype(str)),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), DIM),
            }
        )
        pq.write_table(table, data_path.with_suffix(".tmp"))
        data_path.with_suffix(".tmp").rename(data_path)
        np.save(cache / f"{name}-queries.npy", q)
    table = pq.read_table(data_path)
    x = table.column("embedding").combine_chunks().values.to_numpy().reshape(-1, DIM)
    q = np.load(cache / f"{name}-queries.npy")[:queries]
    sel = table.column("sel").to_numpy()
    if truth_path.exists():
        truth = dict(np.load(truth_path))
    else:
        truth = ground_truth(x, q, sel)
        np.savez(truth_path, **truth)
    return Dataset(
        name=name,
        vectors=x,
        documents=table.column("document").to_pylist(),
        sel=sel,
        cat=table.column("cat").to_numpy(zero_copy_only=False).astype(str),
        queries=q,
        truth=truth,
    )
