"""Copy the collections of a Chroma persistent directory into a lakevec root.

Reads with the ``chromadb`` package (an optional extra), page by page: ids, documents,
metadata, uris and the stored embeddings (nothing is re-embedded), the collection metadata and
the HNSW settings. A collection that uses Chroma's default embedding function gets lakevec's,
which computes the same vectors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lakevec
from lakevec.extras import require
from lakevec.utils.embedding_functions import DefaultEmbeddingFunction

PAGE = 5000
HNSW_KEYS = ("space", "ef_construction", "ef_search", "max_neighbors")


def _hnsw(collection: Any) -> dict[str, Any]:
    config = getattr(collection, "configuration", None) or {}
    hnsw = config.get("hnsw") or {}
    out = {k: hnsw[k] for k in HNSW_KEYS if hnsw.get(k) is not None}
    legacy = collection.metadata or {}
    if "space" not in out and "hnsw:space" in legacy:
        out["space"] = legacy["hnsw:space"]
    return out


def _embedding_function(collection: Any) -> Any:
    config = getattr(collection, "configuration", None) or {}
    ef = config.get("embedding_function")
    name = ef.name() if ef is not None and hasattr(ef, "name") else None
    return DefaultEmbeddingFunction() if name in ("default", "onnx_mini_lm_l6_v2") else None


def migrate_chroma(chroma_dir: str, root: str, page: int = PAGE) -> Iterator[tuple[str, int]]:
    """Yield (name, records copied) per collection. Existing lakevec collections of the same
    name are refused, so a migration never mixes into data already there."""
    chromadb = require("chromadb", "migrate-chroma")
    source = chromadb.PersistentClient(path=chroma_dir)
    target = lakevec.PersistentClient(root)
    for collection in source.list_collections():
        hnsw = _hnsw(collection)
        dest = target.create_collection(
            collection.name,
            metadata=collection.metadata or None,
            configuration={"hnsw": hnsw} if hnsw else None,
            embedding_function=_embedding_function(collection),
        )
        offset = 0
        while True:
            batch = collection.get(
                include=["embeddings", "documents", "metadatas", "uris"], limit=page, offset=offset
            )
            ids = batch["ids"]
            if not ids:
                break
            documents = batch.get("documents")
            uris = batch.get("uris")
            dest.add(
                ids=ids,
                embeddings=batch["embeddings"],
                metadatas=batch["metadatas"] if any(m for m in batch["metadatas"] or []) else None,
                documents=documents if documents and all(d is not None for d in documents) else None,
                uris=uris if uris and all(u is not None for u in uris) else None,
            )
            offset += len(ids)
        yield collection.name, dest.count()
