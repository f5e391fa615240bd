"""The manifest of one collection version: which fragments and deletion files make it up.

Frozen dataclasses, changed with :func:`dataclasses.replace`; ``to_json``/``from_json`` are the
only codec, and ``format_version`` selects the decoder.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

#: 2 adds FragmentEntry.index_codec, 3 FragmentEntry.index_route, 4 FragmentEntry.index_projection
FORMAT_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)
#: a collection's file directories (beside ``versions/``): fragments, deletion files, indexes
FILE_DIRS = ("data", "deletes", "index")

#: metadata value kinds; each (key, kind) pair is one typed Parquet field
KINDS = ("str", "int", "float", "bool", "list_str", "list_int", "list_float", "list_bool", "sparse")


@dataclass(frozen=True, slots=True)
class MetadataField:
    """One typed field of the ``metadata`` struct: values of ``kind`` stored under ``key``."""

    name: str
    key: str
    kind: str


@dataclass(frozen=True, slots=True)
class FragmentEntry:
    id: str
    path: str  # relative to the collection directory
    rows: int
    live_rows: int
    seq_min: int
    seq_max: int
    bytes: int
    deletes: str | None = None  # relative path of the cumulative deletion file
    index: str | None = None  # relative path of the HNSW index holding this fragment's rows
    index_base: int = 0  # key of row r in that index is index_base + r
    index_scale: float | None = None  # an int8 index's scale (None: a float16 index)
    index_codec: str | None = None  # "i8": int8 rows rounded by lakevec, "i8p": projected first
    index_route: str | None = None  # relative path of that index's route file (lake/route.py)
    index_projection: str | None = None  # relative path of its projection (lake/quantize.py)
    text: str | None = None  # relative path of the documents' full-text postings (lake/text.py)


def _as_dict(entry: MetadataField | FragmentEntry) -> dict[str, Any]:
    """A flat entry as a dict (``dataclasses.asdict`` deep-copies: 10x slower, per commit)."""
    return {name: getattr(entry, name) for name in entry.__slots__}


@dataclass(frozen=True, slots=True)
class Manifest:
    version: int
    parent: int | None
    operation: str
    timestamp: float
    dimension: int | None
    next_seq: int
    fields: tuple[MetadataField, ...] = ()
    fragments: tuple[FragmentEntry, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def live_rows(self) -> int:
        return sum(f.live_rows for f in self.fragments)

    def files(self) -> set[str]:
        """Every file this version reads (relative to the collection directory)."""
        out = set()
        for f in self.fragments:
            out.add(f.path)
            if f.deletes:
                out.add(f.deletes)
            if f.index:
                out.add(f.index)
            if f.index_route:
                out.add(f.index_route)
            if f.index_projection:
                out.add(f.index_projection)
            if f.text:
                out.add(f.text)
        return out

    def child(self, operation: str, **changes: Any) -> Manifest:
        """The next version built on this one."""
        return dataclasses.replace(
            self,
            version=self.version + 1,
            parent=self.version,
            operation=operation,
            timestamp=time.time(),
            **changes,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "version": self.version,
            "parent": self.parent,
            "operation": self.operation,
            "timestamp": self.timestamp,
            "dimension": self.dimension,
            "next_seq": self.next_seq,
            "config": self.config,
            "fields": [_as_dict(f) for f in self.fields],
            "fragments": [_as_dict(f) for f in self.fragments],
        }

    @staticmethod
    def from_json(doc: dict[str, Any]) -> Manifest:
        if doc.get("format_version") not in READABLE_VERSIONS:
            raise ValueError(f"unsupported manifest format_version {doc.get('format_version')!r}")
        return Manifest(
            version=doc["version"],
            parent=doc["parent"],
            operation=doc["operation"],
            timestamp=doc["timestamp"],
            dimension=doc["dimension"],
            next_seq=doc["next_seq"],
            config=doc.get("config", {}),
            fields=tuple(MetadataField(**f) for f in doc["fields"]),
            fragments=tuple(FragmentEntry(**f) for f in doc["fragments"]),
        )

    @staticmethod
    def empty(config: dict[str, Any]) -> Manifest:
        return Manifest(
            version=0,
            parent=None,
            operation="create",
            timestamp=time.time(),
            dimension=None,
            next_seq=0,
            config=config,
        )
