"""Full-text and hybrid search on the news corpus: lakevec's BM25 against bm25s, tantivy and
LanceDB's full-text index, and lakevec's RRF hybrid (BM25 + vectors) against LanceDB's.

    python -m benchmarks hybrid                    # 3,824 articles, 300 queries
    python -m benchmarks hybrid --queries 50 --out /tmp/x   # a smoke run

Documents are the demo's (title + lead), embedded with the default model. Each query is a
passage of the article's body past its lead, so every query has one right answer: its own
article (``hit@10``). ``agree@10`` is the overlap of a system's top 10 with the reference's:
bm25s (Lucene BM25, k1 1.5, b 0.75) for full text, exact vector search and bm25s fused by RRF
(k 60, 50 candidates from each) for hybrid. QPS is single queries, one at a time, after a warm
query. Writes benchmarks/results/<date>-<machine>-hybrid.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import dir_bytes, header, heading, write  # noqa: E402

K, CANDIDATES, RRF_K = 10, 50, 60


def passages(text: list[str], n: int, seed: int = 0) -> tuple[list[int], list[str]]:
    """(article, query) pairs: 12 words of the body from word 70 on (past the indexed lead)."""
    rng = np.random.default_rng(seed)
    rows = [i for i, t in enumerate(text) if len(t.split()) >= 90]
    chosen = sorted(rng.choice(rows, size=min(n, len(rows)), replace=False).tolist())
    return chosen, [" ".join(text[i].split()[70:82]) for i in chosen]


def timed(fn, queries: list) -> tuple[float, list[list[int]]]:
    fn(queries[0])  # warm
    start = time.perf_counter()
    out = [fn(q) for q in queries]
    return len(queries) / (time.perf_counter() - start), out


def scores(name: str, build_s: float, nbytes: int | None, qps: float, got, truth, reference) -> dict:
    hit = float(np.mean([t in g[:K] for g, t in zip(got, truth)]))
    agree = float(
        np.mean([len(set(g[:K]) & set(r[:K])) / max(1, len(r[:K])) for g, r in zip(got, reference)])
    )
    return {
        "system": name,
        "build_s": build_s,
        "index_bytes": nbytes,
        "qps": qps,
        "hit@10": hit,
        "agree@10": agree,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    os.environ.setdefault("LANCE_LOG", "error")  # lance warns per query about score columns
    import bm25s
    import lancedb
    import tantivy
    from lancedb.rerankers import RRFReranker

    import lakevec
    from lakevec import K as Key
    from lakevec import Knn, Rrf, Search
    from lakevec.datasets import news_articles
    from lakevec.lake.text import query_terms
    from lakevec.utils.embedding_functions import DefaultEmbeddingFunction

    result = header("hybrid", argv, queries=args.queries)
    table = news_articles()
    docs = table.column("document").to_pylist()
    ids = table.column("id").to_pylist()
    truth, queries = passages(table.column("text").to_pylist(), args.queries)
    ef = DefaultEmbeddingFunction()
    start = time.perf_counter()
    vectors = np.asarray(ef(docs), dtype=np.float32)
    result["embed_s"] = time.perf_counter() - start
    qvectors = np.asarray(ef(queries), dtype=np.float32)
    result["documents"] = len(docs)
    tmp = Path(tempfile.mkdtemp(prefix="lakevec-hybrid-"))
    rows: list[dict] = []
    try:
        # -- the references: bm25s, and exact vectors + bm25s fused --------------------------
        start = time.perf_counter()
        tokens = bm25s.tokenize(docs, stopwords=None, show_progress=False, return_ids=False)
        retriever = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
        retriever.index(tokens, show_progress=False)
        bm25s_build = time.perf_counter() - start
        retriever.save(str(tmp / "bm25s"))

        def bm25s_top(q: str, k: int = K) -> list[int]:
            terms = [t for t in query_terms(q) if t in retriever.vocab_dict]
            if not terms:
                return []
            s = retriever.get_scores(terms)
            top = np.argpartition(-s, k)[:k]
            return [int(i) for i in top[np.lexsort((top, -s[top]))] if s[i] > 0]

        qps, bm25s_hits = timed(bm25s_top, queries)
        reference = [bm25s_top(q) for q in queries]
        rows.append(scores("bm25s", bm25s_build, dir_bytes(tmp / "bm25s"), qps, bm25s_hits, truth, reference))

        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        def exact_hybrid(i: int) -> list[int]:
            d = 1 - unit @ (qvectors[i] / np.linalg.norm(qvectors[i]))
            vec = np.argsort(d, kind="stable")[:CANDIDATES]
            text = bm25s_top(queries[i], CANDIDATES)
            fused: dict[int, float] = {}
            for ranking in (vec.tolist(), text):
                for rank, r in enumerate(ranking):
                    fused[r] = fused.get(r, 0.0) + 1 / (RRF_K + rank)
            return sorted(fused, key=lambda r: (-fused[r], r))[:K]

        hybrid_reference = [exact_hybrid(i) for i in range(len(queries))]

        # -- lakevec -----------------------------------------------------------------------
        col = lakevec.PersistentClient(str(tmp / "lakevec")).create_collection(
            "news", embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        col.add(ids=ids, embeddings=vectors, documents=docs)
        start = time.perf_counter()
        col.wait_for_index()  # the HNSW index and the postings files
        build = time.perf_counter() - start
        engine = col._engine
        text_files = [e.text for e in engine.snapshot().manifest.fragments if e.text]
        text_bytes = sum(engine.storage.fs.size(engine.cache.path(p)) for p in text_files)
        position = {id_: i for i, id_ in enumerate(ids)}
        cold = lakevec.PersistentClient(str(tmp / "lakevec")).get_collection("news")
        start = time.perf_counter()
        cold.search(Search().rank(Knn(query=queries[0], key=Key.DOCUMENT, limit=K)))
        result["lakevec_cold_first_bm25_s"] = time.perf_counter() - start

        def lakevec_bm25(q: str) -> list[int]:
            r = col.search(Search().rank(Knn(query=q, key=Key.DOCUMENT, limit=K)))
            return [position[i] for i in r["ids"][0]]

        qps, got = timed(lakevec_bm25, queries)
        rows.append(scores("lakevec BM25", build, text_bytes, qps, got, truth, reference))

        # Chroma's sparse route: its BM25 embedding function through a schema (stemmed, no
        # stopwords), scored 1 - q.d with the query weighted by idf, as Chroma Cloud does
        from chromadb import K as ChromaK
        from chromadb import Schema, SparseVectorIndexConfig
        from chromadb.utils.embedding_functions import ChromaBm25EmbeddingFunction

        config = SparseVectorIndexConfig(
            source_key=ChromaK.DOCUMENT, embedding_function=ChromaBm25EmbeddingFunction(), bm25=True
        )
        sparse_col = lakevec.PersistentClient(str(tmp / "lakevec-sparse")).create_collection(
            "news", schema=Schema().create_index(config, key="bm25"), embedding_function=None
        )
        start = time.perf_counter()
        sparse_col.add(ids=ids, embeddings=vectors, documents=docs)  # the function runs per document
        sparse_build = time.perf_counter() - start

        def lakevec_sparse(q: str) -> list[int]:
            r = sparse_col.search(Search().rank(Knn(query=q, key="bm25", limit=K)))
            return [position[i] for i in r["ids"][0]]

        qps, got = timed(lakevec_sparse, queries)
        rows.append(scores("lakevec sparse (chroma_bm25)", sparse_build, None, qps, got, truth, reference))

        def lakevec_hybrid(i: int) -> list[int]:
            rank = Rrf(
                [
                    Knn(query=qvectors[i], limit=CANDIDATES, return_rank=True, default=1e6),
                    Knn(query=queries[i], key=Key.DOCUMENT, limit=CANDIDATES, return_rank=True, default=1e6),
                ],
                k=RRF_K,
            )
            r = col.search(Search().rank(rank).limit(K))
            return [position[x] for x in r["ids"][0]]

        order = list(range(len(queries)))
        qps, got = timed(lakevec_hybrid, order)
        hybrid_rows = [scores("lakevec hybrid (RRF)", 0.0, None, qps, got, truth, hybrid_reference)]

        def lakevec_vector(i: int) -> list[int]:
            r = col.query(query_embeddings=qvectors[i], n_results=K, include=[])
            return [position[x] for x in r["ids"][0]]

        qps, got = timed(lakevec_vector, order)
        hybrid_rows.append(scores("lakevec vector only", 0.0, None, qps, got, truth, hybrid_reference))

        # -- tantivy -----------------------------------------------------------------------
        start = time.perf_counter()
        builder = tantivy.SchemaBuilder()
        builder.add_text_field("body", stored=False)
        builder.add_unsigned_field("row", stored=True, indexed=False)
        (tmp / "tantivy").mkdir()
        index = tantivy.Index(builder.build(), path=str(tmp / "tantivy"))
        writer = index.writer()
        for i, d in enumerate(docs):
            writer.add_document(tantivy.Document(body=d or "", row=i))
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        build = time.perf_counter() - start
        searcher = index.searcher()

        def tantivy_top(q: str) -> list[int]:
            terms = query_terms(q)
            if not terms:
                return []
            query = index.parse_query(" ".join(terms), ["body"])
            return [searcher.doc(addr)["row"][0] for _, addr in searcher.search(query, K).hits]

        qps, got = timed(tantivy_top, queries)
        rows.append(scores("tantivy", build, dir_bytes(tmp / "tantivy"), qps, got, truth, reference))

        # -- LanceDB -----------------------------------------------------------------------
        db = lancedb.connect(str(tmp / "lancedb"))
        data = pa.table({"row": np.arange(len(docs)), "document": docs, "vector": list(vectors)})
        data = data.cast(
            pa.schema(
                [
                    ("row", pa.int64()),
                    ("document", pa.string()),
                    ("vector", pa.list_(pa.float32(), vectors.shape[1])),
                ]
            )
        )
        tbl = db.create_table("news", data=data)
        before = dir_bytes(tmp / "lancedb")
        start = time.perf_counter()
        tbl.create_fts_index("document")
        build = time.perf_counter() - start
        fts_bytes = dir_bytes(tmp / "lancedb") - before

        def lance_fts(q: str) -> list[int]:
            terms = query_terms(q)
            if not terms:
                return []
            return (
                tbl.search(" ".join(terms), query_type="fts")
                .limit(K)
                .select(["row"])
                .to_arrow()["row"]
                .to_pylist()
            )

        qps, got = timed(lance_fts, queries)
        rows.append(scores("LanceDB FTS", build, fts_bytes, qps, got, truth, reference))
        reranker = RRFReranker(K=RRF_K)

        def lance_hybrid(i: int) -> list[int]:
            terms = " ".join(query_terms(queries[i])) or "none"
            hits = (
                tbl.search(query_type="hybrid", vector_column_name="vector")
                .vector(qvectors[i])
                .text(terms)
                .distance_type("cosine")
                .rerank(reranker)
                .limit(CANDIDATES)
                .select(["row"])
                .to_arrow()
            )
            return hits["row"].to_pylist()[:K]

        qps, got = timed(lance_hybrid, order)
        hybrid_rows.append(scores("LanceDB hybrid (RRF)", 0.0, None, qps, got, truth, hybrid_reference))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result["full_text"] = rows
    result["hybrid"] = hybrid_rows
    ours = {r["system"]: r for r in rows + hybrid_rows}
    result["ratios"] = {
        "bm25_qps_vs_bm25s": ours["lakevec BM25"]["qps"] / ours["bm25s"]["qps"],
        "bm25_qps_vs_tantivy": ours["lakevec BM25"]["qps"] / ours["tantivy"]["qps"],
        "bm25_qps_vs_lancedb": ours["lakevec BM25"]["qps"] / ours["LanceDB FTS"]["qps"],
        "hybrid_qps_vs_lancedb": ours["lakevec hybrid (RRF)"]["qps"] / ours["LanceDB hybrid (RRF)"]["qps"],
    }
    lines = heading(
        f"Full-text and hybrid search, news corpus ({len(docs):,} articles, {len(queries)} queries)", result
    )
    lines += [
        "Full text (reference for agree@10: bm25s):",
        "",
        "| system | build s | index MB | QPS | hit@10 | agree@10 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        mb = "" if r["index_bytes"] is None else f"{r['index_bytes'] / 1e6:.2f}"
        lines.append(
            f"| {r['system']} | {r['build_s']:.2f} | {mb} | {r['qps']:,.0f} | {r['hit@10']:.3f} | {r['agree@10']:.3f} |"
        )
    lines += [
        "",
        f"lakevec BM25's build is `wait_for_index()` (HNSW and postings); cold open + first BM25 query "
        f"{result['lakevec_cold_first_bm25_s']:.2f} s. lakevec sparse is Chroma's sparse route: "
        "`add()` runs chromadb's `chroma_bm25` function per document (its build s, which includes "
        "writing the rows), and `Knn` over that key scores the stored vectors exactly; its tokens "
        "are stemmed, so it agrees less with bm25s.",
        "",
        "Hybrid (reference for agree@10: exact vectors + bm25s, RRF k 60 over 50 candidates each):",
        "",
        "| system | QPS | hit@10 | agree@10 |",
        "|---|---:|---:|---:|",
    ]
    for r in hybrid_rows:
        lines.append(f"| {r['system']} | {r['qps']:,.0f} | {r['hit@10']:.3f} | {r['agree@10']:.3f} |")
    lines += [
        "",
        "Ratios (lakevec / peer): " + ", ".join(f"{k} {v:.2f}" for k, v in result["ratios"].items()),
        "",
    ]
    write(result, args.out, "\n".join(lines))
    return result


if __name__ == "__main__":
    main()
