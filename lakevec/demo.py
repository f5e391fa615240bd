"""`make demo`: ingest a real corpus offline, filter it, change it, reopen it, read it with DuckDB.

The corpus is the documentation that ships with Python itself: the docstrings of the standard
library's public functions and classes (a few thousand real texts, no download). Until the offline
MiniLM embedder lands, the demo embeds with a small feature-hashing function written here.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import lakevec

MODULES = [
    "json", "csv", "os", "pathlib", "re", "datetime", "collections", "itertools", "functools",
    "statistics", "random", "math", "string", "textwrap", "shutil", "tempfile", "glob", "heapq",
    "bisect", "decimal", "fractions", "hashlib", "base64", "zipfile", "tarfile", "gzip", "sqlite3",
    "urllib.parse", "http.client", "email", "logging", "argparse", "subprocess", "threading",
    "asyncio", "concurrent.futures", "unittest", "doctest", "inspect", "typing", "dataclasses",
    "enum", "uuid", "socket", "ssl", "select", "struct", "array", "copy", "pickle", "pprint",
]  # fmt: skip
DIM = 256
WORD = re.compile(r"[a-z][a-z0-9_]+")


def corpus() -> tuple[list[str], list[str], list[dict]]:
    ids, docs, metas = [], [], []
    warnings.simplefilter("ignore")
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isroutine(obj) or inspect.isclass(obj)):
                continue
            doc = inspect.getdoc(obj)
            if not doc or len(doc) < 40:
                continue
            ids.append(f"{name}.{attr}")
            docs.append(doc.split("\n\n")[0][:1000])
            metas.append(
                {
                    "module": name,
                    "package": name.split(".")[0],
                    "kind": "class" if inspect.isclass(obj) else "function",
                    "chars": len(doc),
                }
            )
    return ids, docs, metas


def hashing_embedder(texts: list[str]) -> np.ndarray:
    """Bag of words hashed into DIM buckets, L2-normalized: crude but deterministic and offline."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in WORD.findall(text.lower()):
            h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
            out[row, h % DIM] += 1.0 if (h >> 63) else -1.0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


def show(title: str, result: dict, n: int = 5) -> None:
    print(f"\n{title}: {len(result['ids'])} rows")
    for i, id_ in enumerate(result["ids"][:n]):
        meta = (result.get("metadatas") or [None] * (i + 1))[i]
        doc = (result.get("documents") or [""] * (i + 1))[i] or ""
        print(f"  {id_:<40} {meta}  {doc[:60]!r}")


def main(path: str = "./lakevec_data/demo") -> None:
    shutil.rmtree(path, ignore_errors=True)
    ids, docs, metas = corpus()
    print(
        f"corpus: {len(ids)} docstrings from {len(MODULES)} standard-library modules (Python {sys.version.split()[0]})"
    )

    client = lakevec.PersistentClient(path)
    col = client.create_collection(
        "stdlib-docs", embedding_function=hashing_embedder, metadata={"source": "stdlib"}
    )
    t0 = time.perf_counter()
    for start in range(0, len(ids), 500):
        end = start + 500
        col.add(ids=ids[start:end], documents=docs[start:end], metadatas=metas[start:end])
    print(f"ingested {col.count()} rows in {time.perf_counter() - t0:.2f} s (embedding included)")

    question = "read and write compressed archive files"
    hits = col.query(query_texts=[question], n_results=5, where={"kind": "function"})
    print(f"\nnearest functions to {question!r}:")
    for id_, dist in zip(hits["ids"][0], hits["distances"][0]):
        print(f"  {dist:6.3f}  {id_}")
    col.wait_for_index()
    again = col.query(query_texts=[question], n_results=5, where={"kind": "function"})
    print(f"after wait_for_index(): {'same' if again['ids'] == hits['ids'] else 'different'} results")

    show("functions of asyncio", col.get(where={"$and": [{"module": "asyncio"}, {"kind": "function"}]}))
    show(
        "long docstrings mentioning 'timeout'",
        col.get(where={"chars": {"$gte": 400}}, where_document={"$contains": "timeout"}),
    )
    show("regex on documents: starts with 'Return'", col.get(where_document={"$regex": "^Return"}, limit=3))

    col.update(ids=["json.dumps"], metadatas=[{"reviewed": True}])
    col.delete(where={"package": "doctest"})
    print(f"\nafter update + delete: {col.count()} rows, manifest version {col._engine.snapshot().version}")

    reopened = lakevec.PersistentClient(path).get_collection(
        "stdlib-docs", embedding_function=hashing_embedder
    )
    show("reopened from disk: json.dumps", reopened.get(ids=["json.dumps"]))

    # the data is plain Parquet: any engine reads it without lakevec
    import duckdb

    data = Path(path).resolve() / "collections" / str(col.id) / "data" / "*.parquet"
    print("\nDuckDB straight on the Parquet files, no lakevec (deleted rows stay in files until compaction):")
    print(
        duckdb.sql(
            f"SELECT metadata.package AS package, count(*) AS docs FROM read_parquet('{data}', union_by_name=true) "
            "GROUP BY ALL ORDER BY docs DESC LIMIT 3"
        )
    )
    print("The live rows through lakevec's SQL view (deletes applied):")
    print(
        client.sql(
            'SELECT package, count(*) AS docs FROM "stdlib-docs" GROUP BY ALL ORDER BY docs DESC LIMIT 3'
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
