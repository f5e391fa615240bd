"""`make demo`: a real news corpus, Chroma's default embedder (offline), filtered semantic search.

3,824 English news articles (Dec 2016 - Mar 2017) are embedded with all-MiniLM-L6-v2 into a
persistent collection under ``./lakevec_data``. A second run finds the collection and skips
straight to the queries. The collection is plain Parquet: the last lines show how to read it
with DuckDB or Polars without lakevec.
"""

from __future__ import annotations

import os
import sys
import time

import polars as pl
import pyarrow as pa
from tqdm import tqdm

import lakevec
from lakevec import K, Knn, Rrf, Search
from lakevec.datasets import news_articles

ROOT = os.environ.get("LAKEVEC_DEMO_ROOT", "./lakevec_data")
NAME = "news"
CHUNK = 256

QUERIES = [
    ("Vaccines and the spread of disease", {}, None),
    ("Central banks and interest rates", {"source": {"$in": ["bbc.co.uk", "dw.com", "rte.ie"]}}, None),
    (
        "Refugees and migrants crossing the Mediterranean",
        {"$and": [{"date": {"$gte": 20170301}}, {"date": {"$lt": 20170401}}]},
        None,
    ),
    ("Missile launch tests", {}, {"$contains": "Pyongyang"}),
]


def ingest(collection: lakevec.Collection, table: pa.Table) -> None:
    print(f"Embedding and storing {table.num_rows:,} articles (title + lead) with all-MiniLM-L6-v2 ...")
    bar = tqdm(total=table.num_rows, unit="doc", file=sys.stdout, dynamic_ncols=True)
    start = time.perf_counter()
    for offset in range(0, table.num_rows, CHUNK):
        collection.add_table(table.slice(offset, CHUNK))  # documents -> default embedder -> Parquet
        bar.update(min(CHUNK, table.num_rows - offset))
    bar.close()
    took = time.perf_counter() - start
    print(f"Ingested {table.num_rows:,} articles in {took:.1f} s ({table.num_rows / took:.0f} docs/s)")


def print_table(df: pl.DataFrame) -> None:
    with pl.Config(
        tbl_rows=10, fmt_str_lengths=80, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True
    ):
        print(df)


def show(result: lakevec.types.QueryResult, query: str, where: dict, where_document: dict | None) -> None:
    filters = ", ".join(f"{k}={v}" for k, v in (("where", where), ("where_document", where_document)) if v)
    print(f"\nQuery: {query!r}" + (f"   [{filters}]" if filters else ""))
    df = result.to_polars()
    if df.is_empty():
        print("  (no matches)")
        return
    df = df.select(
        "rank",
        pl.col("distance").round(3),
        "date",
        "source",
        pl.col("title").str.slice(0, 72),
    )
    print_table(df)


def hybrid(collection: lakevec.Collection, text: str, where: dict) -> None:
    """One hybrid query: vector and BM25 rankings fused by reciprocal rank fusion."""
    rrf = Rrf(
        [
            Knn(query=text, limit=50, return_rank=True, default=1000),
            Knn(query=text, key=K.DOCUMENT, limit=50, return_rank=True, default=1000),
        ]
    )
    result = collection.search(
        Search(where=where).rank(rrf).limit(5).select(K.SCORE, "date", "source", "title")
    )
    print(f"\nHybrid search (vectors + BM25, RRF): {text!r}   [where={where}]")
    rows = result.rows()[0]
    df = pl.DataFrame(
        {
            "rank": list(range(len(rows))),  # 0 first, as the query tables above
            "rrf": [round(-r["score"], 4) for r in rows],
            "date": [r["metadata"].get("date") for r in rows],
            "source": [r["metadata"].get("source") for r in rows],
            "title": [str(r["metadata"].get("title", ""))[:72] for r in rows],
        }
    )
    print_table(df)


def main() -> None:
    start = time.perf_counter()
    limit = int(os.environ["LAKEVEC_DEMO_LIMIT"]) if os.environ.get("LAKEVEC_DEMO_LIMIT") else None
    client = lakevec.PersistentClient(ROOT)
    collection = client.get_or_create_collection(NAME, configuration={"hnsw": {"space": "cosine"}})
    articles = news_articles(limit=limit).drop_columns(["text", "url"])
    if collection.count() >= articles.num_rows:
        print(
            f"Found the '{NAME}' collection in {ROOT} with {collection.count():,} articles: skipping ingest."
        )
    else:
        if collection.count():
            client.delete_collection(NAME)  # an interrupted earlier run: start clean
            collection = client.create_collection(NAME, configuration={"hnsw": {"space": "cosine"}})
        ingest(collection, articles)

    for query, where, where_document in QUERIES:
        result = collection.query(
            query_texts=[query], n_results=5, where=where or None, where_document=where_document
        )
        show(result, query, where, where_document)

    hybrid(collection, "North Korea missile launch", {"date": {"$gte": 20170101}})

    print("\nDuckDB SQL over the collection (client.sql):")
    summary = client.sql(
        f"""SELECT source, count(*) AS articles, min(date) AS first, max(date) AS last,
                  round(avg(length(document))) AS avg_chars
           FROM {NAME} GROUP BY source ORDER BY articles DESC"""
    )
    with pl.Config(tbl_rows=12, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(summary.pl())

    path = os.path.abspath(ROOT)
    print(f"\nThe collection is Parquet under {path}. Read it without lakevec:")
    files = f"{path}/collections/*/data/*.parquet"
    print(
        '  python -c "import duckdb; print(duckdb.sql('
        f'\\"SELECT id, metadata.source, document FROM read_parquet(\'{files}\', union_by_name=true) LIMIT 5\\"))"'
    )
    print(f"  python -c \"import polars as pl; print(pl.scan_parquet('{files}').head().collect())\"")
    print(
        "  (raw files include rows deleted or replaced later; Collection.duckdb() / .scan() give live rows)"
    )
    print(f"\nDemo finished in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
