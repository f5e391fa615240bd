"""The files a fold (:mod:`lakevec.maintenance.indexer`) or a tier (:mod:`lakevec.maintenance.tiers`)
writes beside the manifest: the index, its route, a new projection, and the fragments' full-text
postings. Each is written under a new name and only then listed by a commit."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

import numpy as np
from usearch.index import Index

from lakevec.engine import CollectionEngine
from lakevec.lake.manifest import Manifest
from lakevec.lake.route import route_path
from lakevec.write.index import ROW_KINDS, Encoding, index_route

ADD_CHUNK = 16_384  # rows per usearch add call of a fold or tier


def saved_encoding(engine: CollectionEngine, encoding: Encoding) -> Encoding:
    """``encoding`` with its projection saved, if it is new."""
    if encoding.projector is None or encoding.projection is not None:
        return encoding
    path = f"index/{uuid.uuid4().hex}.projection.npz"
    engine.storage.write_new(engine.cache.path(path), encoding.projector.to_bytes())
    engine.cache.put_projection(path, encoding.projector)
    return dataclasses.replace(encoding, projection=path)


def save_index(engine: CollectionEngine, index: Index) -> tuple[str, str | None]:
    """Write a new index file, and its route file where one pays (``index_route``): their
    paths relative to the collection."""
    data = index.save()
    assert data is not None  # no path given: usearch returns the bytes
    path = f"index/{uuid.uuid4().hex}.usearch"
    engine.storage.write_new(engine.cache.path(path), data)
    kind = ROW_KINDS.get(index.dtype)
    route = index_route(data, kind) if kind is not None else None
    if route is None:
        return path, None
    engine.storage.write_new(engine.cache.path(route_path(path)), route.to_bytes())
    return path, route_path(path)


def write_postings(
    engine: CollectionEngine, snap, fragments: list[int], check: Callable[[], None] = lambda: None
) -> dict[str, str]:
    """Full-text postings files for the indexed fragments that hold documents (fragment id ->
    path): a later process reads them instead of tokenizing the documents again."""
    out = {}
    for i in fragments:
        entry, frag = snap.manifest.fragments[i], snap.fragments[i]
        if entry.text is not None or frag.table.column("document").null_count == frag.num_rows:
            continue
        relative = f"index/{entry.id}-{uuid.uuid4().hex[:8]}.terms.npz"
        engine.storage.write_new(engine.cache.path(relative), frag.postings.to_bytes())
        out[entry.id] = relative
        check()
    return out


def key_end(manifest: Manifest, path: str) -> int:
    """One past the highest key of index ``path`` that ``manifest``'s fragments use."""
    return max(e.index_base + e.rows for e in manifest.fragments if e.index == path)


def max_key(index: Index) -> int:
    return int(np.max(np.asarray(index.keys)))
